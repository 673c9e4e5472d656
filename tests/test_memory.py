"""The memory report and the ladder: byte counts worked out by hand from the shapes, checked
against the bytes of the real state, for every named optimizer; reduced and quantized slots;
Optax transforms inside a chain; 70B parameters described without allocating; moment dtypes."""

import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from gradchain import ladder
from tests.conftest import reference_promotion
from tests.problems import ADAPTIVE, REDUCED_STATE, matrix_tree, small_tree

# A mixed-dtype model: float32 (7x5 + 5 + 2x2x3 = 52 elements, 208 bytes) and bfloat16
# (11x3 + 4 = 37 elements, 74 bytes). 89 elements, 282 bytes in all.
F32_ELEMENTS, BF16_ELEMENTS = 52, 37
PARAM_ELEMENTS = F32_ELEMENTS + BF16_ELEMENTS
PARAM_BYTES = 4 * F32_ELEMENTS + 2 * BF16_ELEMENTS


def mixed_params():
    return {
        "w1": jnp.ones((7, 5), jnp.float32),
        "b1": jnp.ones((5,), jnp.float32),
        "emb": jnp.ones((11, 3), jnp.bfloat16),
        "nested": [jnp.ones((4,), jnp.bfloat16), jnp.ones((2, 2, 3), jnp.float32)],
    }


# name: (per-parameter slots, bytes of scalars) worked out from each optimizer's state: its
# live hyperparameters, once each, by its own argument names (float32, 4 B; None, bools and
# dtypes are not stored), plus the step counts its transforms keep (int32, 4 B). Every moment
# takes its parameter's dtype.
HAND = {
    "sgd": (0, 4),  # learning_rate (momentum=None: not stored)
    "momentum": (1, 8),  # mu; learning_rate, momentum
    "nesterov": (1, 8),  # mu; learning_rate, momentum
    # sum_of_squares; learning_rate, initial_accumulator_value, eps (no count)
    "adagrad": (1, 12),
    # nu; learning_rate, decay, eps, initial_scale (no count: no bias correction)
    "rmsprop": (1, 16),
    # mu, nu; learning_rate, b1, b2, eps, eps_root + counts of bias_correct and scale_by_rms
    "adam": (2, 5 * 4 + 2 * 4),
    "adamw": (2, 6 * 4 + 2 * 4),  # adam's + weight_decay
    "amsgrad": (3, 5 * 4 + 2 * 4),  # adam's, + nu_max per parameter
    "nadam": (2, 5 * 4 + 2 * 4),  # adam's (momentum_decay=None: not stored)
    # mu, inf norm nu; learning_rate, b1, b2, eps + the bias correction's count (the inf
    # norm keeps none)
    "adamax": (2, 4 * 4 + 4),
    "lion": (1, 16),  # mu; learning_rate, b1, b2, weight_decay (no count)
}


def real_bytes(state: Any) -> int:
    return sum(np.asarray(x).nbytes for x in jax.tree.leaves(state))


def named() -> list[str]:
    from gradchain import optimizers

    return sorted(n for n in optimizers.__all__ if callable(getattr(optimizers, n)))


@pytest.mark.parametrize("name", sorted(HAND))
def test_named_optimizer_bytes_match_the_hand_count(name):
    slots, scalar_bytes = HAND[name]
    report = gradchain.memory_report(ladder.named_optimizer(name), mixed_params())
    assert report.param_elements == PARAM_ELEMENTS and report.param_bytes == PARAM_BYTES
    assert report.per_parameter_bytes == slots * PARAM_BYTES
    assert report.per_parameter_elements == slots * PARAM_ELEMENTS
    assert report.params_multiple == slots
    assert report.scalar_bytes == scalar_bytes
    assert report.total_bytes == slots * PARAM_BYTES + scalar_bytes


@pytest.mark.parametrize("name", named())
def test_report_bytes_equal_the_real_state_bytes(name):
    optimizer = ladder.named_optimizer(name)
    report = gradchain.memory_report(optimizer, mixed_params())
    assert report.total_bytes == real_bytes(optimizer.init(mixed_params()))


def test_hand_count_covers_the_textbook_ladder():
    assert set(HAND) <= set(named())


