"""Adafactor, Muon, signSGD and Signum against Optax (200 steps, float32 and float64), their
invariants, their reduced state, and their refusals under shard_map."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optax._src import factorized

import gradchain
from gradchain.transforms.orthogonal import newton_schulz
from tests.conftest import reference_promotion

STEPS = 200


def optax_adafactor_f64_schedule(
    learning_rate=None,
    min_dim_size_to_factor=128,
    decay_rate=0.8,
    decay_offset=0,
    multiply_by_parameter_scale=True,
    clipping_threshold=1.0,
    momentum=None,
    dtype_momentum=jnp.float32,
    weight_decay_rate=None,
    eps=1e-30,
    factored=True,
):
    """``optax.adafactor``'s chain, built from Optax's own transforms in the same order, with
    the decay schedule 1 - t**-0.8 evaluated in float64. (Optax evaluates it in float32 even
    for float64 params, which alone moves results by ~3e-7 relative after 200 steps; see
    ``test_adafactor_float64_differs_from_optax_only_by_its_float32_schedule``.)"""

    def decay_f64(step, exponent):
        return 1.0 - jnp.asarray(step + 1, jnp.float64) ** (-exponent)

    parts = [
        factorized.scale_by_factored_rms(
            factored, decay_rate, decay_offset, min_dim_size_to_factor, eps, decay_f64
        )
    ]
    if clipping_threshold is not None:
        parts.append(optax.clip_by_block_rms(clipping_threshold))
    if learning_rate is not None:
        parts.append(optax.scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        parts.append(optax.scale_by_param_block_rms())
    if momentum is not None:
        parts.append(optax.ema(momentum, debias=False, accumulator_dtype=dtype_momentum))
    if weight_decay_rate is not None:
        parts.append(optax.add_decayed_weights(weight_decay_rate))
    return optax.chain(*parts, optax.scale(-1.0))


# name: (gradchain factory, optax factory(dtype)). Same math, same hyperparameters.
def _adafactor_pair(**kw):
    """Optax names the momentum's dtype ``dtype_momentum``; gradchain ``mu_dtype``."""
    their_kw = {("dtype_momentum" if k == "mu_dtype" else k): v for k, v in kw.items()}

    def theirs(dtype):
        if dtype == jnp.float64:
            return optax_adafactor_f64_schedule(**their_kw)
        return optax.adafactor(**their_kw)

    return (lambda: gradchain.adafactor(**kw), theirs)


# Every option that differs from the default, including a weight-decay mask that a function
# computes from the (partitioned) params: decay only the large matrix.
MUON_OPTIONS = dict(
    beta=0.9,
    weight_decay=0.1,
    weight_decay_mask=lambda params: jax.tree.map(lambda p: p.shape[0] > 100, params),
    nesterov=False,
    adam_weight_decay=0.1,
    adam_learning_rate=0.003,
    consistent_rms=0.2,
    ns_steps=4,
)

PAIRS = {
    "adafactor": _adafactor_pair(),
    # A float32 momentum under float64 params: Optax computes decay * mu in float32, gradchain
    # in float64 (3e-9 apart after 5 steps), so the momentum keeps the params' dtype here.
    "adafactor_lr_momentum_masked_decay": _adafactor_pair(
        learning_rate=0.01, momentum=0.9, mu_dtype=None, weight_decay_rate=0.01
    ),
    "adafactor_small_matrices_factored_absolute_step": _adafactor_pair(
        learning_rate=0.01,
        min_dim_size_to_factor=2,
        clipping_threshold=None,
        multiply_by_parameter_scale=False,
    ),
    "muon": (lambda: gradchain.muon(0.01), lambda dtype: optax.contrib.muon(0.01)),
    "muon_options": (
        lambda: gradchain.muon(0.01, **MUON_OPTIONS),
        lambda dtype: optax.contrib.muon(0.01, **MUON_OPTIONS),
    ),
    "sign_sgd": (lambda: gradchain.sign_sgd(0.01), lambda dtype: optax.sign_sgd(0.01)),
    "signum": (lambda: gradchain.signum(0.01, 0.8), lambda dtype: optax.signum(0.01, 0.8)),
}

