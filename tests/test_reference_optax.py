"""Every named optimizer against Optax's of the same math, 200 steps of random gradients on a
multi-leaf tree, float32 and float64. Tolerances were measured once and frozen here."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion

STEPS = 200

# name: (gradchain factory, optax factory). Each pair has the same math and hyperparameters.
PAIRS = {
    "sgd": (lambda: gradchain.sgd(0.05), lambda: optax.sgd(0.05)),
    "momentum": (lambda: gradchain.momentum(0.05, 0.9), lambda: optax.sgd(0.05, momentum=0.9)),
    "nesterov": (
        lambda: gradchain.nesterov(0.05, 0.9),
        lambda: optax.sgd(0.05, momentum=0.9, nesterov=True),
    ),
    "adagrad": (lambda: gradchain.adagrad(0.1), lambda: optax.adagrad(0.1)),
    "rmsprop": (lambda: gradchain.rmsprop(0.01), lambda: optax.rmsprop(0.01)),
    "rmsprop_centered_momentum": (
        lambda: gradchain.rmsprop(0.01, eps=0.1, centered=True, momentum=0.9),
        lambda: optax.rmsprop(0.01, eps=0.1, centered=True, momentum=0.9),
    ),
    # With bias correction the first step's variance is exactly 0: a small eps would make
    # the comparison measure chaos, not correctness.
    "rmsprop_centered_bias_corrected": (
        lambda: gradchain.rmsprop(0.01, eps=0.1, centered=True, bias_correction=True),
        lambda: optax.rmsprop(0.01, eps=0.1, centered=True, bias_correction=True),
    ),
    "rmsprop_eps_outside": (
        lambda: gradchain.rmsprop(0.01, eps=1e-3, eps_in_sqrt=False, initial_scale=0.5),
        lambda: optax.rmsprop(0.01, eps=1e-3, eps_in_sqrt=False, initial_scale=0.5),
    ),
    "adam": (lambda: gradchain.adam(0.01), lambda: optax.adam(0.01)),
    "adam_eps_root": (
        lambda: gradchain.adam(0.01, eps_root=1e-6),
        lambda: optax.adam(0.01, eps_root=1e-6),
    ),
    "adamw": (
        lambda: gradchain.adamw(0.01, weight_decay=0.1),
        lambda: optax.adamw(0.01, weight_decay=0.1),
    ),
    "adam_l2": (
        lambda: gradchain.chain(gradchain.add_decayed_weights(0.1), gradchain.adam(0.01)),
        lambda: optax.chain(optax.add_decayed_weights(0.1), optax.adam(0.01)),
    ),
    "amsgrad": (lambda: gradchain.amsgrad(0.01), lambda: optax.amsgrad(0.01)),
    "nadam": (lambda: gradchain.nadam(0.01), lambda: optax.nadam(0.01)),
    "adamax": (lambda: gradchain.adamax(0.01), lambda: optax.adamax(0.01)),
    "lion": (lambda: gradchain.lion(0.003), lambda: optax.lion(0.003)),
    "clipped_adam": (
        lambda: gradchain.chain(gradchain.clip_by_global_norm(1.0), gradchain.adam(0.01)),
        lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.01)),
    ),
}

# Max |difference| in params (of magnitude ~1) after 200 steps, per dtype. Measured worst:
# 2.9e-6 in float32 (Adam family: (1 - b) evaluated in float32 rather than in Python floats,
# and op ordering), 1.1e-15 in float64. Frozen with a margin below.
TOLERANCE = {jnp.float32: 5e-6, jnp.float64: 5e-15}


def make_params(dtype):
    rng = np.random.default_rng(1)
    return {
        "w": jnp.asarray(rng.normal(size=(4, 3)), dtype),
        "b": jnp.asarray(rng.normal(size=(3,)), dtype),
        "layers": [jnp.asarray(rng.normal(size=(2, 2)), dtype), jnp.asarray(rng.normal(), dtype)],
    }


def run(opt, params, grads_seq):
    state = opt.init(params)
    step = jax.jit(opt.update)
    for g in grads_seq:
        updates, state = step(g, state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
    return params


def grads_sequence(params, dtype):
    rng = np.random.default_rng(2)
    return [
        jax.tree.map(lambda p: jnp.asarray(rng.normal(size=np.shape(p)), dtype), params)
        for _ in range(STEPS)
    ]


@pytest.mark.parametrize("name", sorted(PAIRS))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_matches_optax(name, dtype, request):
    if dtype == jnp.float64:
        request.getfixturevalue("x64")
    ours, theirs = PAIRS[name]
    params = make_params(dtype)
    grads = grads_sequence(params, dtype)
    got = run(ours(), params, grads)
    with reference_promotion():
        want = run(theirs(), params, grads)
    tol = TOLERANCE[dtype]
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert g.dtype == dtype
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=0, atol=tol)