def test_float64_params_keep_int32_counts_and_float64_hyperparameters(x64):
    params = {"w": jnp.ones((3, 4), jnp.float64)}
    optimizer = gradchain.adam(1e-3)
    report = gradchain.memory_report(optimizer, params)
    # 2 moments x 12 x 8 B; 2 counts (bias_correct, scale_by_rms) x 4 B;
    # 5 hyperparameters (learning_rate, b1, b2, eps, eps_root) x 8 B
    assert report.per_parameter_bytes == 2 * 12 * 8
    assert report.scalar_bytes == 2 * 4 + 5 * 8
    assert report.total_bytes == real_bytes(optimizer.init(params))


def test_rows_name_the_transform_slot_kind_and_meaning():
    report = gradchain.memory_report(gradchain.adam(1e-3), mixed_params())
    mu, nu = (next(r for r in report.rows if r.slot == s) for s in ("mu", "nu"))
    assert (mu.transform, mu.path, mu.kind, mu.dtype) == (
        "scale_by_momentum",
        "mu",
        "same shape",
        "bfloat16/float32",
    )
    assert (nu.transform, nu.path, nu.elements, nu.bytes, nu.multiple) == (
        "scale_by_rms",
        "nu",
        PARAM_ELEMENTS,
        PARAM_BYTES,
        1.0,
    )
    assert nu.meaning == gradchain.RmsState.meanings["nu"]
    kinds = {(r.transform, r.slot): r.kind for r in report.rows}
    assert kinds[("bias_correct", "count")] == "scalar"
    # the live optimizer owns its hyperparameters; the transforms hold only their math
    assert kinds[("adam", "learning_rate")] == "hyperparameter"
    assert kinds[("adam", "b1")] == "hyperparameter"
    assert kinds[("scale_by_learning_rate", "-")] == "stateless"
    text = str(report)
    assert re.search(r"\nscale_by_momentum +mu +same shape", text)
    assert re.search(r"\nscale_by_rms +nu +same shape", text)
    # the scalars, by owner: 5 float32 hyperparameters (20 B), one int32 count each (4 B)
    assert re.search(r"\nadam +b1, b2, eps, eps_root, learning_rate +20 B", text)
    assert re.search(r"\nbias_correct +count +4 B", text)
    assert "per-parameter state: 178 elements = 2x params" in text
    assert f"total: {report.total_bytes:,} bytes" in text


def test_user_made_chain_with_a_stateless_member():
    optimizer = gradchain.chain(
        gradchain.clip_by_global_norm(1.0),
        gradchain.scale_by_momentum(0.9, mu_dtype=jnp.bfloat16),
        gradchain.scale_by_sign(),
        gradchain.scale_by_rms(0.99, amsgrad=True),
        gradchain.scale_by_learning_rate(0.1),
    )
    report = gradchain.memory_report(optimizer, mixed_params())
    by_slot = {(r.transform, r.slot): r for r in report.rows}
    assert by_slot[("scale_by_momentum", "mu")].bytes == 2 * PARAM_ELEMENTS
    assert by_slot[("scale_by_rms", "nu")].bytes == PARAM_BYTES
    assert by_slot[("scale_by_rms", "nu_max")].bytes == PARAM_BYTES
    assert by_slot[("scale_by_sign", "-")].kind == "stateless"
    # a raw transform stores no hyperparameter: clipping keeps nothing
    assert by_slot[("clip_by_global_norm", "-")].kind == "stateless"
    assert [r.transform for r in report.rows][0] == "clip_by_global_norm"  # chain order
    assert report.params_multiple == 3
    assert report.total_bytes == real_bytes(optimizer.init(mixed_params()))
    assert "scale_by_sign" in str(report) and "stateless" in str(report)


def test_optax_transforms_inside_a_gradchain_chain():
    optimizer = gradchain.chain(
        optax.clip_by_global_norm(1.0),
        optax.scale_by_adam(),
        gradchain.scale_by_learning_rate(1e-3),
    )
    params = mixed_params()
    with reference_promotion():
        report = gradchain.memory_report(optimizer, params)
        state = optimizer.init(params)
    rows = {(r.transform, r.slot): r for r in report.rows}
    assert rows[("EmptyState", "-")].kind == "stateless"
    assert rows[("ScaleByAdamState", "mu")].kind == "same shape"
    assert rows[("ScaleByAdamState", "nu")].bytes == PARAM_BYTES
    assert rows[("ScaleByAdamState", "count")].kind == "scalar"
    assert report.params_multiple == 2
    assert report.total_bytes == real_bytes(state)
    assert report.optimizer == "chain(EmptyState, ScaleByAdamState, scale_by_learning_rate)"


