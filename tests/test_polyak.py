"""MoMo and MoMo-Adam (transforms/polyak.py, optimizers/polyak.py) against Optax's functions of
the same name: 120 steps in one compiled scan, the objective's value passed to every update,
float32 and float64. Tolerances measured once and frozen, the measured numbers beside them."""

import jax
import jax.numpy as jnp
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion
from tests.problems import descent_gap

STEPS = 120
oc = optax.contrib


def problem(dtype):
    """A quadratic plus a quartic leaf, minimum 0.1 (a lower bound of 0 is loose)."""
    scales = jnp.linspace(0.5, 4.0, 6, dtype=dtype).reshape(2, 3)

    def f(p):
        return 0.5 * jnp.sum(scales * (p["w"] - 1.0) ** 2) + jnp.sum(p["b"] ** 4) + 0.1

    return f, {"w": jnp.full((2, 3), 2.0, dtype), "b": jnp.asarray([1.0, -0.5, 0.25], dtype)}


def descend(lib, opt, f, params):
    def body(carry, _):
        p, s = carry
        value, grad = jax.value_and_grad(f)(p)
        u, s = opt.update(grad, s, p, value=value)
        return (lib.apply_updates(p, u), s), value

    (p, _), values = jax.lax.scan(body, (params, opt.init(params)), None, length=STEPS)
    return p, values


CASES = {  # name: (gradchain's, Optax's)
    "momo": (gradchain.momo, oc.momo),
    "momo-tuned": (
        lambda: gradchain.momo(0.5, 0.8, 0.05, 1e-2),
        lambda: oc.momo(0.5, 0.8, 0.05, 1e-2),
    ),
    "momo-adapt": (
        lambda: gradchain.momo(0.5, adapt_lower_bound=True, weight_decay=1e-3),
        lambda: oc.momo(0.5, adapt_lower_bound=True, weight_decay=1e-3),
    ),
    "momo-schedule": (
        lambda: gradchain.momo(optax.linear_schedule(0.05, 1.0, 50)),
        lambda: oc.momo(optax.linear_schedule(0.05, 1.0, 50)),
    ),
    "momo_adam": (lambda: gradchain.momo_adam(0.1), lambda: oc.momo_adam(0.1)),
    "momo_adam-tuned": (
        lambda: gradchain.momo_adam(0.2, 0.8, 0.99, 1e-6, 0.05, 1e-2),
        lambda: oc.momo_adam(0.2, 0.8, 0.99, 1e-6, 0.05, 1e-2),
    ),
    "momo_adam-adapt": (
        lambda: gradchain.momo_adam(0.1, adapt_lower_bound=True, weight_decay=1e-3),
        lambda: oc.momo_adam(0.1, adapt_lower_bound=True, weight_decay=1e-3),
    ),
}
# max |params difference| after 120 steps (params ~1), float32 / float64, measured. MoMo-Adam
# divides by sqrt(v) where Optax's order of operations differs by an ulp, and the Polyak step
# amplifies it (most with the adaptive bound); MoMo does the same operations: exactly equal.
MEASURED = {
    "momo": (0.0, 0.0),
    "momo-tuned": (0.0, 0.0),
    "momo-adapt": (0.0, 0.0),
    "momo-schedule": (0.0, 0.0),
    "momo_adam": (6.9e-7, 3.3e-16),
    "momo_adam-tuned": (1.1e-8, 1.4e-17),
    "momo_adam-adapt": (4.5e-6, 2.1e-15),
}
FLOOR = {jnp.float32: 1e-6, jnp.float64: 4e-15}  # room for another CPU's FMA choices


def bound(name, dtype):
    return max(4 * MEASURED[name][dtype == jnp.float64], FLOOR[dtype])


def diff(name, dtype):
    ours, theirs = CASES[name]
    return descent_gap(ours(), theirs(), problem(dtype), descend)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_optax(dtype, name):
    assert diff(name, dtype) <= bound(name, dtype)


def test_the_update_needs_the_value():
    opt = gradchain.momo()
    p = {"w": jnp.ones(3)}
    with pytest.raises(gradchain.GradchainError, match="value"):
        opt.update(p, opt.init(p), p)


def test_bad_input_names_the_argument():
    with pytest.raises(gradchain.GradchainError, match="beta"):
        gradchain.momo(beta=1.5)
    with pytest.raises(gradchain.GradchainError, match="weight_decay"):
        gradchain.momo_adam(weight_decay=-1.0)


@pytest.mark.parametrize("name", ["momo", "momo_adam"])
def test_tuple_params(dtype, name):
    """A tuple of leaves (Optax's mixed-tensor target): a tuple is params, not a pair of moments."""
    f = lambda p: jnp.sum((p[0] - 1) ** 2) + jnp.sum((p[1] - 2) ** 2)  # noqa: E731
    out = []
    for lib in (gradchain, oc):
        opt, p = getattr(lib, name)(0.1), (jnp.zeros(3, dtype), jnp.zeros((2, 2), dtype))
        with reference_promotion():
            s = opt.init(p)
            for _ in range(5):
                v, g = jax.value_and_grad(f)(p)
                u, s = opt.update(g, s, p, value=v)
                p = optax.apply_updates(p, u)
        out.append(p)
    # measured, float32 / float64: momo 0.0 / 0.0; momo_adam 4.3e-6 / 1.1e-16 (params ~0.5:
    # 1 - b2 is taken in float32 here, as scale_by_rms does, and in double by Optax's Python
    # arithmetic, a relative 1e-5 in the second moment that the Polyak step carries over)
    err = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(out[0]), jax.tree.leaves(out[1]))
    )
    assert err <= (2e-5 if dtype == jnp.float32 else 4e-15)


def test_an_update_without_the_objective_value_is_an_argument_error():
    """No ``value=``: refused naming it, as a GradchainError that is also a TypeError (what
    Optax raises, a missing keyword argument)."""
    opt = gradchain.scale_by_polyak()
    w = jnp.ones(2)
    with pytest.raises(gradchain.ArgumentError, match="needs the objective's value") as caught:
        opt.update(w, opt.init(w), w)
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, gradchain.GradchainError)
