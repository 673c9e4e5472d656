"""Lookahead (combine/lookahead.py) against optax.lookahead: 120 steps in one compiled scan,
float32 and float64; tolerances measured once and frozen."""

import jax
import jax.numpy as jnp
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion
from tests.problems import STEPS, max_diff, quadratic_and_quartic, tol


def descend_lookahead(lib, opt, f, params):
    def body(carry, _):
        p, s = carry
        value, grad = jax.value_and_grad(f)(p.fast)
        u, s = opt.update(grad, s, p)
        return (lib.apply_updates(p, u), s), f(p.slow)

    start = lib.LookaheadParams.init_synced(params)
    return jax.lax.scan(body, (start, opt.init(start)), None, length=STEPS)


@pytest.mark.parametrize("reset_state", [False, True])
def test_lookahead_equals_optax(reset_state, dtype):
    f, p0 = quadratic_and_quartic(dtype)
    got = jax.jit(
        lambda p: descend_lookahead(
            gradchain, gradchain.lookahead(gradchain.adam(0.05), 5, 0.5, reset_state), f, p
        )
    )(p0)
    with reference_promotion():
        want = jax.jit(
            lambda p: descend_lookahead(
                optax, optax.lookahead(optax.adam(0.05), 5, 0.5, reset_state), f, p
            )
        )(p0)
    # measured: float32 1.1e-6 (False), 1.3e-7 (True); float64 5.6e-17 and 2.2e-16
    assert max_diff(got[0][0], want[0][0]) <= tol(dtype, 5e-6, 1e-14)
    assert float(got[1][-1]) < 0.1 * float(got[1][0])


def test_lookahead_needs_both_weights_and_takes_optax_params():
    opt = gradchain.lookahead(gradchain.sgd(0.1), 2, 0.5)
    p = {"w": jnp.ones(3)}
    state = opt.init(p)  # the fast params alone, as Optax allows
    with pytest.raises(gradchain.GradchainError, match="LookaheadParams"):
        opt.update(p, state, p)
    u, _ = opt.update(p, state, optax.LookaheadParams.init_synced(p))  # Optax's pair works
    assert isinstance(u, gradchain.LookaheadParams)
    with pytest.raises(ValueError, match="sync_period"):
        gradchain.lookahead(gradchain.sgd(0.1), 0, 0.5)
    with pytest.raises(ValueError, match="slow_step_size"):
        gradchain.lookahead(gradchain.sgd(0.1), 2, 1.5)