def test_optax_inject_hyperparams_alone():
    optimizer = optax.inject_hyperparams(optax.adamw)(learning_rate=1e-3)
    with reference_promotion():
        report = gradchain.memory_report(optimizer, mixed_params())
        state = optimizer.init(mixed_params())
    hyper = [r for r in report.rows if r.kind == "hyperparameter"]
    assert {r.slot for r in hyper} >= {"learning_rate", "b1", "b2", "weight_decay"}
    # a foreign wrapper declares no children: the inner Optax state is named by its type
    assert {r.transform for r in report.rows if r.slot == "mu"} == {"ScaleByAdamState"}
    assert {r.transform for r in hyper} == {"InjectStatefulHyperparamsState"}
    assert report.params_multiple == 2
    assert report.total_bytes == real_bytes(state)


# --- reduced and quantized slots: a transform written here, to the slot convention ---------


@gradchain.describe(
    stats="per parameter: {'row': mean over the last axis, 'col': over the first}",
    moment="per parameter: {'codes': int8 like the param, 'scales': one float32 per row}",
    count="steps",
)
class _ToyState(NamedTuple):
    stats: Any
    moment: Any
    count: Any


def _toy_transform():
    def init(params):
        def stats(p):
            return {"row": jnp.zeros(p.shape[:-1]), "col": jnp.zeros(p.shape[1:])}

        def moment(p):
            return {"codes": jnp.zeros(p.shape, jnp.int8), "scales": jnp.zeros(p.shape[:1])}

        return _ToyState(
            jax.tree.map(stats, params),
            jax.tree.map(moment, params),
            jnp.zeros([], jnp.int32),
        )

    return gradchain.GradientTransformation(init, lambda u, s, p=None, **k: (u, s), name="toy")


def test_reduced_and_quantized_slots_are_counted_by_their_real_bytes():
    params = {"a": jnp.ones((40, 30)), "b": jnp.ones((6, 5))}
    optimizer = gradchain.chain(_toy_transform(), gradchain.scale_by_learning_rate(0.1))
    report = gradchain.memory_report(optimizer, params)
    rows = {r.slot: r for r in report.rows}
    assert rows["stats"].kind == "reduced"
    assert rows["stats"].elements == (40 + 30) + (6 + 5)
    assert rows["stats"].bytes == 4 * (40 + 30 + 6 + 5)
    assert rows["moment"].kind == "quantized"
    assert rows["moment"].bytes == (1200 + 30) + 4 * (40 + 6)
    assert rows["moment"].dtype == "float32/int8"
    assert rows["count"].kind == "scalar"
    assert report.per_parameter_elements == 81 + 1230 + 46
    assert report.total_bytes == real_bytes(optimizer.init(params))
    assert "reduced" in str(report) and "quantized" in str(report)


# --- nothing allocated ----------------------------------------------------------------------


def test_seventy_billion_parameters_from_shapes_only():
    # 70 leaves of 1e9 float32: 280 GB of params, 560 GB of Adam moments -- neither exists.
    params = [jax.ShapeDtypeStruct((100_000, 10_000), jnp.float32) for _ in range(70)]
    live_before = len(jax.live_arrays())
    report = gradchain.memory_report(gradchain.adamw(1e-3), params)
    small = gradchain.memory_report(
        gradchain.adamw(1e-3, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16), params
    )
    assert len(jax.live_arrays()) == live_before
    assert report.param_elements == 70_000_000_000
    assert report.per_parameter_bytes == 560_000_000_000
    assert report.params_multiple == 2 and report.bytes_multiple == 2
    assert small.per_parameter_bytes == 280_000_000_000 and small.bytes_multiple == 1
    assert "560.00 GB" in str(report)
    assert gradchain.compare(report, small).saved_bytes == 280_000_000_000


