"""Strict dtype promotion everywhere: gradchain must cast explicitly, never promote by accident.
The Optax reference runs under "standard" promotion (see ``reference_promotion``)."""

import contextlib

import jax
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
