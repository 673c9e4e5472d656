"""EMA of the params against a hand computation and against optax.ema, float32 and float64;
jit-safety, live decay, dtypes."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion

TOL = {jnp.float32: 1e-6, jnp.float64: 1e-14}


def params_sequence(dtype, steps=6):
    rng = np.random.default_rng(3)
    return [
        {"w": jnp.asarray(rng.normal(size=(3, 2)), dtype), "b": jnp.asarray(rng.normal(), dtype)}
        for _ in range(steps)
    ]


def by_hand(seq, decay, start):
    """sum_t decay**(T-t) (1 - decay) p_t  (+ decay**T * start), each leaf, in float64."""
    T = len(seq)
    out = jax.tree.map(lambda s: decay**T * np.asarray(s, np.float64), start)
    for t, p in enumerate(seq, start=1):
        out = jax.tree.map(
            lambda o, x, t=t: o + decay ** (T - t) * (1 - decay) * np.asarray(x, np.float64),
            out,
            p,
        )
    return out


@pytest.mark.parametrize("debias", [True, False])
def test_ema_matches_the_hand_computation(debias, dtype):
    decay = 0.8
    seq = params_sequence(dtype)
    start = jax.tree.map(jnp.zeros_like, seq[0]) if debias else seq[0]
    state = gradchain.ema_init(seq[0], decay, debias=debias)
    update = jax.jit(gradchain.ema_update)
    for p in seq[1:]:
        state = update(state, p)
    want = by_hand(seq[1:], decay, start)
    if debias:
        want = jax.tree.map(lambda w: w / (1 - decay ** len(seq[1:])), want)
    got = gradchain.ema_params(state)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert g.dtype == dtype
        np.testing.assert_allclose(np.asarray(g), w, rtol=0, atol=TOL[dtype])


def test_debiased_ema_matches_optax_ema(dtype):
    seq = params_sequence(dtype)
    state = gradchain.ema_init(seq[0], 0.9)
    with reference_promotion():
        ref = optax.ema(0.9, debias=True)
        ref_state = ref.init(seq[0])
    for p in seq:
        state = gradchain.ema_update(state, p)
        with reference_promotion():
            want, ref_state = ref.update(p, ref_state)
        got = gradchain.ema_params(state)
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=0, atol=TOL[dtype])


def test_without_debiasing_the_weight_stays_exactly_one():
    seq = params_sequence(jnp.float32)
    state = gradchain.ema_init(seq[0], 0.999, debias=False)
    for p in seq:
        state = gradchain.ema_update(state, p)
    assert float(state.weight) == 1.0


def test_debiased_average_before_any_update_is_zero_not_nan():
    state = gradchain.ema_init({"w": jnp.ones(3)}, 0.9)
    assert gradchain.ema_params(state)["w"].tolist() == [0.0, 0.0, 0.0]


def test_a_nan_weight_gives_a_nan_average_not_the_unnormalised_sum():
    state = gradchain.ema_init({"w": jnp.ones(3)}, 0.9)
    state = state._replace(
        ema={"w": jnp.full(3, 0.5)}, weight=jnp.asarray(jnp.nan, state.weight.dtype)
    )
    assert np.isnan(np.asarray(gradchain.ema_params(state)["w"])).all()  # a '> 0' test gave 0.5


def test_decay_changes_without_recompiling_and_is_recorded():
    seq = params_sequence(jnp.float32)
    update = jax.jit(chex.assert_max_traces(gradchain.ema_update, n=1))
    state = gradchain.ema_init(seq[0], 0.9)
    decays = [0.5, 0.9, 0.99, 0.5, 0.7, 0.0]
    state = update(state, seq[0], jnp.float32(0.3))
    for p, d in zip(seq, decays):
        state = update(state, p, jnp.float32(d))
    assert float(state.decay) == 0.0
    # decay 0 at the end: the average is the last params, exactly
    np.testing.assert_array_equal(gradchain.ema_params(state)["w"], seq[-1]["w"])


def test_time_varying_decay_is_debiased_by_the_weight_received():
    """With decays d_t the debiased average is sum_t w_t p_t / sum_t w_t, w_t the weights."""
    ps = [1.0, 2.0, 4.0]
    ds = [0.5, 0.25, 0.75]
    state = gradchain.ema_init(jnp.zeros(()), 0.9)
    for p, d in zip(ps, ds):
        state = gradchain.ema_update(state, jnp.float32(p), d)
    weights = [(1 - 0.5) * 0.25 * 0.75, (1 - 0.25) * 0.75, 1 - 0.75]
    want = sum(w * p for w, p in zip(weights, ps)) / sum(weights)
    np.testing.assert_allclose(float(gradchain.ema_params(state)), want, rtol=1e-6)


def test_bfloat16_params_averaged_in_float32():
    params = {"w": jnp.ones(4, jnp.bfloat16)}
    state = gradchain.ema_init(params, 0.999, dtype=jnp.float32)
    assert state.ema["w"].dtype == jnp.float32 and state.decay.dtype == jnp.float32
    for _ in range(3):
        state = gradchain.ema_update(state, params)
    # in bfloat16 the 1 - 0.999 increments would be lost; in float32 the average is 1
    np.testing.assert_allclose(np.asarray(gradchain.ema_params(state)["w"]), 1.0, rtol=1e-5)


def test_bad_decay_and_mismatched_params_are_refused():
    with pytest.raises(gradchain.GradchainError, match=r"decay must be in \[0, 1\)"):
        gradchain.ema_init({"w": jnp.ones(2)}, 1.0)
    state = gradchain.ema_init({"w": jnp.ones(2)}, 0.9)
    with pytest.raises(gradchain.GradchainError, match=r"\['v'\]"):
        gradchain.ema_update(state, {"v": jnp.ones(2)})


# --- Optax's target-network updates (issue 24) ---------------------------------------------


def test_incremental_and_periodic_update_match_optax(dtype):
    new = {"w": jnp.linspace(-1, 1, 4, dtype=dtype), "skip": None}
    old = {"w": jnp.ones(4, dtype), "skip": None}
    got = gradchain.incremental_update(new, old, 0.1)
    want = optax.incremental_update(new, old, 0.1)
    assert got["skip"] is None and want["skip"] is None
    assert bool(jnp.array_equal(got["w"], want["w"]))  # same expression: measured 0.0
    for step in range(4):
        got = jax.jit(gradchain.periodic_update, static_argnums=3)(new, old, step, 2)
        want = optax.periodic_update(new, old, jnp.asarray(step), 2)
        assert bool(jnp.array_equal(got["w"], want["w"]))
    assert gradchain.incremental_update(None, jnp.ones(3), 1) is None