# --- moment dtypes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, saved",
    [
        # float32 leaves halve, bfloat16 leaves stay: 2 B saved per float32 element per moment
        ({"mu_dtype": jnp.bfloat16}, 2 * F32_ELEMENTS),
        ({"nu_dtype": jnp.bfloat16}, 2 * F32_ELEMENTS),
        ({"mu_dtype": jnp.bfloat16, "nu_dtype": jnp.bfloat16}, 4 * F32_ELEMENTS),
        ({"mu_dtype": jnp.float32, "nu_dtype": jnp.float32}, -2 * 2 * BF16_ELEMENTS),
    ],
)
def test_moment_dtypes_save_the_bytes_compare_reports(kwargs, saved):
    params = mixed_params()
    base = gradchain.memory_report(gradchain.adam(1e-3), params)
    other = gradchain.memory_report(gradchain.adam(1e-3, **kwargs), params)
    comparison = gradchain.compare(base, other)
    assert comparison.saved_bytes == saved
    assert other.total_bytes == real_bytes(gradchain.adam(1e-3, **kwargs).init(params))
    assert "saved:" in str(comparison)
    changed = {row[1] for row in comparison.rows if row[2] != row[3]}
    assert changed == {k.removesuffix("_dtype") for k in kwargs}


def test_bfloat16_moments_track_float32_adam_on_a_quadratic():
    # f(x) = 0.5 * sum(a * x**2), curvatures 0.5..5, 100 steps of lr 0.05 from x0 ~ N(0, 1).
    rng = np.random.default_rng(0)
    a = jnp.asarray(np.linspace(0.5, 5.0, 64), jnp.float32)
    x0 = jnp.asarray(rng.normal(size=64), jnp.float32)

    def run(optimizer):
        @jax.jit
        def step(x, state):
            updates, state = optimizer.update(a * x, state, x)
            return gradchain.apply_updates(x, updates), state

        x, state = x0, optimizer.init(x0)
        for _ in range(100):
            x, state = step(x, state)
        return x, 0.5 * float(jnp.sum(a * x * x))

    x32, loss32 = run(gradchain.adam(0.05))
    x16, loss16 = run(gradchain.adam(0.05, mu_dtype=jnp.bfloat16, nu_dtype=jnp.bfloat16))
    loss0 = 0.5 * float(jnp.sum(a * x0 * x0))
    assert loss32 < 1e-2 * loss0 and loss16 < 1e-2 * loss0  # both converge
    # Measured once: max |x16 - x32| = 1.07e-3; losses 1.42e-3 (bf16) vs 1.44e-3 (f32), from
    # 80.9 (mu alone: 2.5e-4, nu alone: 7.7e-4). Frozen with ~5x margin.
    assert float(jnp.max(jnp.abs(x16 - x32))) < 5e-3
    assert abs(loss16 - loss32) < 0.1 * loss32


# --- the ladder -----------------------------------------------------------------------------


def test_hierarchy_multiples_and_the_slot_each_rung_adds():
    h = gradchain.hierarchy(1_000_000)
    multiples = {r.name: r.params_multiple for r in h.rows}
    assert multiples["sgd"] == 0 and multiples["momentum"] == 1 and multiples["nesterov"] == 1
    assert multiples["adam"] == 2 and multiples["amsgrad"] == 3 and multiples["lion"] == 1
    assert h["momentum"].adds == ("mu",) and h["momentum"].drops == ()
    assert h["nesterov"].adds == () and h["adamw"].adds == ()
    assert h["rmsprop"].adds == ("nu",) and h["rmsprop"].drops == ("sum_of_squares",)
    assert h["adam"].adds == ("mu",)
    assert h["amsgrad"].adds == ("nu_max",)
    assert h["adam"].chain == (
        "scale_by_momentum",
        "bias_correct",
        "scale_by_rms",
        "scale_by_learning_rate",
    )
    # 2 moments x 4 MB + 5 float32 hyperparameters + 2 int32 counts = 28 B of scalars
    assert h["adam"].total_bytes == 8_000_028
    assert h["adam"].bf16_moment_bytes == 4_000_028
    assert h["momentum"].bf16_moment_bytes is None  # momentum() has no mu_dtype option
    order = [r.name for r in h.rows]
    assert order[:8] == ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw",
                         "amsgrad"]  # fmt: skip
    assert {r.name for r in h.rows if r.branch == "beside"} >= {"lion", "adamax", "nadam"}


def test_hierarchy_shows_reduced_and_quantized_slots_of_the_memory_savers():
    h = gradchain.hierarchy(1_000_000)  # one 1000x1000 matrix: Adafactor factors it
    assert h["adafactor"].adds == ("nu (reduced)",)
    assert h["adafactor"].report.per_parameter_elements == 2 * 1000
    assert "mu (quantized)" in h["adam_8bit"].adds
    # int8/uint8 codes (1 B) + a float32 scale per 256-block along the 1000-long rows (4 per row)
    assert h["adam_8bit"].report.per_parameter_bytes == 2 * (1_000_000 + 4 * 1000 * 4)
    assert h["muon"].report.params_multiple == 1  # a matrix: momentum only


