"""Differential privacy (transforms/privacy.py) against Optax's
functions of the same name, float32 and float64. Tolerances measured once and frozen, the
measured number beside each."""

import jax
import jax.numpy as jnp
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion


def per_example(dtype, batch=6):
    """Per-example gradients of a two-leaf model: a (3, 2) matrix and a 4-vector."""
    ka, kb = jax.random.split(jax.random.key(7))
    return {
        "a": 2.0 * jax.random.normal(ka, (batch, 3, 2), dtype),
        "b": jax.random.normal(kb, (batch, 4), dtype),
    }


def max_diff(a, b):
    return max(
        float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def tol(dtype, f32, f64):
    return f32 if dtype == jnp.float32 else f64


def test_per_example_global_norm_clip_optax_examples():
    grads = [jnp.array([[0, 0, 0], [0, 3, 4], [4, 0, 3], [3, 4, 0]], jnp.float32)]
    for clip_to, want, clipped in ((jnp.inf, 7.0, 0), (0.0, 0.0, 3), (1.25, 1.75, 3)):
        (out,), n = gradchain.per_example_global_norm_clip(grads, clip_to)
        assert out.tolist() == [want] * 3 and int(n) == clipped


@pytest.mark.parametrize("clip_to", [0.5, 2.0, 100.0])
def test_per_example_global_norm_clip_matches_optax(dtype, clip_to):
    g = per_example(dtype)
    got, n = gradchain.per_example_global_norm_clip(g, clip_to)
    with reference_promotion():
        want, m = optax.per_example_global_norm_clip(g, clip_to)
    assert int(n) == int(m) and jax.tree.map(lambda x: x.dtype, got) == jax.tree.map(
        lambda x: x.dtype, g
    )
    # measured 0.0 in both; bounds of a few ulps of the entries (~3) leave room for another
    # summation order of the norms (FMA or not on another CPU)
    assert max_diff(got, want) <= tol(dtype, 2e-6, 4e-15)


@pytest.mark.parametrize("uniform", [True, False])
def test_per_example_layer_norm_clip_matches_optax(dtype, uniform):
    g = per_example(dtype)
    got, n = gradchain.per_example_layer_norm_clip(g, 1.5, uniform)
    with reference_promotion():
        want, m = optax.per_example_layer_norm_clip(g, 1.5, uniform)
    assert jax.tree.map(int, n) == jax.tree.map(int, m)
    # measured 0.0 in both (bounds as above)
    assert max_diff(got, want) <= tol(dtype, 2e-6, 4e-15)


@pytest.mark.filterwarnings("ignore:.*seed.*is deprecated:DeprecationWarning")  # Optax's dpsgd
@pytest.mark.parametrize("momentum, nesterov", [(None, False), (0.9, False), (0.9, True)])
def test_dpsgd_matches_optax_dpsgd_draw_for_draw(dtype, momentum, nesterov):
    params = {"a": jnp.zeros((3, 2), dtype), "b": jnp.zeros(4, dtype)}
    results = []
    for opt in (
        gradchain.dpsgd(0.1, 1.0, 0.5, 3, momentum=momentum, nesterov=nesterov),
        optax.contrib.dpsgd(0.1, 1.0, 0.5, 3, momentum=momentum, nesterov=nesterov),
    ):
        with reference_promotion():
            step = jax.jit(opt.update)
            s, p = opt.init(params), params
            for i in range(4):
                u, s = step(per_example(dtype, 5 + (i % 2)), s, p)
                p = optax.apply_updates(p, u)
        results.append(p)
    # measured 0.0 in both, four steps (bounds: a few ulps of the params, ~0.1)
    assert max_diff(*results) <= tol(dtype, 2e-7, 4e-16)
    assert jax.tree.map(lambda x: x.dtype, results[0]) == jax.tree.map(lambda x: x.dtype, params)


def test_dpsgd_is_the_aggregate_then_sgd():
    params = {"a": jnp.zeros((3, 2)), "b": jnp.zeros(4)}
    g = per_example(jnp.float32)
    chained = gradchain.chain(
        gradchain.differentially_private_aggregate(1.0, 0.5, 3), gradchain.sgd(0.1, 0.9)
    )
    named = gradchain.dpsgd(0.1, 1.0, 0.5, 3, momentum=0.9)
    a, _ = chained.update(g, chained.init(params), params)
    b, _ = named.update(g, named.init(params), params)
    assert max_diff(a, b) == 0.0
    live = gradchain.set_hyperparam(named.init(params), "learning_rate", 0.2)  # live, as sgd's
    c, _ = named.update(g, live, params)
    assert max_diff(c, jax.tree.map(lambda x: 2 * x, b)) < 1e-7


def test_differentially_private_aggregate_noise_and_mean():
    g = per_example(jnp.float32, 4)
    agg = gradchain.differentially_private_aggregate(1e9, 0.0, key=jax.random.key(0))
    out, _ = agg.update(g, agg.init(None))
    assert max_diff(out, jax.tree.map(lambda x: x.mean(0), g)) < 1e-6  # no clip, no noise: mean
    noisy = gradchain.differentially_private_aggregate(1.0, 2.0, key=1)
    s = noisy.init(None)
    a, s = noisy.update(g, s)
    b, _ = noisy.update(g, s)
    assert max_diff(a, b) > 1e-3  # a fresh draw every step


def test_bad_input_names_the_problem():
    with pytest.raises(gradchain.GradchainError, match="l2_norm_clip"):
        gradchain.differentially_private_aggregate(-1.0, 1.0, 0)
    with pytest.raises(gradchain.GradchainError, match="noise_multiplier"):
        gradchain.differentially_private_aggregate(1.0, -1.0, 0)
    with pytest.raises(gradchain.GradchainError, match="batch on axis 0"):
        gradchain.per_example_global_norm_clip({"a": jnp.zeros((3, 2)), "b": jnp.zeros(4)}, 1.0)
