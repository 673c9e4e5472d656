"""Wrappers: masks, parameter groups, accumulation, skipping non-finite steps, clipping
anywhere in a chain. Against Optax's wrappers, against each group's optimizer run alone, and
against hand computations; float32 and float64."""

import pathlib
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from gradchain.base import EmptyState, GradientTransformation
from tests.conftest import reference_promotion

STEPS = 12
# Max |diff| vs Optax after 12 steps of params of size ~1, measured: float32 <= 1.2e-6
# (accumulate vs MultiSteps), 5e-7 (masks), 2e-7 (groups); float64 <= 3e-17.
TOL = {jnp.float32: 2e-6, jnp.float64: 2e-15}


def make_params(dtype):
    rng = np.random.default_rng(1)
    return {
        "backbone": {
            "w": jnp.asarray(rng.normal(size=(4, 3)), dtype),
            "b": jnp.asarray(rng.normal(size=(3,)), dtype),
        },
        "head": {
            "w": jnp.asarray(rng.normal(size=(3, 2)), dtype),
            "b": jnp.asarray(rng.normal(size=(2,)), dtype),
        },
        "scale": jnp.asarray(rng.normal(size=(3,)), dtype),
    }


def grads_sequence(params, dtype, steps=STEPS, seed=2):
    rng = np.random.default_rng(seed)
    return [
        jax.tree.map(lambda p: jnp.asarray(rng.normal(size=np.shape(p)), dtype), params)
        for _ in range(steps)
    ]


def run(opt, params, grads):
    state = opt.init(params)
    step = jax.jit(opt.update)
    for g in grads:
        updates, state = step(g, state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
    return params, state


def run_reference(opt, params, grads):
    with reference_promotion():
        return run(opt, params, grads)


def assert_trees_close(got, want, tol):
    jax.tree.map(
        lambda g, w: np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=0, atol=tol),
        got,
        want,
    )


def assert_trees_identical(a, b):
    """Bit for bit: same dtypes, same bytes (so -0.0 differs from 0.0, NaN equals NaN)."""
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


def probe() -> GradientTransformation:
    """Emits the gradient keyword it was handed (or its updates when none was)."""

    def init(params):
        del params
        return EmptyState()

    def update(updates, state, params=None, *, gradient=None, **extra):
        return (updates if gradient is None else gradient), state

    return GradientTransformation(init, update, name="probe")


NO_DECAY_ON_BIASES = {
    "backbone": {"w": True, "b": False},
    "head": {"w": True, "b": False},
    "scale": False,
}


def decay_only_matrices(params):
    return jax.tree.map(lambda p: p.ndim > 1, params)


# --- masks -------------------------------------------------------------------------------


def test_masked_adam_matches_optax(dtype):
    mask = NO_DECAY_ON_BIASES if dtype == jnp.float64 else decay_only_matrices
    params = make_params(dtype)
    grads = grads_sequence(params, dtype)
    got, _ = run(gradchain.masked(gradchain.adam(0.01), mask), params, grads)
    want, _ = run_reference(optax.masked(optax.adam(0.01), mask), params, grads)
    assert_trees_close(got, want, TOL[dtype])


def test_masked_out_leaves_pass_through_and_keep_no_state():
    params = make_params(jnp.float32)
    opt = gradchain.masked(gradchain.scale_by_momentum(0.9), NO_DECAY_ON_BIASES)
    state = opt.init(params)
    mu = state.inner.mu
    assert isinstance(mu["backbone"]["b"], gradchain.MaskedNode)
    assert isinstance(mu["scale"], gradchain.MaskedNode)
    assert mu["backbone"]["w"].shape == (4, 3)
    # two 1x slots (w of backbone and of head), nothing else: the transform stores no
    # hyperparameter
    assert len(jax.tree.leaves(state)) == 2
    grads = grads_sequence(params, jnp.float32, steps=1)[0]
    updates, _ = opt.update(grads, state, params)
    assert updates["head"]["b"] is grads["head"]["b"]
    assert updates["scale"] is grads["scale"]


