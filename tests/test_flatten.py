"""gradchain.combine.flatten against optax.flatten: an inner transform run on one flat vector
(measured difference 0.0 with the same inner transform, float32 and float64)."""

import jax
import jax.numpy as jnp
import optax

import gradchain as gc
from tests.conftest import reference_promotion


def test_flatten_matches_optax(dtype):
    params = {"w": jnp.linspace(-1, 1, 6, dtype=dtype).reshape(2, 3), "b": jnp.ones(2, dtype)}
    ours, theirs = gc.flatten(optax.adam(0.1)), optax.flatten(optax.adam(0.1))
    with reference_promotion():
        s1, s2 = ours.init(params), theirs.init(params)
        for i in range(3):
            g = jax.tree.map(lambda x, i=i: x * (i + 1) - 0.3, params)
            u1, s1 = ours.update(g, s1, params)
            u2, s2 = theirs.update(g, s2, params)
            assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), u1, u2))
    assert u1["w"].shape == (2, 3) and gc.tree.get(s1, "mu").shape == (8,)


def test_flatten_of_a_gradchain_transform_keeps_its_numbers(dtype):
    params = {"w": jnp.linspace(-1, 1, 6, dtype=dtype).reshape(2, 3), "b": jnp.ones(2, dtype)}
    flat, plain = gc.flatten(gc.adam(0.1)), gc.adam(0.1)
    u1, _ = flat.update(params, flat.init(params), params)
    u2, _ = plain.update(params, plain.init(params), params)
    # elementwise Adam: flattening changes nothing; measured difference 0.0
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), u1, u2))
