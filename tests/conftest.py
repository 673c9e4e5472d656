"""Strict dtype promotion everywhere: gradchain must cast explicitly, never promote by accident.
The Optax reference runs under "standard" promotion (see ``reference_promotion``)."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def strict_promotion():
    with jax.numpy_dtype_promotion("strict"):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@contextlib.contextmanager
def reference_promotion():
    with jax.numpy_dtype_promotion("standard"):
        yield


@pytest.fixture
def x64():
    """Run a test in float64: the flag is process-wide, so restore it afterwards."""
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


@pytest.fixture(params=[jnp.float32, jnp.float64], ids=["float32", "float64"])
def dtype(request):
    """float32, then float64 (under x64): most numerical tests run in both."""
    if request.param == jnp.float64:
        request.getfixturevalue("x64")
    return request.param