def test_mask_may_be_a_prefix_of_the_params():
    params = make_params(jnp.float32)
    opt = gradchain.masked(gradchain.scale(2.0), {"backbone": True, "head": False, "scale": True})
    grads = grads_sequence(params, jnp.float32, steps=1)[0]
    updates, _ = opt.update(grads, opt.init(params))
    np.testing.assert_array_equal(updates["backbone"]["w"], 2 * grads["backbone"]["w"])
    np.testing.assert_array_equal(updates["scale"], 2 * grads["scale"])
    np.testing.assert_array_equal(updates["head"]["w"], grads["head"]["w"])


def test_masked_hides_the_gradient_keyword_like_the_updates():
    params = {"a": jnp.ones(2), "b": jnp.ones(3)}
    updates = {"a": jnp.full(2, 5.0), "b": jnp.full(3, 6.0)}
    gradient = {"a": jnp.full(2, 7.0), "b": jnp.full(3, 8.0)}
    opt = gradchain.masked(probe(), {"a": True, "b": False})
    out, _ = opt.update(updates, opt.init(params), params, gradient=gradient)
    assert out["a"].tolist() == [7.0, 7.0] and out["b"].tolist() == [6.0, 6.0, 6.0]


@pytest.mark.parametrize(
    "mask, where",
    [
        ({"backbone": {"w": True}, "head": True, "scale": True}, r"\['backbone'\]\['b'\]"),
        ({"backbone": True, "head": True, "scale": True, "extra": False}, r"\['extra'\]"),
        ({"backbone": True, "head": True}, r"\['scale'\]"),
    ],
)
def test_a_mask_that_does_not_fit_names_the_path(mask, where):
    opt = gradchain.masked(gradchain.scale(2.0), mask)
    with pytest.raises(gradchain.GradchainError, match=where):
        opt.init(make_params(jnp.float32))


def test_a_mask_of_non_bools_is_refused():
    opt = gradchain.masked(gradchain.scale(2.0), {"a": 1.0})
    with pytest.raises(gradchain.GradchainError, match=r"at \['a'\]: a mask holds bools"):
        opt.init({"a": jnp.ones(2)})


# --- weight-decay masks on the named optimizers ------------------------------------------


@pytest.mark.parametrize("name", ["adamw", "lion"])
def test_masked_weight_decay_matches_optax(name, dtype):
    params = make_params(dtype)
    grads = grads_sequence(params, dtype)
    ours = getattr(gradchain, name)(0.01, weight_decay=0.1, mask=NO_DECAY_ON_BIASES)
    theirs = getattr(optax, name)(0.01, weight_decay=0.1, mask=NO_DECAY_ON_BIASES)
    got, _ = run(ours, params, grads)
    want, _ = run_reference(theirs, params, grads)
    assert_trees_close(got, want, TOL[dtype])


@pytest.mark.parametrize("name, undecayed", [("adamw", "adam"), ("lion", None)])
def test_masked_decay_leaves_masked_leaves_untouched(name, undecayed, dtype):
    """Masked-out leaves move exactly as with weight_decay=0; decayed leaves differ."""
    params = make_params(dtype)
    grads = grads_sequence(params, dtype)
    factory = getattr(gradchain, name)
    got, _ = run(factory(0.01, weight_decay=0.5, mask=NO_DECAY_ON_BIASES), params, grads)
    if undecayed is None:
        plain, _ = run(factory(0.01, weight_decay=0.0), params, grads)
    else:
        plain, _ = run(getattr(gradchain, undecayed)(0.01), params, grads)
    for path in (("backbone", "b"), ("head", "b"), ("scale",)):
        g, p = got, plain
        for k in path:
            g, p = g[k], p[k]
        assert_trees_identical(g, p)
    assert not np.allclose(got["backbone"]["w"], plain["backbone"]["w"])


# --- parameter groups --------------------------------------------------------------------

LABELS = {
    "backbone": {"w": "backbone", "b": "backbone"},
    "head": {"w": "head", "b": "head"},
    "scale": "frozen",
}


def groups():
    return {
        "backbone": gradchain.chain(gradchain.clip_by_global_norm(0.5), gradchain.adamw(1e-3)),
        "head": gradchain.momentum(1e-2, 0.9),
        "frozen": gradchain.set_to_zero(),
    }


