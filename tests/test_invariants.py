"""Invariants of the named optimizers: hand-worked values, the hierarchy identities, dtypes that
never change, jit equal to eager, and the Optax protocol from both sides (optax.chain,
inject_hyperparams, MultiSteps, an Optax transform inside gradchain.chain)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion, with_objective
from tests.problems import (
    ADAPTIVE,
    REDUCED_STATE,
    grads_sequence,
    max_abs_diff,
    noise_sequence,
    run_grads,
    run_noisy,
    small_tree,
    steps_of,
)

NAMED = sorted(gradchain.optimizers.__all__)


def named(name, learning_rate=0.01):
    return with_objective(name, getattr(gradchain, name)(learning_rate))


def make_params(dtype=jnp.float32):
    rng = np.random.default_rng(0)
    return {
        "w": jnp.asarray(rng.normal(size=(4, 3)), dtype),
        "b": jnp.asarray(rng.normal(size=(3,)), dtype),
        "s": jnp.asarray(rng.normal(), dtype),
    }


def random_grads(params, k, dtype=None):
    rng = np.random.default_rng(10 + k)
    return jax.tree.map(
        lambda p: jnp.asarray(rng.normal(size=p.shape), dtype or p.dtype).astype(dtype or p.dtype),
        params,
    )


def run(opt, params, steps, *, jit=True, dtype=None):
    state = opt.init(params)
    update = jax.jit(opt.update) if jit else opt.update
    for k in range(steps):
        updates, state = update(random_grads(params, k, dtype), state, params)
        params = gradchain.apply_updates(params, updates)
    return params, state


# --- hand-worked values ------------------------------------------------------------------


@pytest.mark.parametrize("dtype, tol", [(jnp.float32, 1e-6), (jnp.float64, 1e-12)])
def test_adam_on_a_parabola_matches_the_hand_worked_steps(dtype, tol, request):
    # L(theta) = theta**2, g = 2 theta, theta_0 = 1, lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8.
    # Step 1: m_hat = 2, v_hat = 4 -> theta_1 = 1 - 0.1 * 2 / (2 + 1e-8) = 0.9000000005.
    # Step 2: g = 1.8; m = 0.36, v = 0.007236; m_hat = 0.36 / 0.19 = 1.8947368,
    #   v_hat = 0.007236 / 0.001999 = 3.6198099 -> theta_2 = 0.9 - 0.1 * 0.9958777 = 0.8004122.
    # float32 lands 3e-7 away (rounding of 1 - b**t); float64 agrees to 1e-12.
    if dtype == jnp.float64:
        request.getfixturevalue("x64")
    opt = gradchain.adam(0.1)
    theta = jnp.asarray(1.0, dtype)
    state = opt.init(theta)
    thetas = []
    for _ in range(2):
        updates, state = opt.update(2 * theta, state)
        theta = gradchain.apply_updates(theta, updates)
        thetas.append(float(theta))
    np.testing.assert_allclose(thetas, [0.9000000005, 0.8004122286917928], rtol=0, atol=tol)


def test_adam_first_step_without_bias_correction_is_3_16_times_larger():
    b1, b2 = 0.9, 0.999
    with_bc = gradchain.adam(1.0, b1, b2, eps=0.0)
    without_bc = gradchain.chain(
        gradchain.scale_by_momentum(b1, ema=True),
        gradchain.scale_by_rms(b2, 0.0, bias_correction=False),
        gradchain.scale_by_learning_rate(1.0),
    )
    g = jnp.asarray([0.3, -2.0, 5.0], jnp.float32)
    u_bc, _ = with_bc.update(g, with_bc.init(g))
    u_raw, _ = without_bc.update(g, without_bc.init(g))
    # closed form: the first raw step is (1 - b1) / sqrt(1 - b2) = 3.1623 times the corrected
    # one; float32 rounds 1 - b2 = 0.001 (relative error 7e-6 measured)
    np.testing.assert_allclose(u_raw / u_bc, (1 - b1) / np.sqrt(1 - b2), rtol=2e-5)
    np.testing.assert_allclose(np.abs(u_bc), 1.0, rtol=1e-6)


# --- jit, dtypes -------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMED)
def test_jit_equals_eager_and_unknown_keywords_are_ignored(name):
    # The eager run also passes keyword arguments no transform knows (Optax's protocol allows
    # them): they must change nothing. Tolerance: XLA fuses a jitted step differently from
    # op-by-op dispatch; measured after 3 steps: at most 2e-8 absolute on params ~1.
    params = make_params()
    opt = named(name)
    got = run(opt, params, 3, jit=True)
    state, want = opt.init(params), params
    # L-BFGS hands extra arguments to its value_fn, as Optax's does: none that it does not take
    unknown = {} if name == "lbfgs" else {"loss": 1.0, "tag": "x"}
    for k in range(3):
        updates, state = opt.update(random_grads(params, k), state, want, **unknown)
        want = gradchain.apply_updates(want, updates)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves((want, state))):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(
            np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=1e-6, atol=1e-7
        )


def dtype_tree(tree):
    return jax.tree.map(lambda x: jnp.result_type(x), tree)


@pytest.mark.parametrize("name", NAMED)
@pytest.mark.parametrize(
    "param_dtype, grad_dtype", [(jnp.bfloat16, jnp.float32), (jnp.float32, jnp.bfloat16)]
)
def test_params_and_state_keep_their_dtypes(name, param_dtype, grad_dtype):
    # Optax's Adam flips mu from bfloat16 to float32 when float32 gradients arrive; here the
    # state's dtype tree after step 1 and step 50 is the one init built, and the step
    # compiles once.
    opt = named(name)
    params = make_params(param_dtype)
    state = opt.init(params)
    want = dtype_tree(state)
    update = jax.jit(chex.assert_max_traces(opt.update, n=1))  # compiles once
    for k in range(50):
        updates, state = update(random_grads(params, k, grad_dtype), state, params)
        params = gradchain.apply_updates(params, updates)
        if k in (0, 49):
            assert dtype_tree(state) == want, f"after step {k + 1}"
    assert all(p.dtype == param_dtype for p in jax.tree.leaves(params))


HALF_PRECISION_ADAMS = {
    "adam": lambda: gradchain.adam(0.1),
    "adamw": lambda: gradchain.adamw(0.1, weight_decay=0.0),
    "amsgrad": lambda: gradchain.amsgrad(0.1),
    "nadam": lambda: gradchain.nadam(0.1),
    "adamax": lambda: gradchain.adamax(0.1),
}


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
@pytest.mark.parametrize("name", sorted(HALF_PRECISION_ADAMS))
def test_adam_family_zero_gradient_in_half_precision_gives_zero_not_nan(name, dtype):
    # eps = 1e-8 underflows to 0 in float16; the math runs in float32 and 0 / 0 is guarded
    params = make_params(dtype)
    opt = HALF_PRECISION_ADAMS[name]()
    state = opt.init(params)
    zeros = jax.tree.map(jnp.zeros_like, params)
    for _ in range(3):
        updates, state = opt.update(zeros, state, params)
        for u in jax.tree.leaves(updates):
            assert u.dtype == dtype
            assert (np.asarray(u, np.float32) == 0).all()  # NaN would fail this too


# --- the hierarchy: each rung is the one below it plus one piece -------------------------


def assert_same_run(a, b, params, steps=20):
    got, _ = run(a, params, steps)
    want, _ = run(b, params, steps)
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_momentum_with_zero_momentum_is_sgd():
    assert_same_run(gradchain.momentum(0.1, 0.0), gradchain.sgd(0.1), make_params())


def test_adamw_without_weight_decay_is_adam():
    assert_same_run(gradchain.adamw(0.01, weight_decay=0.0), gradchain.adam(0.01), make_params())


def test_adam_without_momentum_is_bias_corrected_rmsprop():
    # b1 = 0: mu = g and 1 - 0**t = 1, both exact; what is left is RMSProp with Adam's bias
    # correction and eps outside the root.
    rms = gradchain.rmsprop(0.01, 0.999, 1e-8, eps_in_sqrt=False, bias_correction=True)
    assert_same_run(gradchain.adam(0.01, b1=0.0), rms, make_params())


# --- complex parameters ------------------------------------------------------------------


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda: gradchain.adam(0.05), lambda: optax.adam(0.05)),
        (lambda: gradchain.sgd(0.05), lambda: optax.sgd(0.05)),
        (lambda: gradchain.momentum(0.05, 0.9), lambda: optax.sgd(0.05, momentum=0.9)),
    ],
    ids=["adam", "sgd", "momentum"],
)
def test_complex64_params_match_optax(ours, theirs):
    rng = np.random.default_rng(3)
    params = {"z": jnp.asarray(rng.normal(size=(5,)) + 1j * rng.normal(size=(5,)), jnp.complex64)}
    grads = [
        {"z": jnp.asarray(rng.normal(size=(5,)) + 1j * rng.normal(size=(5,)), jnp.complex64)}
        for _ in range(10)
    ]

    def go(opt, p):
        s = opt.init(p)
        for g in grads:
            u, s = opt.update(g, s, p)
            p = jax.tree.map(lambda a, b: a + b, p, u)
        return p

    got = go(ours(), params)
    with reference_promotion():
        want = go(theirs(), params)
    assert got["z"].dtype == jnp.complex64
    np.testing.assert_allclose(np.asarray(got["z"]), np.asarray(want["z"]), rtol=0, atol=2e-6)


# --- the Optax protocol, both ways -------------------------------------------------------


def run_both(ours, theirs, steps=30):
    params = make_params()
    got, _ = run(ours, params, steps)
    with reference_promotion():
        want, _ = run(theirs, params, steps)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=2e-6)


def test_gradchain_adam_inside_optax_chain():
    run_both(
        optax.chain(optax.clip_by_global_norm(1.0), gradchain.adam(0.01)),
        optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.01)),
    )


def test_optax_transform_inside_gradchain_chain():
    # the Optax clip is pre-processing: the second moment sees the clipped gradient
    run_both(
        gradchain.chain(optax.clip_by_global_norm(1.0), gradchain.adam(0.01)),
        optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.01)),
    )


def test_inject_hyperparams_wraps_gradchain_adam_and_its_learning_rate_is_live():
    ours = optax.inject_hyperparams(gradchain.adam)(learning_rate=0.01)
    theirs = optax.inject_hyperparams(optax.adam)(learning_rate=0.01)
    run_both(ours, theirs)

    params = make_params()
    state = ours.init(params)
    step = jax.jit(chex.assert_max_traces(ours.update, n=1))
    g = random_grads(params, 0)
    u1, state = step(g, state, params)
    state.hyperparams["learning_rate"] = jnp.asarray(0.0, jnp.float32)
    u2, state = step(g, state, params)
    assert all((np.asarray(u) != 0).any() for u in jax.tree.leaves(u1))
    assert all((np.asarray(u) == 0).all() for u in jax.tree.leaves(u2))


def test_multisteps_wraps_gradchain_adam():
    # MultiSteps' own code mixes int32 and float32: both sides run in standard promotion
    with reference_promotion():
        run_both(
            optax.MultiSteps(gradchain.adam(0.01), every_k_schedule=3),
            optax.MultiSteps(optax.adam(0.01), every_k_schedule=3),
        )


# --- the optimizers with a reduced state: jit equals eager, state types stable ---------------


@pytest.mark.parametrize("name", sorted(REDUCED_STATE))
def test_jit_equals_eager_and_state_dtypes_are_stable(name):
    # small leaves: eager dispatch compiles each primitive for each new shape
    rng = np.random.default_rng(5)
    shapes = {"w": (6, 8), "v": (5,), "s": ()}
    params = {k: jnp.asarray(rng.normal(size=v), jnp.float32) for k, v in shapes.items()}
    noise = noise_sequence(params, jnp.float32, steps=1)
    opt = REDUCED_STATE[name]()
    eager, eager_state = run_noisy(opt, params, noise, jit=False)
    jitted, jit_state = run_noisy(opt, params, noise, jit=True)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)
    start = opt.init(params)
    assert jax.tree.structure(start) == jax.tree.structure(jit_state)
    for s0, s1 in zip(jax.tree.leaves(start), jax.tree.leaves(jit_state)):
        assert (s0.dtype, s0.shape) == (s1.dtype, s1.shape)


# --- the adaptive optimizers: mixed precision, no shared buffers, their parents ------------


def _signature(state):
    return jax.tree.structure(state), [(x.shape, x.dtype) for x in jax.tree.leaves(state)]


@pytest.mark.parametrize("name", sorted(ADAPTIVE))
def test_jit_equals_eager_and_state_types_stay_with_mixed_precision_params(name):
    """bfloat16, float32 and float16 leaves: the jitted step keeps every state leaf's shape
    and dtype (one compilation), the updates keep the params' dtypes, and eager agrees."""
    params = {
        "w": jnp.ones((4, 3), jnp.bfloat16) * 0.5,
        "b": jnp.asarray([0.25, -1.0, 2.0], jnp.float32),
        "h": jnp.full((2,), -0.5, jnp.float16),
    }
    opt = ADAPTIVE[name]()
    rng = np.random.default_rng(3)
    grads = [
        jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
        for _ in range(3)
    ]
    step = jax.jit(chex.assert_max_traces(opt.update, n=1))  # no retrace: the state kept its types
    results = {}
    for mode, update in (("jit", step), ("eager", opt.update)):
        p, state = params, opt.init(params)
        before = _signature(state)
        for g in grads:
            updates, state = update(g, state, p)
            assert jax.tree.map(lambda x: x.dtype, updates) == jax.tree.map(lambda x: x.dtype, p)
            assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))
            p = gradchain.apply_updates(p, updates)
            assert _signature(state) == before
        results[mode] = p
    # float32 to rounding; the 16-bit leaves to one unit in their last place (at |p| <= 1).
    assert max_abs_diff(results["jit"]["b"], results["eager"]["b"]) <= 1e-6
    assert max_abs_diff(results["jit"]["w"], results["eager"]["w"]) <= 2**-8
    assert max_abs_diff(results["jit"]["h"], results["eager"]["h"]) <= 2**-11


