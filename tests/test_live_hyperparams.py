"""Hyperparameters live in the state: changing them between steps reuses the compiled step
and takes effect exactly as in Optax's inject_hyperparams; they keep their own dtype whatever
the params'. Also: switching optimizers between phases of a run."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion

STEPS = 12
# Max |diff| vs Optax after 12 steps with mid-run changes; measured 6e-8 (float32), 0
# (float64). Frozen with the margin the reference tests use.
TOL = {jnp.float32: 2e-6, jnp.float64: 2e-15}


@pytest.fixture(params=[jnp.float32, jnp.float64], ids=["float32", "float64"])
def dtype(request):
    if request.param == jnp.float64:
        request.getfixturevalue("x64")
    return request.param


def make_params(dtype):
    rng = np.random.default_rng(1)
    return {
        "w": jnp.asarray(rng.normal(size=(4, 3)), dtype),
        "b": jnp.asarray(rng.normal(size=(3,)), dtype),
    }


def grads_sequence(params, dtype, steps=STEPS):
    rng = np.random.default_rng(2)
    return [
        jax.tree.map(lambda p: jnp.asarray(rng.normal(size=np.shape(p)), dtype), params)
        for _ in range(steps)
    ]


def counting_step(opt):
    """A jitted training step, and a list that grows by one each time it is traced."""
    traces = []

    @jax.jit
    def step(params, state, grads):
        traces.append(1)
        updates, state = opt.update(grads, state, params)
        return gradchain.apply_updates(params, updates), state

    return step, traces


# step: {our state path: value, optax's hyperparameter name: value}
CHANGES = {
    3: {"learning_rate": 0.003},
    5: {"weight_decay": 0.5},
    7: {("0.decay", "1.decay", "b1"): 0.5},  # b1 drives the momentum and its bias correction
    9: {("2.decay", "b2"): 0.9, "learning_rate": 0.02},
}


def test_changing_hyperparameters_reuses_the_step_and_matches_optax(dtype):
    params = make_params(dtype)
    grads = grads_sequence(params, dtype)
    opt = gradchain.adamw(0.01, b1=0.9, b2=0.999, weight_decay=0.1)
    step, traces = counting_step(opt)
    p, state = params, opt.init(params)
    for t, g in enumerate(grads):
        for names, value in CHANGES.get(t, {}).items():
            ours = names[:-1] if isinstance(names, tuple) else (names,)
            for name in ours:
                state = gradchain.set_hyperparam(state, name, value)
        p, state = step(p, state, g)
    assert len(traces) == 1 and step._cache_size() == 1
    hp = gradchain.get_hyperparams(state)
    assert float(hp["learning_rate"]) == pytest.approx(0.02)
    assert float(hp["2.decay"]) == pytest.approx(0.9)
    assert all(v.dtype == dtype for v in hp.values())

    with reference_promotion():
        ref = optax.inject_hyperparams(optax.adamw)(
            learning_rate=0.01, b1=0.9, b2=0.999, weight_decay=0.1
        )
        q, ref_state = params, ref.init(params)
        for t, g in enumerate(grads):
            for names, value in CHANGES.get(t, {}).items():
                name = names[-1] if isinstance(names, tuple) else names
                ref_state.hyperparams[name] = jnp.asarray(value, dtype)
            updates, ref_state = ref.update(g, ref_state, q)
            q = optax.apply_updates(q, updates)
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(q)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=TOL[dtype])


def test_a_change_takes_effect_on_the_next_step_exactly():
    params = make_params(jnp.float32)
    g = grads_sequence(params, jnp.float32, steps=1)[0]
    opt = gradchain.sgd(0.1)
    step, traces = counting_step(opt)
    state = gradchain.set_hyperparam(opt.init(params), "learning_rate", 0.25)
    new, state = step(params, state, g)
    want = jax.tree.map(lambda p, x: p - jnp.float32(0.25) * x, params, g)
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(want)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(state[0].learning_rate) == 0.25 and len(traces) == 1


def test_a_group_learning_rate_changes_without_recompiling():
    params = make_params(jnp.float32)
    grads = grads_sequence(params, jnp.float32, steps=4)
    opt = gradchain.partition(
        {"slow": gradchain.sgd(1e-3), "fast": gradchain.adam(1e-2)}, {"w": "slow", "b": "fast"}
    )
    step, traces = counting_step(opt)
    p, state = params, opt.init(params)
    paths = [k for k in gradchain.get_hyperparams(state) if k.endswith("learning_rate")]
    assert sorted(paths) == ["groups.fast.3.learning_rate", "groups.slow.0.learning_rate"]
    for t, g in enumerate(grads):
        if t == 2:
            state = gradchain.set_hyperparam(state, "groups.slow.0.learning_rate", 0.5)
        before = p
        p, state = step(p, state, g)
    np.testing.assert_allclose(np.asarray(p["w"]), np.asarray(before["w"] - 0.5 * g["w"]))
    assert len(traces) == 1


def test_a_scheduled_learning_rate_is_visible_in_the_state():
    schedule = gradchain.linear_schedule(1.0, 0.0, transition_steps=4)
    opt = gradchain.sgd(schedule)
    params = make_params(jnp.float32)
    step, traces = counting_step(opt)
    p, state = params, opt.init(params)
    seen = []
    for g in grads_sequence(params, jnp.float32, steps=5):
        p, state = step(p, state, g)
        seen.append(float(gradchain.get_hyperparams(state)["learning_rate"]))
    assert seen == [1.0, 0.75, 0.5, 0.25, 0.0] and len(traces) == 1


def test_bfloat16_params_keep_b2_in_float32():
    """b2 = 0.999 rounds to 1.0 in bfloat16 (Optax's inject_hyperparams issue); here it is
    stored in float32 and the step is Adam's, not that of b2 = 1."""
    assert float(jnp.bfloat16(0.999)) == 1.0
    params = {"w": jnp.asarray([0.5, -1.0, 2.0], jnp.bfloat16)}
    grads = grads_sequence(params, jnp.float32, steps=5)
    opt = gradchain.adam(0.01, b2=0.999)
    update = jax.jit(opt.update)

    def last_update(state, dtype):
        for g in grads:
            u, state = update(jax.tree.map(lambda x: x.astype(dtype), g), state)
        return u, state

    u, state = last_update(opt.init(params), jnp.bfloat16)
    b2 = gradchain.get_hyperparams(state)["2.decay"]
    assert b2.dtype == jnp.float32 and float(b2) == float(np.float32(0.999))
    assert state[2].nu["w"].dtype == jnp.bfloat16  # the moment keeps the params' dtype
    assert u["w"].dtype == jnp.bfloat16

    # the same five steps on float32 copies: equal up to bfloat16 rounding (2**-8 relative)
    f32 = jax.tree.map(lambda x: x.astype(jnp.float32), params)
    want, _ = last_update(opt.init(f32), jnp.float32)
    np.testing.assert_allclose(
        np.asarray(u["w"], np.float32), np.asarray(want["w"]), rtol=2e-2, atol=0
    )

    rounded, _ = last_update(
        gradchain.set_hyperparam(opt.init(params), "2.decay", 1.0), jnp.bfloat16
    )
    # with b2 = 1 the second moment never leaves 0 and Adam's step is lost
    assert not np.allclose(np.asarray(rounded["w"], np.float32), np.asarray(u["w"], np.float32))
    assert update._cache_size() == 2  # one program per params dtype, none per b2 value


def test_hyperparameters_are_float64_under_x64(x64):
    state = gradchain.adam(1e-3).init(make_params(jnp.float32))
    assert {v.dtype for v in gradchain.get_hyperparams(state).values()} == {jnp.dtype("float64")}


# --- switching optimizers between phases -------------------------------------------------


def test_switching_from_adam_to_sgd_matches_optax(dtype):
    params = make_params(dtype)
    grads = grads_sequence(params, dtype)
    half = len(grads) // 2

    def two_phases(first, second, apply):
        p, s, update = params, first.init(params), jax.jit(first.update)
        for g in grads[:half]:
            u, s = update(g, s, p)
            p = apply(p, u)
        # phase two: a fresh state for the new optimizer, and its own compiled step
        s, update = second.init(p), jax.jit(second.update)
        for g in grads[half:]:
            u, s = update(g, s, p)
            p = apply(p, u)
        return p

    got = two_phases(gradchain.adam(0.05), gradchain.sgd(0.1), gradchain.apply_updates)
    with reference_promotion():
        want = two_phases(optax.adam(0.05), optax.sgd(0.1), optax.apply_updates)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=TOL[dtype])


def test_switching_to_momentum_can_carry_adams_first_moment():
    params = make_params(jnp.float32)
    grads = grads_sequence(params, jnp.float32, steps=4)
    adam = gradchain.adam(0.05)
    p, s = params, adam.init(params)
    for g in grads[:3]:
        u, s = adam.update(g, s, p)
        p = gradchain.apply_updates(p, u)
    mu = gradchain.get_slot(s, "mu")["0.mu"]

    momentum = gradchain.momentum(0.1, momentum=0.9)
    carried = gradchain.set_slot(momentum.init(p), "mu", mu)
    u, s2 = momentum.update(grads[3], carried, p)
    # by hand: v = 0.9 * mu + g ; u = -0.1 * v
    for key in ("w", "b"):
        v = jnp.float32(0.9) * mu[key] + grads[3][key]
        np.testing.assert_allclose(np.asarray(u[key]), np.asarray(-jnp.float32(0.1) * v), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(s2[0].mu[key]), np.asarray(v), rtol=1e-6)