def test_groups_equal_each_groups_optimizer_alone(dtype):
    params = make_params(dtype)
    grads = grads_sequence(params, dtype)
    got, _ = run(gradchain.partition(groups(), LABELS), params, grads)
    for label in ("backbone", "head"):
        alone, _ = run(groups()[label], params[label], [g[label] for g in grads])
        assert_trees_identical(got[label], alone)
    assert_trees_identical(got["scale"], params["scale"])


def test_groups_match_optax_multi_transform(dtype):
    params = make_params(dtype)
    grads = grads_sequence(params, dtype)
    got, _ = run(gradchain.partition(groups(), LABELS), params, grads)
    theirs = optax.multi_transform(
        {
            "backbone": optax.chain(optax.clip_by_global_norm(0.5), optax.adamw(1e-3)),
            "head": optax.sgd(1e-2, momentum=0.9),
            "frozen": optax.set_to_zero(),
        },
        LABELS,
    )
    want, _ = run_reference(theirs, params, grads)
    assert_trees_close(got, want, TOL[dtype])


def test_labels_may_come_from_a_function_of_the_params():
    params = make_params(jnp.float32)
    grads = grads_sequence(params, jnp.float32, steps=3)

    def by_rank(tree):
        return jax.tree.map(lambda p: "matrix" if p.ndim > 1 else "vector", tree)

    opt = gradchain.partition(
        {"matrix": gradchain.adam(0.1), "vector": gradchain.sgd(0.1)}, by_rank
    )
    from_fn, _ = run(opt, params, grads)
    from_tree, _ = run(
        gradchain.partition(
            {"matrix": gradchain.adam(0.1), "vector": gradchain.sgd(0.1)}, by_rank(params)
        ),
        params,
        grads,
    )
    assert_trees_identical(from_fn, from_tree)


def test_frozen_group_keeps_no_state_and_its_params_are_bit_identical():
    params = make_params(jnp.float32)
    params["scale"] = jnp.asarray([-0.0, 0.0, 1.5], jnp.float32)
    opt = gradchain.partition(groups(), LABELS)
    state = opt.init(params)
    assert state.groups["frozen"] == EmptyState()
    assert jax.tree.leaves(state.groups["frozen"]) == []
    for slot in (state.groups["head"].inner[0].mu, state.groups["backbone"][1].inner[0].mu):
        assert isinstance(slot["scale"], gradchain.MaskedNode)
    new, _ = run(opt, params, grads_sequence(params, jnp.float32, steps=3))
    assert_trees_identical(new["scale"], params["scale"])


def test_partition_names_its_groups_for_the_memory_report():
    opt = gradchain.partition(groups(), LABELS)
    children = {c.label: c for c in opt.children}
    assert set(children) == {"backbone", "head", "frozen"}
    assert children["head"].transform.name == "momentum"
    assert children["backbone"].transform.name == "chain"
    assert children["head"].route == ("groups", "head")
    (inner,) = gradchain.masked(gradchain.scale(1.0), True).children
    assert inner.label is None and inner.transform.name == "scale"  # unnamed: adds no label


def test_partition_groups_the_gradient_keyword_like_the_updates():
    params = {"a": jnp.ones(2), "b": jnp.ones(3)}
    updates = {"a": jnp.full(2, 5.0), "b": jnp.full(3, 6.0)}
    gradient = {"a": jnp.full(2, 7.0), "b": jnp.full(3, 8.0)}
    opt = gradchain.partition({"x": probe(), "y": gradchain.identity()}, {"a": "x", "b": "y"})
    out, _ = opt.update(updates, opt.init(params), params, gradient=gradient)
    assert out["a"].tolist() == [7.0, 7.0] and out["b"].tolist() == [6.0, 6.0, 6.0]


def test_an_unknown_label_names_the_path():
    opt = gradchain.partition({"a": gradchain.sgd(0.1)}, {"x": "a", "y": "b"})
    with pytest.raises(gradchain.GradchainError, match=r"at \['y'\]: the label 'b' has no"):
        opt.init({"x": jnp.ones(1), "y": jnp.ones(1)})


