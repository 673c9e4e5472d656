"""Strict dtype promotion everywhere: gradchain must cast explicitly, never promote by accident.
The Optax reference runs under "standard" promotion (see ``reference_promotion``)."""

import contextlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def strict_promotion():
    with jax.numpy_dtype_promotion("strict"):
        yield


@pytest.fixture(autouse=True)
def fresh_trace_counts():
    """``chex.assert_max_traces`` counts traces by where the function was written: start every
    test (and every parametrized case) at zero."""
    chex.clear_trace_counter()


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


# Named optimizers whose update reads the objective, and the extra arguments each takes (as in
# Optax): L-BFGS's line search calls value_fn; the Polyak step and MoMo read value; Sophia's Hessian
# estimate differentiates obj_fn.
NEEDS_OBJECTIVE = {
    "lbfgs": ("value", "grad", "value_fn"),
    "momo": ("value",),
    "momo_adam": ("value",),
    "polyak_sgd": ("value",),
    "sophia": ("obj_fn",),
}


def half_square(params):
    """The objective the generic suites give: 0.5 * sum of every entry squared (float32)."""
    leaves = jax.tree.leaves(params)
    return sum(0.5 * jnp.sum(jnp.square(jnp.asarray(x, jnp.float32))) for x in leaves)


def with_objective(name, opt, objective=half_square):
    """``opt`` whose update is also given what ``NEEDS_OBJECTIVE[name]`` names, computed from
    ``objective`` at the params; any other optimizer unchanged."""
    import gradchain

    wanted = NEEDS_OBJECTIVE.get(name)
    if wanted is None:
        return opt

    def update(updates, state, params=None, **extra):
        value, grad = jax.value_and_grad(objective)(params)
        grad = jax.tree.map(lambda g, p: g.astype(jnp.result_type(p)), grad, params)
        given = {"value": value, "grad": grad, "value_fn": objective, "obj_fn": objective}
        return opt.update(updates, state, params, **{k: given[k] for k in wanted}, **extra)

    return gradchain.GradientTransformation(opt.init, update, name=name)


@pytest.fixture
def torch64(x64):
    """float64 JAX and float64 torch scalars (torch keeps NAdam's mu_product, and its step
    counts, in its default dtype)."""
    torch = pytest.importorskip("torch")
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)