# Max |difference| in params (of magnitude ~1) after 200 steps. Measured worst: float32 8.0e-6
# (Muon: five Newton-Schulz matrix polynomials; Adafactor 4.9e-7), float64 2.2e-15. Frozen with
# a margin.
TOLERANCE = {jnp.float32: 2e-5, jnp.float64: 1e-13}


def make_params(dtype):
    rng = np.random.default_rng(1)
    return {
        "w": jnp.asarray(rng.normal(size=(130, 160)), dtype),  # factored by default
        "v": jnp.asarray(rng.normal(size=(6, 3)), dtype),  # too small to factor
        "layers": [
            jnp.asarray(rng.normal(size=(7,)), dtype),
            jnp.asarray(rng.normal(), dtype),
            jnp.asarray(rng.normal(size=(5, 9)), dtype),
        ],
    }


def noise_sequence(params, dtype, steps=STEPS):
    """``steps`` random trees like params, stacked along a leading axis."""
    rng = np.random.default_rng(2)
    return jax.tree.map(
        lambda p: jnp.asarray(rng.normal(size=(steps, *np.shape(p))), dtype), params
    )


def run(opt, params, noise, jit=True):
    """Steps on a noisy quadratic: gradient = params + noise (default Adafactor has no learning
    rate, and on pure noise its params would grow without bound). One ``lax.scan`` when
    jitted, a Python loop of eager updates otherwise."""

    def step(carry, n):
        params, state = carry
        grads = jax.tree.map(lambda p, x: p + x, params, n)
        updates, state = opt.update(grads, state, params)
        return (jax.tree.map(lambda p, u: p + u, params, updates), state), None

    carry = (params, opt.init(params))
    if jit:
        return jax.jit(lambda c, ns: jax.lax.scan(step, c, ns)[0])(carry, noise)
    for i in range(jax.tree.leaves(noise)[0].shape[0]):
        carry, _ = step(carry, jax.tree.map(lambda x, i=i: x[i], noise))
    return carry


@pytest.mark.parametrize("name", sorted(PAIRS))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_matches_optax(name, dtype, request):
    if dtype == jnp.float64:
        request.getfixturevalue("x64")
    ours, theirs = PAIRS[name]
    params = make_params(dtype)
    noise = noise_sequence(params, dtype)
    got, _ = run(ours(), params, noise)
    with reference_promotion():
        want, _ = run(theirs(dtype), params, noise)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert g.dtype == dtype
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=0, atol=TOLERANCE[dtype])


def test_adafactor_float64_differs_from_optax_only_by_its_float32_schedule(x64):
    params = make_params(jnp.float64)
    noise = noise_sequence(params, jnp.float64, steps=50)
    got, _ = run(gradchain.adafactor(0.01), params, noise)
    with reference_promotion():
        want, _ = run(optax.adafactor(0.01), params, noise)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-6, atol=1e-7)


OPTIMIZERS = {
    "adafactor": lambda: gradchain.adafactor(0.01, min_dim_size_to_factor=4, momentum=0.9),
    "muon": lambda: gradchain.muon(0.01),
    "sign_sgd": lambda: gradchain.sign_sgd(0.01),
    "signum": lambda: gradchain.signum(0.01, mu_dtype=jnp.bfloat16),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_jit_equals_eager_and_state_dtypes_are_stable(name):
    # small leaves: eager dispatch compiles each primitive for each new shape
    rng = np.random.default_rng(5)
    shapes = {"w": (6, 8), "v": (5,), "s": ()}
    params = {k: jnp.asarray(rng.normal(size=v), jnp.float32) for k, v in shapes.items()}
    noise = noise_sequence(params, jnp.float32, steps=1)
    opt = OPTIMIZERS[name]()
    eager, eager_state = run(opt, params, noise, jit=False)
    jitted, jit_state = run(opt, params, noise, jit=True)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)
    start = opt.init(params)
    assert jax.tree.structure(start) == jax.tree.structure(jit_state)
    for s0, s1 in zip(jax.tree.leaves(start), jax.tree.leaves(jit_state)):
        assert (s0.dtype, s0.shape) == (s1.dtype, s1.shape)


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


def _state_bytes(state):
    return sum(x.nbytes for x in jax.tree.leaves(state))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_memory_report_equals_the_real_state_bytes(name):
    params = make_params(jnp.float32)
    opt = OPTIMIZERS[name]()
    assert gradchain.memory_report(opt, params).total_bytes == _state_bytes(opt.init(params))