def test_a_label_tree_that_does_not_fit_names_the_path():
    opt = gradchain.partition({"a": gradchain.sgd(0.1)}, {"x": "a", "z": "a"})
    with pytest.raises(gradchain.GradchainError, match=r"\['y'\]"):
        opt.init({"x": jnp.ones(1), "y": jnp.ones(1)})


def test_a_mask_inside_a_group_must_cover_the_hidden_leaves_too():
    opt = gradchain.partition(
        {"a": gradchain.adamw(0.1, mask={"w": True}), "b": gradchain.sgd(0.1)},
        {"w": "a", "v": "b"},
    )
    with pytest.raises(gradchain.GradchainError, match=r"leaf at \['v'\] is hidden"):
        opt.init({"w": jnp.ones(2), "v": jnp.ones(2)})


def test_partition_refuses_an_empty_dict():
    with pytest.raises(gradchain.GradchainError, match="non-empty dict"):
        gradchain.partition({}, {})


# --- accumulation ------------------------------------------------------------------------


def test_accumulate_matches_optax_multisteps(dtype):
    k = 3
    params = make_params(dtype)
    grads = grads_sequence(params, dtype, steps=4 * k)
    got, _ = run(gradchain.accumulate(gradchain.adam(0.05), k), params, grads)
    want, _ = run_reference(
        optax.MultiSteps(optax.adam(0.05), k, accumulator_dtype=dtype), params, grads
    )
    assert_trees_close(got, want, TOL[dtype])


def test_k_accumulated_steps_equal_one_step_on_the_mean(dtype):
    k = 4
    params = make_params(dtype)
    grads = grads_sequence(params, dtype, steps=k)
    inner = gradchain.adam(0.05)
    opt = gradchain.accumulate(inner, k)
    state = opt.init(params)
    step = jax.jit(opt.update)
    inner_init = inner.init(params)
    for i, g in enumerate(grads):
        updates, state = step(g, state, params)
        if i < k - 1:  # nothing moves, and the inner state waits
            assert all(float(jnp.max(jnp.abs(u))) == 0.0 for u in jax.tree.leaves(updates))
            assert_trees_identical(state.inner, inner_init)
    mean = jax.tree.map(lambda *gs: sum(gs[1:], gs[0]) / k, *grads)
    want, want_inner = jax.jit(inner.update)(mean, inner_init, params)
    # the running mean and the plain mean round differently: a few ulps of the gradient
    assert_trees_close(updates, want, 1e-6 if dtype == jnp.float32 else 1e-15)
    assert int(state.count) == 0
    assert all(float(jnp.max(jnp.abs(a))) == 0.0 for a in jax.tree.leaves(state.acc))
    count = gradchain.get_slot(state.inner, "RmsState.count")["RmsState.count"]
    want_count = gradchain.get_slot(want_inner, "RmsState.count")["RmsState.count"]
    assert int(count) == int(want_count) == 1


def test_accumulate_adds_one_accumulator_and_a_counter():
    params = make_params(jnp.float32)
    inner = gradchain.adam(0.05)
    state = gradchain.accumulate(inner, 4).init(params)
    n_params = len(jax.tree.leaves(params))
    extra = len(jax.tree.leaves(state)) - len(jax.tree.leaves(inner.init(params)))
    assert extra == n_params + 1
    assert jax.tree.structure(state.acc) == jax.tree.structure(params)
    assert state.count.dtype == jnp.int32 and state.count.shape == ()


def test_accumulate_in_a_wider_dtype():
    params = {"w": jnp.ones(3, jnp.bfloat16)}
    opt = gradchain.accumulate(gradchain.sgd(1.0), 3, acc_dtype=jnp.float32)
    state = opt.init(params)
    assert state.acc["w"].dtype == jnp.float32
    step = jax.jit(opt.update)
    for g in (1.0, 1.0 + 2**-10, 1.0 + 2**-9):
        updates, state = step({"w": jnp.full(3, g, jnp.bfloat16)}, state, params)
    assert updates["w"].dtype == jnp.bfloat16 and state.acc["w"].dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(updates["w"], np.float32), -1.0, atol=2**-8)


