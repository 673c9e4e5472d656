"""Momentum and bias correction (transforms/momentum.py)."""

import jax.numpy as jnp
import numpy as np
import pytest

import gradchain
from tests.problems import gradchain_steps, shrinking_grads, torch_steps


def test_bias_correct_nadam_in_adams_chain_equals_torch_nadam(torch64):
    """Adam's chain with this correction in place of ``bias_correct`` is torch.optim.NAdam with
    Dozat's momentum schedule (momentum_decay = 4e-3, and a larger 0.05): 30 steps."""
    torch = pytest.importorskip("torch")
    p0, grads = jnp.linspace(-1.0, 1.0, 5), shrinking_grads()
    for psi in (4e-3, 0.05):
        ours = gradchain.chain(
            gradchain.scale_by_momentum(0.9, ema=True),
            gradchain.bias_correct_nadam(0.9, psi),
            gradchain.scale_by_rms(0.99, 1e-8, eps_in_sqrt=False, bias_correction=True),
            gradchain.scale_by_learning_rate(0.01),
        )
        want = torch_steps(
            lambda ps, psi=psi: torch.optim.NAdam(ps, 0.01, (0.9, 0.99), 1e-8, momentum_decay=psi),
            p0,
            grads,
        )
        got = gradchain_steps(ours, p0, grads)
        np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-14)  # measured 6.7e-16


"""The momentum family against Optax where issue 24 touched it: trace(decay=1.0), Optax's plain
running sum, and the None update subtrees of add_decayed_weights."""

import optax

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
