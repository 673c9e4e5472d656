"""Adaptive gradient clipping and unit norms (transforms/clipping.py) against Optax's functions
of the same name, float32 and float64; tolerances measured once and frozen."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion


def tree(dtype, seed, scale=1.0):
    k = jax.random.split(jax.random.key(seed), 5)
    return {
        "conv": scale * jax.random.normal(k[0], (3, 3, 2, 4), dtype),
        "conv3d": scale * jax.random.normal(k[1], (2, 2, 2, 3, 2), dtype),
        "heads": scale * jax.random.normal(k[2], (4, 2, 3), dtype),
        "w": scale * jax.random.normal(k[3], (5, 3), dtype),
        "b": jnp.zeros((3,), dtype),  # a zero-initialised unit: eps is its norm
    }


CASES = {  # name: (ours, theirs)
    "adaptive_grad_clip": (
        lambda: gradchain.adaptive_grad_clip(0.1),
        lambda: optax.adaptive_grad_clip(0.1),
    ),
    "adaptive_grad_clip-tuned": (
        lambda: gradchain.adaptive_grad_clip(0.5, 1e-2),
        lambda: optax.adaptive_grad_clip(0.5, 1e-2),
    ),
}
# max |difference| of one update (entries ~3), float32 / float64, measured:
# adaptive_grad_clip 6.0e-8 / 8.3e-17; -tuned 1.2e-7 / 4.4e-16
BOUND = {jnp.float32: 1e-6, jnp.float64: 2e-15}


def diff(name, dtype):
    ours, theirs = CASES[name]
    p, g = tree(dtype, 0), tree(dtype, 1, scale=3.0)
    got, _ = jax.jit(ours().update)(g, ours().init(p), p)
    with reference_promotion():
        want, _ = theirs().update(g, theirs().init(p), p)
    for a, x in zip(jax.tree.leaves(got), jax.tree.leaves(g)):
        assert a.dtype == x.dtype
    return max(
        float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want))
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_optax(dtype, name):
    assert diff(name, dtype) <= BOUND[dtype]


@pytest.mark.parametrize("axis", [None, 1, (0, 2)])
def test_unitwise_norm_matches_optax(dtype, axis):
    x = tree(dtype, 2)["heads"]
    with reference_promotion():
        want = optax.transforms.unitwise_norm(x, axis)
    # measured relative difference 0.0 (float32) / 0.0 (float64); bound: a few ulps
    np.testing.assert_allclose(
        gradchain.unitwise_norm(x, axis), want, rtol=1e-6 if dtype == jnp.float32 else 1e-15
    )


def test_clipped_units_have_the_bound_as_norm():
    p, g = tree(jnp.float32, 0), tree(jnp.float32, 1, scale=3.0)
    t = gradchain.adaptive_grad_clip(0.1)
    out, _ = t.update(g, t.init(p), p)
    ratio = gradchain.unitwise_norm(out["w"]) / gradchain.unitwise_norm(p["w"])
    assert float(jnp.max(ratio)) <= 0.1 + 1e-6


def test_bad_input_names_the_problem():
    with pytest.raises(gradchain.GradchainError, match="clipping"):
        gradchain.adaptive_grad_clip(-1.0)
    with pytest.raises(gradchain.GradchainError, match="give axis"):
        gradchain.unitwise_norm(jnp.zeros((2, 2, 2, 2, 2, 2)))
    t = gradchain.adaptive_grad_clip(0.1)
    with pytest.raises(gradchain.GradchainError, match="params"):
        t.update(jnp.ones(3), t.init(jnp.ones(3)))


def test_clip_by_global_norm_takes_zero_and_a_schedule_decaying_to_zero():
    # Optax's getting-started notebook: max_norm scheduled from 1 to 0 by inject_hyperparams
    g = {"w": jnp.array([3.0, 4.0]), "b": jnp.zeros(2)}
    out, _ = gradchain.clip_by_global_norm(0.0).update(g, gradchain.EmptyState())
    assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(out))
    zero, _ = gradchain.clip_by_global_norm(0.0).update(jax.tree.map(jnp.zeros_like, g), None)
    assert all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(zero))  # 0 / 0 is not NaN
    decaying = gradchain.inject_hyperparams(gradchain.clip_by_global_norm)(
        max_norm=gradchain.linear_schedule(1.0, 0.0, transition_steps=2)
    )
    state, shown = decaying.init(g), []
    for _ in range(3):
        out, state = decaying.update(g, state)
        shown.append(round(float(gradchain.tree_norm(out)), 6))
    assert shown == [1.0, 0.5, 0.0] and float(state.hyperparams["max_norm"]) == 0.0
    with pytest.raises(gradchain.GradchainError, match="max_norm must be >= 0"):
        gradchain.clip_by_global_norm(-1.0)