def test_accumulate_compiles_once():
    params = make_params(jnp.float32)
    opt = gradchain.accumulate(gradchain.adam(0.05), 3)
    step = jax.jit(chex.assert_max_traces(opt.update, n=1))
    state = opt.init(params)
    for g in grads_sequence(params, jnp.float32, steps=7):
        _, state = step(g, state, params)


def test_accumulate_refuses_a_gradient_other_than_its_updates():
    params = {"w": jnp.ones(2)}
    opt = gradchain.chain(
        gradchain.scale_by_momentum(0.9), gradchain.accumulate(gradchain.sgd(1.0), 2)
    )
    with pytest.raises(gradchain.GradchainError, match="accumulate must see the gradient"):
        opt.update({"w": jnp.ones(2)}, opt.init(params), params)


def test_accumulate_refuses_a_bad_k():
    with pytest.raises(gradchain.GradchainError, match="every_k must be an integer >= 1, got 0"):
        gradchain.accumulate(gradchain.sgd(1.0), 0)
    with pytest.raises(gradchain.GradchainError, match="every_k must be an integer >= 1, got 2.0"):
        gradchain.accumulate(gradchain.sgd(1.0), 2.0)


def test_a_k_beyond_the_int32_counter_is_refused_naming_the_argument():
    too_many = (
        r"must be an integer <= 2,147,483,647, got 1,000,000,000,000 \(it is counted in an int32\)"
    )
    with pytest.raises(gradchain.GradchainError, match="^every_k_schedule " + too_many):
        gradchain.MultiSteps(gradchain.sgd(0.1), every_k_schedule=10**12)
    with pytest.raises(gradchain.GradchainError, match="^every_k " + too_many):
        gradchain.accumulate(gradchain.sgd(1.0), 10**12)
    params = {"w": jnp.ones(2)}
    scheduled = gradchain.MultiSteps(gradchain.sgd(0.1), every_k_schedule=lambda step: 10**12)
    with pytest.raises(gradchain.GradchainError, match="^every_k_schedule's value " + too_many):
        scheduled.update(params, scheduled.init(params), params)
    # the largest k the counter holds is accepted
    big = gradchain.MultiSteps(gradchain.sgd(0.1), every_k_schedule=2**31 - 1)
    out, _ = big.update(params, big.init(params), params)
    assert not np.any(np.asarray(out["w"]))


# --- skipping non-finite steps -----------------------------------------------------------


def test_skip_non_finite_leaves_params_and_state_bit_identical(dtype):
    params = make_params(dtype)
    params["scale"] = params["scale"].at[0].set(-0.0)
    opt = gradchain.skip_non_finite(gradchain.adamw(0.01, weight_decay=0.1))
    step = jax.jit(chex.assert_max_traces(opt.update, n=1))  # one program for every step
    state = opt.init(params)
    grads = grads_sequence(params, dtype, steps=3)
    for g in grads[:2]:
        updates, state = step(g, state, params)
        params = gradchain.apply_updates(params, updates)
    for n, bad in enumerate([np.nan, np.inf, -np.inf], start=1):
        poisoned = jax.tree.map(lambda x: x, grads[2])
        poisoned["head"]["w"] = poisoned["head"]["w"].at[1, 0].set(bad)
        updates, new_state = step(poisoned, state, params)
        new_params = gradchain.apply_updates(params, updates)
        assert_trees_identical(new_params, params)
        assert_trees_identical(new_state.inner, state.inner)
        assert int(new_state.skipped) == n and int(new_state.consecutive) == n
        params, state = new_params, new_state
    # a finite step afterwards resets the run of skips, and counts as the inner's third step
    updates, newer = step(grads[2], state, params)
    assert int(newer.skipped) == 3 and int(newer.consecutive) == 0
    assert int(gradchain.get_slot(newer.inner, "RmsState.count")["RmsState.count"]) == 3