def test_a_parameter_count_is_taken_as_a_matrix_as_square_as_it_allows():
    assert ladder.model_of_size(1_000_000).shape == (1000, 1000)
    assert ladder.model_of_size(7_000_000_000).shape == (80_000, 87_500)
    assert ladder.model_of_size(10).shape == (2, 5)
    assert ladder.model_of_size(13).shape == (13,)  # a prime stays a vector
    assert ladder.model_of_size(4, jnp.bfloat16).dtype == jnp.bfloat16
    assert ladder.describe_model(ladder.model_of_size(10)) == (
        "10 float32 parameters as one 2x5 matrix"
    )
    assert ladder.describe_model(mixed_params()) == "89 bfloat16/float32 parameters in 5 leaves"


def test_hierarchy_table_text():
    text = str(gradchain.hierarchy(1_000_000))
    assert "Optimizer state for 1,000,000 float32 parameters as one 1000x1000 matrix" in text
    lines = {}
    for line in text.splitlines():
        if line.strip():
            lines.setdefault(line.split()[0], line)
    assert lines["adam"].split() == ["adam", "rmsprop", "8.00", "MB", "2", "2", "4.00", "MB", "+mu"]
    assert lines["amsgrad"].split()[2:5] == ["12.00", "MB", "3"]
    assert "beside it (the same memory, another rule):" in text
    assert "spending less memory:" in text
    assert "= scale_by_momentum -> bias_correct -> scale_by_rms -> add_decayed_weights" in text


def test_hierarchy_of_a_tree_and_a_ladder_entry_for_a_missing_optimizer_is_skipped():
    rungs = [
        gradchain.Rung("sgd", None, "plain"),
        gradchain.Rung("not_written_yet", "sgd", "a future optimizer", "beside"),
        gradchain.Rung("lion", "sgd", "sign", "beside"),
    ]
    h = gradchain.hierarchy(mixed_params(), ladder=rungs)
    assert [r.name for r in h.rows] == ["sgd", "lion"]
    assert h["lion"].report.per_parameter_bytes == PARAM_BYTES
    assert h.param_bytes == PARAM_BYTES and h.param_dtypes == "bfloat16/float32"
    assert "spending" not in str(h)  # only the branches present get a heading


def test_hierarchy_in_bfloat16():
    h = gradchain.hierarchy(1000, jnp.bfloat16)
    assert h["adam"].report.per_parameter_bytes == 2 * 2 * 1000
    assert "1,000 bfloat16 parameters as one 25x40 matrix" in str(h)


def test_every_ladder_rung_names_an_optimizer_or_a_rung():
    names = {r.name for r in gradchain.LADDER}
    assert all(r.previous is None or r.previous in names for r in gradchain.LADDER)
    assert all(r.branch in ("ladder", "beside", "saves", "spends", "steps") for r in gradchain.LADDER)


# --- wrappers: masks, parameter groups, accumulation ----------------------------------------


def test_wrappers_report_each_group_and_inner_transform():
    params = {"w": jnp.ones((3, 4)), "b": jnp.ones(4), "emb": jnp.ones((5, 2))}
    optimizer = gradchain.chain(
        gradchain.masked(gradchain.add_decayed_weights(0.1), {"w": True, "b": False, "emb": False}),
        gradchain.partition(
            {"a": gradchain.adam(1e-3), "m": gradchain.scale_by_momentum(0.9),
             "frozen": gradchain.set_to_zero()},
            {"w": "a", "b": "m", "emb": "frozen"},
        ),
    )  # fmt: skip
    report = gradchain.memory_report(optimizer, params)
    rows = {(r.transform, r.slot): r for r in report.rows}
    # owners: group labels, then the transform (wrappers the user did not name add nothing)
    assert rows[("a/scale_by_momentum", "mu")].bytes == 4 * 12  # w only
    assert rows[("a/scale_by_momentum", "mu")].path == "a.mu"
    assert rows[("a/scale_by_rms", "nu")].bytes == 4 * 12
    assert rows[("m/scale_by_momentum", "mu")].bytes == 4 * 4  # b only
    assert rows[("a/adam", "learning_rate")].kind == "hyperparameter"  # the group's adam
    assert rows[("add_decayed_weights", "-")].kind == "stateless"  # weight_decay not stored
    assert rows[("frozen/set_to_zero", "-")].kind == "stateless"  # a frozen group keeps none
    assert not any("frozen" in r.transform for r in report.rows if r.bytes)
    assert report.per_parameter_elements == 12 + 12 + 4
    assert report.total_bytes == real_bytes(optimizer.init(params))