@pytest.mark.parametrize("name", sorted(ADAPTIVE))
def test_no_two_state_leaves_share_a_buffer(name):
    state = ADAPTIVE[name]().init(small_tree(jnp.float32))
    ids = [id(x) for x in jax.tree.leaves(state)]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    "child, parent",
    [
        (lambda: gradchain.nadamw(0.01, weight_decay=0.0), lambda: gradchain.nadam(0.01)),
        (lambda: gradchain.adamaxw(0.01, weight_decay=0.0), lambda: gradchain.adamax(0.01)),
        (  # no slow momentum: AdamW
            lambda: gradchain.ademamix(0.01, alpha=0.0, weight_decay=0.1),
            lambda: gradchain.adamw(0.01, weight_decay=0.1),
        ),
        (  # a threshold no step reaches: bias-corrected momentum SGD
            lambda: gradchain.radam(0.01, threshold=1e9),
            lambda: gradchain.chain(
                gradchain.scale_by_momentum(0.9, ema=True),
                gradchain.bias_correct(0.9),
                gradchain.scale_by_learning_rate(0.01),
            ),
        ),
        (  # no momentum, no decay: the trust ratio times the learning rate
            lambda: gradchain.lars(0.1, trust_coefficient=1.0, momentum=0.0),
            lambda: gradchain.chain(
                gradchain.scale_by_trust_ratio(), gradchain.scale_by_learning_rate(0.1)
            ),
        ),
    ],
    ids=["nadamw->nadam", "adamaxw->adamax", "ademamix->adamw", "radam->momentum", "lars->ratio"],
)
def test_reduces_to_parent(child, parent):
    params = small_tree(jnp.float32)
    grads = grads_sequence(params, jnp.float32, steps=30)
    a, _ = run_grads(child(), params, grads)
    b, _ = run_grads(parent(), params, grads)
    assert max_abs_diff(a, b) <= 1e-6