def test_skipping_equals_never_having_seen_the_bad_steps(dtype):
    params = make_params(dtype)
    grads = grads_sequence(params, dtype, steps=10)
    nan = jax.tree.map(lambda g: jnp.full_like(g, jnp.nan), grads[0])
    with_bad = grads[:3] + [nan, nan] + grads[3:]
    got, state = run(gradchain.skip_non_finite(gradchain.adam(0.01)), params, with_bad)
    want, _ = run(gradchain.adam(0.01), params, grads)
    assert_trees_identical(got, want)
    assert int(state.skipped) == 2


def test_skip_non_finite_raises_after_max_consecutive():
    params = {"w": jnp.ones(2)}
    opt = gradchain.skip_non_finite(gradchain.sgd(0.1), max_consecutive=2)
    step = jax.jit(opt.update)
    state = opt.init(params)
    nan = {"w": jnp.full(2, jnp.nan)}
    for _ in range(2):
        _, state = step(nan, state, params)
        jax.block_until_ready(state)
    _, state = step({"w": jnp.ones(2)}, state, params)  # a finite step resets the run
    for _ in range(2):
        _, state = step(nan, state, params)
    # traced, only a host callback can raise: JAX wraps our error in its own
    with pytest.raises(jax.errors.JaxRuntimeError, match="3 non-finite gradients in a row"):
        _, state = step(nan, state, params)
        jax.block_until_ready(state)


@pytest.mark.parametrize("wrap", [lambda opt: opt, lambda opt: gradchain.chain(opt)])
def test_skip_non_finite_raises_its_own_error_when_called_eagerly(wrap):
    params = {"w": jnp.ones(2)}
    opt = wrap(gradchain.skip_non_finite(gradchain.sgd(0.1), max_consecutive=2))
    state = opt.init(params)
    nan = {"w": jnp.full(2, jnp.nan)}
    for _ in range(2):
        _, state = opt.update(nan, state, params)
    with pytest.raises(gradchain.GradchainError, match="3 non-finite gradients in a row, more"):
        opt.update(nan, state, params)


def test_skip_non_finite_checks_the_gradient_keyword_too():
    params = {"w": jnp.ones(2)}
    opt = gradchain.skip_non_finite(gradchain.identity())
    updates, state = opt.update(
        {"w": jnp.ones(2)}, opt.init(params), params, gradient={"w": jnp.array([1.0, jnp.inf])}
    )
    assert int(state.skipped) == 1 and float(jnp.sum(jnp.abs(updates["w"]))) == 0.0


# --- clipping anywhere in a chain --------------------------------------------------------


def test_clipping_works_anywhere_in_a_chain(dtype):
    params = make_params(dtype)
    grads = grads_sequence(params, dtype)
    ours = gradchain.chain(
        gradchain.scale_by_momentum(0.9),
        gradchain.clip_by_global_norm(1.0),
        gradchain.scale_by_learning_rate(0.1),
        gradchain.clip(0.05),
    )
    theirs = optax.chain(
        optax.trace(0.9), optax.clip_by_global_norm(1.0), optax.scale(-0.1), optax.clip(0.05)
    )
    got, _ = run(ours, params, grads)
    want, _ = run_reference(theirs, params, grads)
    assert_trees_close(got, want, TOL[dtype])


def test_clipping_inside_a_group_sees_only_that_groups_norm(dtype):
    params = make_params(dtype)
    grads = grads_sequence(params, dtype)
    clipped = gradchain.chain(gradchain.clip_by_global_norm(0.1), gradchain.sgd(1.0))
    opt = gradchain.partition(
        {"clipped": clipped, "plain": gradchain.sgd(1.0)},
        {"backbone": "clipped", "head": "plain", "scale": "plain"},
    )
    got, _ = run(opt, params, grads)
    alone, _ = run(clipped, params["backbone"], [g["backbone"] for g in grads])
    assert_trees_identical(got["backbone"], alone)


# --- the training guide ------------------------------------------------------------------