def test_muon_keeps_one_momentum_for_matrices_and_adam_for_the_rest():
    params = {"w": jnp.zeros((64, 32)), "b": jnp.zeros(32)}
    report = gradchain.memory_report(gradchain.muon(0.01), params)
    assert report.per_parameter_elements == 64 * 32 + 2 * 32


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.complex64])
def test_newton_schulz_matches_optax_and_pushes_singular_values_towards_one(dtype):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 24)) + (
        1j * rng.normal(size=(40, 24)) if dtype == jnp.complex64 else 0
    )
    x = jnp.asarray(x, dtype)
    ours = newton_schulz(x)
    with reference_promotion():
        theirs = optax.contrib._muon.orthogonalize_via_newton_schulz(
            x, jnp.asarray(gradchain.transforms.orthogonal.NS_COEFFS), 5
        )
    assert ours.dtype == dtype
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=0, atol=2e-6)
    s = np.linalg.svd(np.asarray(ours), compute_uv=False)
    assert 0.6 < s.min() and s.max() < 1.25


def test_newton_schulz_refuses_a_non_matrix_leaf_with_a_remedy():
    opt = gradchain.scale_by_newton_schulz()
    with pytest.raises(gradchain.GradchainError, match="gradchain.partition"):
        opt.update({"t": jnp.ones((2, 3, 4))}, opt.init(None))


def test_muon_refuses_bad_coefficients():
    with pytest.raises(gradchain.GradchainError, match="ns_coeffs"):
        gradchain.muon(0.01, ns_coeffs=(1.0, 2.0))
    with pytest.raises(gradchain.GradchainError, match="ns_steps"):
        gradchain.muon(0.01, ns_coeffs=((3.0, -4.0, 2.0),) * 2, ns_steps=5)


@pytest.mark.parametrize("inject", [optax.inject_hyperparams, gradchain.inject_hyperparams])
def test_adafactor_under_inject_hyperparams_takes_a_traced_decay_offset(inject):
    """Every number but the shape-setting min_dim_size_to_factor is traced, decay_offset
    included (it is only subtracted from the count); three jitted steps equal plain adafactor."""
    kw = dict(learning_rate=0.01, min_dim_size_to_factor=4, decay_offset=0)
    injected = inject(gradchain.adafactor, static_args=("min_dim_size_to_factor",))(**kw)
    plain = gradchain.adafactor(**kw)
    params = make_params(jnp.float32)
    noise = noise_sequence(params, jnp.float32, steps=3)
    got, state = run(injected, params, noise)
    want, _ = run(plain, params, noise)
    assert "decay_offset" in state.hyperparams
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def test_adafactor_hyperparameters_are_live_under_its_own_names():
    opt = gradchain.adafactor(0.01, momentum=0.9)
    state = opt.init(make_params(jnp.float32))
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


def test_signum_equals_sign_of_heavy_ball_momentum():
    """The sign ignores the EMA's positive factor (1 - beta): Signum is momentum, then sign."""
    params = make_params(jnp.float32)
    noise = noise_sequence(params, jnp.float32, steps=20)
    by_hand = gradchain.chain(
        gradchain.scale_by_momentum(0.9),
        gradchain.scale_by_sign(),
        gradchain.scale_by_learning_rate(0.01),
    )
    got, _ = run(gradchain.signum(0.01, 0.9), params, noise)
    want, _ = run(by_hand, params, noise)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


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


def test_muon_passes_zero_size_matrices_through_as_empty_updates():
    # a (0, 3) leaf once divided by its fan_in of 0 (ZeroDivisionError); Optax 0.2.8's
    # contrib.muon still does. No elements: the update is empty, the other leaves step.
    params = {"w": jnp.zeros((0, 3)), "v": jnp.ones((3, 0)), "x": jnp.ones((4, 3))}
    opt = gradchain.muon(0.1)
    for update in (opt.update, jax.jit(opt.update)):
        out, _ = update(params, opt.init(params), params)
        assert {k: (u.shape, u.dtype) for k, u in out.items()} == {
            k: (p.shape, p.dtype) for k, p in params.items()
        }
        assert np.all(np.isfinite(np.asarray(out["x"]))) and np.any(np.asarray(out["x"]))
