"""group_leaves: the same optimizer on grouped leaves gives the same steps as on the leaves."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain

NAMES = ["sgd", "momentum", "adam", "adamw", "lion", "rmsprop"]


def _tree(rng, dtype):
    """Small leaves of two dtypes, a scalar, and one leaf above max_leaf_size."""
    return {
        "a": rng.normal(size=(3, 4)).astype(dtype),
        "b": [rng.normal(size=(5,)).astype(dtype), rng.normal(size=()).astype(dtype)],
        "half": rng.normal(size=(6,)).astype(np.float32).astype(jnp.bfloat16),
        "big": rng.normal(size=(40, 3)).astype(dtype),
    }


def _run(opt, params, grads_seq, jit):
    step_fn = jax.jit(opt.update) if jit else opt.update
    state = opt.init(params)
    for g in grads_seq:
        updates, state = step_fn(g, state, params)
        params = gradchain.apply_updates(params, updates)
    return params


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grouped_steps_equal_per_leaf_steps(name, dtype, rng, x64):
    make = getattr(gradchain, name)
    params = _tree(rng, dtype)
    grads = [
        jax.tree.map(lambda x, i=i: (x * 0.3 + 0.1 * (i + 1)).astype(x.dtype), params)
        for i in range(4)
    ]
    expected = _run(make(1e-2), params, grads, jit=False)
    actual = _run(gradchain.group_leaves(make(1e-2), max_leaf_size=100), params, grads, jit=True)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        assert a.dtype == e.dtype and a.shape == e.shape
        tol = 1e-2 if a.dtype == jnp.bfloat16 else rtol
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(e, np.float64), rtol=tol)


def test_state_is_one_buffer_per_dtype_plus_the_large_leaves(rng):
    params = _tree(rng, np.float32)
    state = gradchain.group_leaves(gradchain.adam(1e-3), max_leaf_size=100).init(params)
    mu = state.inner.inner[0].mu  # group_leaves(AdamLiveState(..., inner=(MomentumState, ...)))
    assert set(mu) == {"float32", "bfloat16", "large"}
    assert mu["float32"].shape == (12 + 5 + 1,) and mu["bfloat16"].shape == (6,)
    assert [x.shape for x in mu["large"]] == [(40, 3)]
    # Same bytes as the ungrouped state.
    plain = gradchain.adam(1e-3).init(params)
    nbytes = lambda t: sum(x.nbytes for x in jax.tree.leaves(t))  # noqa: E731
    assert nbytes(state) == nbytes(plain)


def test_wraps_an_optax_optimizer_and_matches_it(rng):
    params = jax.tree.map(jnp.asarray, _tree(rng, np.float32))
    del params["half"]
    grads = [jax.tree.map(lambda x: x * 0.5, params)] * 3
    with jax.numpy_dtype_promotion("standard"):
        expected = _run(optax.adam(1e-2), params, grads, jit=False)
        actual = _run(gradchain.group_leaves(optax.adam(1e-2)), params, grads, jit=True)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, e, rtol=1e-6)


def test_jitted_step_compiles_once_with_donation(rng):
    opt = gradchain.group_leaves(gradchain.adamw(1e-3))
    params = jax.tree.map(jnp.asarray, _tree(rng, np.float32))

    def step(p, s, g):
        u, s = opt.update(g, s, p)
        return gradchain.apply_updates(p, u), s

    step = jax.jit(chex.assert_max_traces(step, n=1), donate_argnums=(0, 1))
    state = opt.init(params)
    grads = jax.tree.map(lambda x: x * 0.1, params)
    for _ in range(3):
        params, state = step(params, state, grads)


def test_refuses_what_is_not_a_transform():
    with pytest.raises(gradchain.GradchainError, match="gradient transformation"):
        gradchain.group_leaves(lambda g: g)
    with pytest.raises(ValueError, match="max_leaf_size"):
        gradchain.group_leaves(gradchain.sgd(0.1), max_leaf_size=0)
