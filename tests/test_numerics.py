"""gradchain.safe_increment against optax.safe_increment: a count that saturates at its dtype's
largest value instead of wrapping, for integer and floating counts, jitted or not."""

import jax
import jax.numpy as jnp
import optax
import pytest

import gradchain as gc


@pytest.mark.parametrize(
    "count",
    [
        jnp.asarray(1, jnp.int32),
        jnp.asarray(2**31 - 1, jnp.int32),
        jnp.asarray(126, jnp.int8),
        jnp.asarray(127, jnp.int8),
        jnp.asarray(3.0, jnp.float32),
        jnp.asarray(jnp.finfo(jnp.float32).max, jnp.float32),
        jnp.asarray(7.0, jnp.bfloat16),
    ],
    ids=["int32", "int32-max", "int8", "int8-max", "float32", "float32-max", "bfloat16"],
)
def test_safe_increment_matches_optax(count):
    want = optax.safe_increment(count)
    for got in (gc.safe_increment(count), jax.jit(gc.safe_increment)(count)):
        assert got.dtype == count.dtype == want.dtype
        assert bool(got == want)
    if jnp.issubdtype(count.dtype, jnp.integer) and int(count) == jnp.iinfo(count.dtype).max:
        assert int(gc.safe_increment(count)) == int(count)  # no wrap to the minimum


def test_safe_increment_refuses_a_boolean_count():
    with pytest.raises(gc.GradchainError, match="integer or a float"):
        gc.safe_increment(jnp.asarray(True))
