"""The momentum family against Optax where issue 24 touched it: trace(decay=1.0), Optax's plain
running sum, and the None update subtrees of add_decayed_weights."""

import jax.numpy as jnp
import optax
import pytest

import gradchain as gc
from tests.conftest import reference_promotion


def test_trace_with_decay_one_is_a_running_sum_like_optax(dtype):
    params = jnp.linspace(-1, 1, 4, dtype=dtype)
    ours, theirs = gc.trace(decay=1.0), optax.trace(decay=1.0)
    s1, s2 = ours.init(params), theirs.init(params)
    with reference_promotion():
        for i in range(4):
            g = params * (i + 1)
            u1, s1 = ours.update(g, s1)
            u2, s2 = theirs.update(g, s2)
            assert bool(jnp.array_equal(u1, u2))  # sums of the same values: measured 0.0
    assert bool(jnp.allclose(u1, params * 10, rtol=1e-6))  # 1 + 2 + 3 + 4, rounded once per step


def test_trace_refuses_a_decay_above_one_but_momentum_keeps_its_open_interval():
    with pytest.raises(gc.GradchainError, match=r"decay must be in \[0, 1\], got 1.5"):
        gc.trace(decay=1.5)
    with pytest.raises(gc.GradchainError, match=r"decay must be in \[0, 1\), got 1.0"):
        gc.scale_by_momentum(1.0)


def test_trace_state_alias_is_the_momentum_state():
    state = gc.trace(0.9).init(jnp.ones(2))
    assert isinstance(state, gc.TraceState) and gc.TraceState is gc.MomentumState


def test_add_decayed_weights_keeps_none_updates_like_optax():
    params = {"a": jnp.ones(2), "b": jnp.ones(3)}
    updates = {"a": None, "b": jnp.zeros(3)}
    t = gc.add_decayed_weights(0.1)
    got, _ = t.update(updates, t.init(params), params)
    want, _ = optax.add_decayed_weights(0.1).update(updates, optax.EmptyState(), params)
    assert got["a"] is None and want["a"] is None
    assert bool(jnp.array_equal(got["b"], want["b"]))
    assert t.update(None, t.init(params), params)[0] is None