def test_accumulation_adds_one_accumulator():
    params = mixed_params()
    optimizer = gradchain.accumulate(gradchain.adam(1e-3), 4)
    report = gradchain.memory_report(optimizer, params)
    assert report.params_multiple == 3  # acc + mu + nu
    assert {r.transform for r in report.rows if r.per_parameter} == {
        "accumulate",  # acc
        "scale_by_momentum",  # accumulate is not a label: it adds nothing to the owner
        "scale_by_rms",
    }
    assert report.total_bytes == real_bytes(optimizer.init(params))


def test_a_single_transform_and_a_bare_optax_optimizer():
    params = mixed_params()
    report = gradchain.memory_report(gradchain.scale_by_rms(0.9, amsgrad=True), params)
    assert report.optimizer == "scale_by_rms"
    assert {(r.transform, r.slot) for r in report.rows if r.per_parameter} == {
        ("scale_by_rms", "nu"),
        ("scale_by_rms", "nu_max"),
    }
    with reference_promotion():
        report = gradchain.memory_report(optax.adamw(1e-3), params)
        state = optax.adamw(1e-3).init(params)
    assert {r.transform for r in report.rows if r.per_parameter} == {"ScaleByAdamState"}
    assert report.params_multiple == 2 and report.total_bytes == real_bytes(state)


@pytest.mark.parametrize("name", sorted(REDUCED_STATE))
def test_memory_report_equals_the_real_state_bytes(name):
    params = matrix_tree(jnp.float32)
    opt = REDUCED_STATE[name]()
    assert gradchain.memory_report(opt, params).total_bytes == real_bytes(opt.init(params))


# Param-sized slots per optimizer (float32 AdamW = 2) and extra bytes per parameter element.
MEMORY = {
    "ademamix": (3, 0),  # mu, slow_mu, nu
    "adan": (4, 0),  # mu, v, n, previous_gradient
    "schedule_free_adamw": (2, 0),  # nu, z
    "adabelief": (2, 0),  # mu, belief
    "radam": (2, 0),
    "yogi": (2, 0),
    "adopt": (2, 0),
    "nadamw": (2, 0),
    "adamaxw": (2, 0),
    "lamb": (2, 0),
    "lars": (1, 0),  # velocity
    "rprop": (1, 1),  # step_size + the previous sign in int8 (1 byte per element)
    "adadelta": (2, 0),  # mean_sq_grad, mean_sq_update
}


def per_parameter_bytes(state, params):
    """Bytes of the state fields whose subtree is laid out like the params (leaf shapes
    equal), counted from the state itself -- independently of gradchain.memory."""
    treedef, shapes = jax.tree.structure(params), [p.shape for p in jax.tree.leaves(params)]
    total = 0
    for member in state.inner:  # the chain inside the optimizer's live hyperparameters
        for value in member:
            try:
                leaves = treedef.flatten_up_to(value)
            except (ValueError, TypeError):
                continue
            if [np.shape(x) for x in leaves] == shapes:
                total += sum(x.nbytes for x in leaves)
    return total


@pytest.mark.parametrize("name", sorted(ADAPTIVE))
def test_state_bytes(name):
    params = small_tree(jnp.float32)
    param_elements = sum(p.size for p in jax.tree.leaves(params))
    param_bytes = sum(p.nbytes for p in jax.tree.leaves(params))
    state = ADAPTIVE[name]().init(params)
    slots, extra = MEMORY[name]
    expected = slots * param_bytes + extra * param_elements
    assert per_parameter_bytes(state, params) == expected
    # The memory report (from shapes only) agrees with the real state, byte for byte.
    report = gradchain.memory_report(ADAPTIVE[name](), params)
    assert report.per_parameter_bytes == expected
    assert report.total_bytes == sum(x.nbytes for x in jax.tree.leaves(state))