def test_training_guide_snippets_run(capsys):
    """docs/training.md: every ```python block, in order, in one namespace."""
    text = (pathlib.Path(__file__).parents[1] / "docs" / "training.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 10
    namespace: dict = {}
    with reference_promotion():  # user code, written without strict promotion in mind
        for block in blocks:
            exec(compile(block, "docs/training.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "[0.0, 0.0005, 0.001, 0.0005, 0.0]" in out and "EmptyState()" in out


# --- under shard_map ---------------------------------------------------------------------


def composite(axis_name=None):
    inner = gradchain.partition(
        {
            "a": gradchain.adamw(0.1, mask={"w": True, "b": False}),
            "frozen": gradchain.set_to_zero(),
        },
        {"w": "a", "b": "frozen"},
    )
    return gradchain.skip_non_finite(gradchain.accumulate(inner, 2), axis_name=axis_name)


def test_wrappers_run_under_shard_map_with_sharded_leaves():
    """The branches of every lax.cond keep the updates' varying mesh axes (a one-device mesh
    is enough to trace the manual-axis types)."""
    from jax.sharding import PartitionSpec as P

    mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    params = {"w": jnp.ones((4, 2)), "b": jnp.ones(4)}
    grads = grads_sequence(params, jnp.float32, steps=5)
    grads[2] = jax.tree.map(lambda g: g.at[0].set(jnp.nan), grads[2])
    opt, plain = composite("data"), composite()
    state = opt.init(params)
    sharded = jax.tree.map(lambda x: P("data") if np.ndim(x) else P(), state)
    leaves = jax.tree.map(lambda _: P("data"), params)
    step = jax.jit(
        jax.shard_map(
            lambda g, s, p: opt.update(g, s, p),
            mesh=mesh,
            in_specs=(leaves, sharded, leaves),
            out_specs=(leaves, sharded),
        )
    )
    got, want = run_with(step, state, params, grads), run(plain, params, grads)[0]
    assert_trees_identical(got, want)


def run_with(step, state, params, grads):
    for g in grads:
        updates, state = step(g, state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
    return params


# --- freeze, selective_transform, callable-pytree masks (issue 24) ---------------------------


def test_freeze_and_selective_transform_match_optax(dtype):
    params = {"w": jnp.linspace(-1, 1, 4, dtype=dtype), "b": jnp.ones(2, dtype)}
    frozen = {"w": False, "b": True}
    pairs = [
        (gradchain.freeze(frozen), optax.transforms.freeze(frozen)),
        (gradchain.selective_transform(optax.adam(0.1), freeze_mask=frozen),
         optax.transforms.selective_transform(optax.adam(0.1), freeze_mask=frozen)),
    ]  # fmt: skip
    for ours, theirs in pairs:
        s1, s2 = ours.init(params), theirs.init(params)
        for i in range(3):
            g = jax.tree.map(lambda x: x * (i + 1), params)
            with reference_promotion():
                u1, s1 = ours.update(g, s1, params)
                u2, s2 = theirs.update(g, s2, params)
            # the same inner Optax transform on the same leaves: measured difference 0.0
            assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), u1, u2))
        assert float(jnp.abs(u1["b"]).sum()) == 0.0


def test_selective_transform_keeps_no_state_for_frozen_leaves():
    params = {"w": jnp.ones(4), "b": jnp.ones(2)}
    opt = gradchain.selective_transform(gradchain.adam(0.1), freeze_mask={"w": False, "b": True})
    mu = gradchain.tree.get(opt.init(params), "mu")
    assert isinstance(mu["b"], gradchain.MaskedNode) and mu["w"].shape == (4,)


def test_masked_treats_a_callable_pytree_as_a_mask_tree_like_optax():
    import dataclasses

    @jax.tree_util.register_dataclass
    @dataclasses.dataclass
    class Module:  # Equinox-style: a pytree of bools that is also callable
        w: bool
        b: bool

        def __call__(self, x):
            raise AssertionError("a pytree mask must not be called")

    params = Module(w=jnp.ones(2), b=jnp.ones(2))
    mask = Module(w=True, b=False)
    ours, theirs = gradchain.masked(gradchain.scale(2.0), mask), optax.masked(optax.scale(2.0), mask)
    u1, _ = ours.update(params, ours.init(params), params)
    u2, _ = theirs.update(params, theirs.init(params), params)
    assert u1.w.tolist() == u2.w.tolist() == [2.0, 2.0]
    assert u1.b.tolist() == u2.b.tolist() == [1.0, 1.0]
