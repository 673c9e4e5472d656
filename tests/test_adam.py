"""The Adam family (transforms/adam.py, optimizers/adam.py)."""

import chex
import jax
import jax.numpy as jnp

import gradchain
from tests.problems import grads_sequence, max_abs_diff, small_tree


def test_live_alpha_changes_without_recompiling():
    params = small_tree(jnp.float32)
    grads = jax.tree.map(lambda g: g[0], grads_sequence(params, jnp.float32, steps=1))
    opt = gradchain.ademamix(0.01)
    step = jax.jit(chex.assert_max_traces(opt.update, n=1))  # alpha is live: no retrace
    state = opt.init(params)
    u5, _ = step(grads, state, params)
    state = gradchain.set_hyperparam(state, "alpha", 0.0)  # the live alpha
    u0, _ = step(grads, state, params)
    reference = gradchain.ademamix(0.01, alpha=0.0)
    want0, _ = reference.update(grads, reference.init(params), params)
    assert max_abs_diff(u0, want0) <= 1e-7 and max_abs_diff(u0, u5) > 1e-6  # 5e-6 at step 1