# A valid new value for every live argument of these optimizers (different from its default).
NEW_VALUES = {
    "learning_rate": 0.05, "b1": 0.8, "b2": 0.95, "b3": 0.95, "alpha": 2.0, "eps": 0.5,
    "eps_root": 1e-4, "weight_decay": 0.05, "threshold": 3.0, "trust_coefficient": 0.02,
    "momentum": 0.5, "rho": 0.7, "eta_minus": 0.4, "eta_plus": 1.3, "min_step_size": 6e-3,
    "max_step_size": 0.02, "weight_lr_power": 1.0,
}


LEARNING_RATE = {"lars": 0.1, "adadelta": 1.0}  # the others: 0.01


@pytest.mark.parametrize("name", sorted(ADAPTIVE))
def test_set_hyperparam_equals_a_fresh_optimizer_without_recompiling(name):
    factory = getattr(gradchain, name)
    lr = LEARNING_RATE.get(name, 0.01)
    params = small_tree(jnp.float32)
    # 8 steps: RAdam's rectification starts at step 6, ADOPT's first update is 0.
    grads = steps_of(grads_sequence(params, jnp.float32, steps=8))
    opt = factory(lr)
    live_names = sorted(gradchain.get_hyperparams(opt.init(params)))
    assert live_names and set(live_names) <= set(NEW_VALUES)
    if name == "rprop":  # its learning rate is the initial step size: read once, at init
        assert "learning_rate" not in live_names

    def steps(step, state):
        p, out = params, []
        for g in grads:
            updates, state = step(g, state, p)
            p = gradchain.apply_updates(p, updates)
            out.append(updates)
        return out

    step = jax.jit(chex.assert_max_traces(opt.update, n=1))  # every value runs through it
    unchanged = steps(step, opt.init(params))
    for arg in live_names:
        value = NEW_VALUES[arg]
        got = steps(step, gradchain.set_hyperparam(opt.init(params), arg, value))
        fresh = factory(**{"learning_rate": lr, arg: value})
        want = steps(jax.jit(fresh.update), fresh.init(params))
        assert max_abs_diff(got, want) == 0, arg
        assert max_abs_diff(got, unchanged) > 0, f"{arg} changed nothing in 8 steps"


# --- Python-number leaves (issue 23) -------------------------------------------------------


@pytest.mark.parametrize("name", NAMED)
def test_python_float_leaves_update_as_jax_scalars_do(name):
    # init accepts a Python float (Optax too); update must treat it as jnp.asarray(float)
    # does: the same numbers, or the same refusal -- never an AttributeError on .dtype.
    opt = named(name)

    def step(param, grad):
        return opt.update(grad, opt.init(param), param)

    try:
        want = step(jnp.asarray(1.0), jnp.asarray(0.5))
    except gradchain.GradchainError as e:
        with pytest.raises(gradchain.GradchainError) as got:
            step(1.0, 0.5)
        assert str(got.value) == str(e)
        return
    got = step(1.0, 0.5)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(gradchain.apply_updates(1.0, got[0])) == float(1.0 + want[0])
