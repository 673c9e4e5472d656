"""gradchain.gradients: scale_gradient and multi_normal, against hand-worked values and
Optax's functions of the same name (the reference), in float32 and float64."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain

DTYPES = ("float32", "float64")


@pytest.fixture(params=DTYPES)
def dtype(request):
    with jax.enable_x64(request.param == "float64"):
        yield jnp.dtype(request.param)


@pytest.mark.parametrize("scale", [-1.0, 0.0, 0.25, 1.0, 3.0])
def test_scale_gradient_scales_only_the_backward_pass(scale, dtype):
    tree = {"a": jnp.asarray([1.0, -2.0], dtype), "b": (jnp.asarray(3.0, dtype),)}

    def loss(t):
        out = gradchain.scale_gradient(t, scale)
        return sum(jnp.sum(x**3) for x in jax.tree.leaves(out)), out

    (value, out), grads = jax.value_and_grad(loss, has_aux=True)(tree)
    # forward: unchanged; backward: 3 x^2 * scale, by hand
    for x, y, g in zip(jax.tree.leaves(tree), jax.tree.leaves(out), jax.tree.leaves(grads)):
        np.testing.assert_array_equal(y, x)
        np.testing.assert_allclose(g, 3 * np.asarray(x) ** 2 * scale, rtol=0)
        assert g.dtype == dtype
    np.testing.assert_allclose(value, 1 - 8 + 27, rtol=0)


def test_scale_gradient_takes_a_traced_scale():
    def grad_at(scale):
        return jax.grad(lambda x: gradchain.scale_gradient(x, scale) * 2.0)(1.0)

    assert float(jax.jit(grad_at)(0.5)) == 1.0  # Optax's version branches on the scale


@pytest.mark.parametrize(
    ("loc_shape", "scale_shape"), [((), ()), ((3,), (3,)), ((1, 4), (3, 4)), ((2, 1), (5,))]
)
def test_multi_normal_matches_optax(loc_shape, scale_shape, dtype):
    loc = jnp.linspace(-1.0, 2.0, int(np.prod(loc_shape))).reshape(loc_shape).astype(dtype)
    log_scale = jnp.linspace(-0.5, 0.3, int(np.prod(scale_shape))).reshape(scale_shape)
    log_scale = log_scale.astype(dtype)
    ours, theirs = gradchain.multi_normal(loc, log_scale), optax.multi_normal(loc, log_scale)
    assert ours._param_shape == tuple(theirs._param_shape)
    for a, b in zip(ours.params, theirs.params):
        np.testing.assert_array_equal(a, b)
    key = jax.random.key(3)
    draws = ours.sample((4, 2), key)
    assert draws.shape == (4, 2, *theirs._param_shape)
    np.testing.assert_allclose(draws, theirs.sample((4, 2), key), rtol=1e-6)
    # the log density by hand: sum of per-coordinate normal log densities
    x = draws[0, 0]
    s = np.exp(np.asarray(log_scale, np.float64))
    by_hand = np.sum(
        np.broadcast_to(
            -((np.asarray(x, np.float64) - np.asarray(loc, np.float64)) ** 2) / (2 * s**2)
            - np.log(s)
            - 0.5 * np.log(2 * np.pi),
            ours._param_shape,
        )
    )
    tol = 1e-5 if dtype == jnp.float32 else 1e-12  # measured: 2.4e-7 / 0 relative
    np.testing.assert_allclose(ours.log_prob(x), by_hand, rtol=tol)
    np.testing.assert_allclose(ours.log_prob(x), theirs.log_prob(x), rtol=tol)
    assert ours.log_prob(draws).shape == (4, 2)


def test_multi_normal_refuses_shapes_that_do_not_broadcast():
    with pytest.raises(gradchain.GradchainError, match=r"loc of shape \(2,\).*\(3,\)"):
        gradchain.multi_normal(jnp.zeros(2), jnp.zeros(3))


def test_multi_normal_log_prob_is_differentiable_in_its_params():
    def nll(loc, log_scale):
        return -gradchain.multi_normal(loc, log_scale).log_prob(jnp.asarray([1.0, 2.0]))

    d_loc, d_log_scale = jax.grad(nll, argnums=(0, 1))(jnp.zeros(2), jnp.zeros(2))
    # d/dm of (x - m)^2 / 2 is -(x - m); d/d(log s) of [(x-m)^2 e^{-2 log s} / 2 + log s] is
    # 1 - (x - m)^2 at s = 1
    np.testing.assert_allclose(d_loc, [-1.0, -2.0])
    np.testing.assert_allclose(d_log_scale, [0.0, -3.0])
