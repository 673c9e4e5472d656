"""The factored family (transforms/factored.py, optimizers/factored.py): Adafactor, its
reduced second moment, and its leaf reductions under shard_map."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

"""scale_by_factored_rms under Optax's keyword names (step_offset, epsilon, decay_rate_fn), and
Adafactor's init on abstract params (jax.ShapeDtypeStruct), against Optax, float32 and
float64. Tolerances measured once and frozen, the measured numbers beside them."""

import optax
import pytest

import gradchain
from tests.conftest import reference_promotion
from tests.problems import descent_gap, matrix_tree, noise_sequence, run_noisy


def test_adafactor_float64_differs_from_optax_only_by_its_float32_schedule(x64):
    params = matrix_tree(jnp.float64)
    noise = noise_sequence(params, jnp.float64, steps=50)
    got, _ = run_noisy(gradchain.adafactor(0.01), params, noise)
    with reference_promotion():
        want, _ = run_noisy(optax.adafactor(0.01), params, noise)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-6, atol=1e-7)


def test_adafactor_keeps_a_row_and_a_column_per_matrix_and_names_the_reduced_axis():
    params = {"tall": jnp.zeros((300, 200)), "wide": jnp.zeros((200, 300)), "vec": jnp.zeros(500)}
    nu = gradchain.adafactor().init(params).inner[0].nu
    tall, wide = nu["tall"], nu["wide"]
    assert isinstance(tall, gradchain.FactoredMoment) and isinstance(wide, gradchain.FactoredMoment)
    # row: mean over the largest axis; col: over the second largest.
    assert tall.reduced_axis == {"row": 0, "col": 1}
    assert (tall.row.shape, tall.col.shape) == ((200,), (300,))
    assert wide.reduced_axis == {"row": 1, "col": 0}
    assert (wide.row.shape, wide.col.shape) == ((200,), (300,))
    assert nu["vec"].shape == (500,)  # vectors keep a full second moment


def test_adafactor_memory_report_counts_rows_plus_columns():
    params = {"w": jax.ShapeDtypeStruct((4096, 4096), jnp.float32)}
    report = gradchain.memory_report(gradchain.adafactor(), params)
    [row] = [r for r in report.rows if r.slot == "nu"]
    assert (row.kind, row.elements, row.bytes) == ("reduced", 8192, 8192 * 4)


@pytest.mark.parametrize("inject", [optax.inject_hyperparams, gradchain.inject_hyperparams])
def test_adafactor_under_inject_hyperparams_takes_a_traced_decay_offset(inject):
    """Every number but the shape-setting min_dim_size_to_factor is traced, decay_offset
    included (it is only subtracted from the count); three jitted steps equal plain adafactor."""
    kw = dict(learning_rate=0.01, min_dim_size_to_factor=4, decay_offset=0)
    injected = inject(gradchain.adafactor, static_args=("min_dim_size_to_factor",))(**kw)
    plain = gradchain.adafactor(**kw)
    params = matrix_tree(jnp.float32)
    noise = noise_sequence(params, jnp.float32, steps=3)
    got, state = run_noisy(injected, params, noise)
    want, _ = run_noisy(plain, params, noise)
    assert "decay_offset" in state.hyperparams
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def test_adafactor_hyperparameters_are_live_under_its_own_names():
    opt = gradchain.adafactor(0.01, momentum=0.9)
    state = opt.init(matrix_tree(jnp.float32))
    assert sorted(gradchain.get_hyperparams(state)) == [
        "clipping_threshold", "decay_rate", "eps", "learning_rate", "momentum"
    ]  # fmt: skip
    state = gradchain.set_hyperparam(state, "decay_rate", 0.5)
    assert float(gradchain.get_hyperparams(state)["decay_rate"]) == 0.5
    with pytest.raises(gradchain.GradchainError, match="decay_rate"):
        gradchain.set_hyperparam(state, "decay_rate", -1.0)


def test_adafactor_refuses_bad_hyperparameters():
    with pytest.raises(gradchain.GradchainError, match="threshold"):
        gradchain.adafactor(clipping_threshold=0.0)
    with pytest.raises(gradchain.GradchainError, match="decay_rate"):
        gradchain.adafactor(decay_rate=-1.0)


@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.complex128])
def test_adafactor_moves_the_imaginary_part_of_complex_params_as_optax_does(dtype, request):
    """The factored and the full second moment, and the clipping, keep a complex update
    complex (they cast it to the moment's real dtype, and complex params never reached their
    target in Optax's alias suite). 20 steps, one factored matrix and one vector: measured
    1.5e-7 (complex64) and 3.1e-9 (complex128, Optax's float32 decay schedule) from Optax."""
    if dtype == jnp.complex128:
        request.getfixturevalue("x64")
    rng = np.random.default_rng(0)
    params = {
        k: jnp.asarray(rng.normal(size=s) + 1j * rng.normal(size=s), dtype)
        for k, s in {"w": (3, 4), "b": (4,)}.items()
    }

    def run_complex(opt):
        def step(carry, _):
            p, s = carry
            g = jax.tree.map(lambda x: 2 * (x - (1 + 1j)), p)  # conj(d|p - t|^2/dp)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(step, (params, opt.init(params)), None, length=20)[0][0]

    got = run_complex(gradchain.adafactor(0.05, min_dim_size_to_factor=2))
    with reference_promotion():
        want = run_complex(optax.adafactor(0.05, min_dim_size_to_factor=2))
    for k in params:
        assert got[k].dtype == dtype
        assert np.abs(np.imag(got[k] - params[k])).max() > 0.1  # the imaginary part moved
        tol = 1e-6 if dtype == jnp.complex64 else 1e-8
        np.testing.assert_allclose(np.asarray(got[k]), np.asarray(want[k]), rtol=0, atol=tol)


# --- shard_map: reductions over a leaf are right with axis_name, or refused -------------------


FOUR_DEVICE_CHECK = """
import jax, jax.numpy as jnp, numpy as np, gradchain
from jax.sharding import NamedSharding, PartitionSpec as P
from gradchain import sharding as gs
mesh = jax.make_mesh((4,), ("d",))
rng = np.random.default_rng(0)
host = {"a": rng.normal(size=(8, 6)), "b": rng.normal(size=(6, 8)),
        "c": rng.normal(size=(2, 8, 12)), "v": rng.normal(size=(12,))}
host = {k: jnp.asarray(v, jnp.float32) for k, v in host.items()}
# split along the largest axis, the second largest, a batch axis; a vector
specs = {"a": P("d"), "b": P(None, "d"), "c": P(None, None, "d"), "v": P("d")}
placed = {k: jax.device_put(v, NamedSharding(mesh, specs[k])) for k, v in host.items()}

def run(opt, sharded, keys=tuple(specs), steps=3):
    params = {k: (placed if sharded else host)[k] for k in keys}
    sp = {k: specs[k] for k in keys}
    if sharded:
        shardings = gs.state_shardings(opt, params)
        state = jax.jit(opt.init, out_shardings=shardings)(params)
        st = jax.tree.map(lambda s: s.spec, shardings)
        step = jax.jit(jax.shard_map(lambda p, s: opt.update(jax.tree.map(jnp.sin, p), s, p),
                                     mesh=mesh, in_specs=(sp, st), out_specs=(sp, st)))
    else:
        state = opt.init(params)
        step = jax.jit(lambda p, s: opt.update(jax.tree.map(jnp.sin, p), s, p))
    for _ in range(steps):
        u, state = step(params, state)
        params = jax.tree.map(lambda p, u: p + u, params, u)
    return params

makers = [
    lambda ax: gradchain.scale_by_factored_rms(min_dim_size_to_factor=2, axis_name=ax),
    lambda ax: gradchain.clip_by_block_rms(0.5, axis_name=ax),
    lambda ax: gradchain.scale_by_param_block_rms(axis_name=ax),
]
for make in makers:
    want, got = run(make(None), False), run(make("d"), True)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-6, atol=2e-6)
for opt, keys in [(makers[0](None), tuple(specs)), (makers[1](None), tuple(specs)),
                  (gradchain.scale_by_newton_schulz(), ("a", "b"))]:
    try:
        run(opt, True, keys, steps=1)
    except gradchain.GradchainError as e:
        assert "sharded over mesh axes" in str(e)
    else:
        raise AssertionError("a sharded reduction was not refused")
print("ok")
"""


def test_leaf_reductions_are_right_on_four_sharded_devices_or_refused():
    """Four simulated devices need a fresh process: JAX fixes the device count at start."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    env.pop("JAX_ENABLE_X64", None)
    result = subprocess.run(
        [sys.executable, "-c", FOUR_DEVICE_CHECK], env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0 and "ok" in result.stdout, result.stdout + result.stderr

STEPS = 40


def problem(dtype):
    k = jax.random.split(jax.random.key(2), 2)
    target = {
        "w": jax.random.normal(k[0], (130, 129), dtype),
        "b": jax.random.normal(k[1], (5,), dtype),
    }

    def f(p):
        return sum(0.5 * jnp.sum((p[n] - target[n]) ** 2) for n in p)

    return f, jax.tree.map(jnp.zeros_like, target)


def descend(lib, opt, f, params):
    def body(carry, _):
        p, s = carry
        u, s = opt.update(jax.grad(f)(p), s, p)
        return (lib.apply_updates(p, u), s), f(p)

    (p, _), values = jax.lax.scan(body, (params, opt.init(params)), None, length=STEPS)
    return p, values


def capped(step, decay_rate):  # Zhai et al.'s schedule: beta capped at 0.999
    t = jnp.asarray(step, jnp.float32) + 1  # the step arrives as an int32, as in Optax
    return jnp.minimum(1.0 - t ** (-decay_rate), 0.999)


CASES = {  # name: (gradchain's, Optax's); the direction, then a fixed step
    "optax-keywords": (
        lambda: gradchain.chain(
            gradchain.scale_by_factored_rms(True, 0.8, step_offset=0, epsilon=1e-20),
            gradchain.scale(-0.05),
        ),
        lambda: optax.chain(
            optax.scale_by_factored_rms(True, 0.8, step_offset=0, epsilon=1e-20), optax.scale(-0.05)
        ),
    ),
    "decay_rate_fn": (
        lambda: gradchain.chain(
            gradchain.scale_by_factored_rms(decay_rate_fn=capped), gradchain.scale(-0.05)
        ),
        lambda: optax.chain(optax.scale_by_factored_rms(decay_rate_fn=capped), optax.scale(-0.05)),
    ),
    "positional": (  # Optax's positions: factored, decay_rate, step_offset, min_dim, eps, fn
        lambda: gradchain.chain(
            gradchain.scale_by_factored_rms(True, 0.7, 0, 100, 1e-30, capped),
            gradchain.scale(-0.05),
        ),
        lambda: optax.chain(
            optax.scale_by_factored_rms(True, 0.7, 0, 100, 1e-30, capped), optax.scale(-0.05)
        ),
    ),
}
# max |params difference| after 40 steps (params ~1), float32 / float64, measured. Optax
# evaluates its power schedule in float32 even for float64 params (ours in the moment's dtype):
# 1.7e-9 in float64 where the power schedule runs; the capped schedule is the same function in both.
MEASURED = {
    "optax-keywords": (2.4e-7, 1.7e-9),
    "decay_rate_fn": (2.4e-7, 4.4e-16),
    "positional": (2.4e-7, 4.4e-16),
}
FLOOR = {jnp.float32: 1e-6, jnp.float64: 4e-15}  # room for another CPU's FMA choices


def diff(name, dtype):
    ours, theirs = CASES[name]
    return descent_gap(ours(), theirs(), problem(dtype), descend)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_optax(dtype, name):
    assert diff(name, dtype) <= max(4 * MEASURED[name][dtype == jnp.float64], FLOOR[dtype])


def test_step_offset_shifts_the_schedule_as_optax(dtype):
    # (a descent from count 0 with an offset would start at t = 1 - offset <= 0: NaN in both)
    f, p = problem(dtype)
    g = jax.grad(f)(jax.tree.map(lambda x: x + 0.5, p))
    ours = gradchain.scale_by_factored_rms(step_offset=3, decay_rate_fn=capped)
    theirs = optax.scale_by_factored_rms(step_offset=3, decay_rate_fn=capped)
    got, _ = ours.update(g, ours.init(p)._replace(count=jnp.asarray(10, jnp.int32)), p)
    with reference_promotion():
        want, _ = theirs.update(g, theirs.init(p)._replace(count=jnp.asarray(10, jnp.int32)), p)
    # measured: float32 1.4e-6, float64 1.8e-15 (one update from fresh statistics: entries ~10)
    bound = 6e-6 if dtype == jnp.float32 else 8e-15
    assert (
        max(
            float(jnp.max(jnp.abs(a - b)))
            for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want))
        )
        <= bound
    )


def test_adafactor_init_on_abstract_params(dtype):
    params = {"w": jnp.ones((256, 130), dtype), "b": jnp.ones((3,), dtype)}
    abstract = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), params)
    for kw in ({}, {"momentum": 0.9, "weight_decay_rate": 0.1}):
        opt = gradchain.adafactor(0.1, **kw)
        got, want = opt.init(abstract), opt.init(params)
        assert jax.tree.structure(got) == jax.tree.structure(want)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            assert a.shape == b.shape and a.dtype == b.dtype
        assert all(
            float(jnp.max(jnp.abs(a - b))) == 0
            for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want))
        )
        opt.update(params, got, params)  # the abstract init's state is a working state


def test_both_spellings_refused():
    with pytest.raises(gradchain.GradchainError, match="step_offset"):
        gradchain.scale_by_factored_rms(decay_offset=2, step_offset=2)
    with pytest.raises(gradchain.GradchainError, match="epsilon"):
        gradchain.scale_by_factored_rms(eps=1e-10, epsilon=1e-20)
    with pytest.raises(gradchain.GradchainError, match="decay_rate_fn"):
        gradchain.scale_by_factored_rms(decay_rate_fn=0.8)
