"""Distance over gradients (DoG, DoWG, layer-wise DoG) against Optax's functions of the same
name: 120 steps in one compiled scan on a two-leaf quadratic, float32 and float64. Tolerances
measured once and frozen, the measured numbers beside them."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from tests import problems
from tests.problems import descent_gap

STEPS = 120
oc = optax.contrib


def quadratic(dtype):
    scales = {
        "w": jnp.linspace(0.5, 8.0, 12, dtype=dtype).reshape(4, 3),
        "b": jnp.asarray([1.0, 2.0, 4.0], dtype),
    }

    def f(p):
        return sum(0.5 * jnp.sum(scales[k] * (p[k] - 0.5) ** 2) for k in p)

    return f, {"w": jnp.full((4, 3), 2.0, dtype), "b": jnp.asarray([-2.0, 1.0, 3.0], dtype)}


def descend(lib, opt, f, params):
    return problems.descend(lib, opt, f, params, steps=STEPS)


CASES = {  # name: (gradchain's, Optax's)
    "dog": (lambda dt: gradchain.dog(), lambda dt: oc.dog()),
    "dog-distance": (
        lambda dt: gradchain.dog(0.5, ("distance", 1e-3), 1e-6, 1e-2),
        lambda dt: oc.dog(0.5, ("distance", 1e-3), 1e-6, 1e-2),
    ),
    "dog-learning_rate": (
        lambda dt: gradchain.dog(
            init_step=("learning_rate", 0.01), mask={"w": True, "b": False}, weight_decay=0.1
        ),
        lambda dt: oc.dog(
            init_step=("learning_rate", 0.01), mask={"w": True, "b": False}, weight_decay=0.1
        ),
    ),
    "dowg": (lambda dt: gradchain.dowg(), lambda dt: oc.dowg()),
    "dowg-tuned": (
        lambda dt: gradchain.dowg(0.5, 1e-2, 1e-6, 1e-2),
        lambda dt: oc.dowg(0.5, 1e-2, 1e-6, 1e-2),
    ),
    "ldog": (  # the starting params kept in float32, as Optax's default
        lambda dt: gradchain.chain(gradchain.scale_by_distance_over_gradients(global_scale=-1.0)),
        lambda dt: optax.scale_by_distance_over_gradients(global_scale=-1.0),
    ),
    "ldog-tuned": (
        lambda dt: gradchain.chain(
            gradchain.scale_by_distance_over_gradients(1e-4, 1e-6, dt, -0.5)
        ),
        lambda dt: optax.scale_by_distance_over_gradients(1e-4, 1e-6, dt, -0.5),
    ),
}
# max |params difference| after 120 steps (params ~1), float32 / float64, measured (the same
# operations in the same order: exactly equal):
MEASURED = {
    "dog": (0.0, 0.0),
    "dog-distance": (0.0, 0.0),
    "dog-learning_rate": (0.0, 0.0),
    "dowg": (0.0, 0.0),
    "dowg-tuned": (0.0, 0.0),
    "ldog": (0.0, 0.0),
    "ldog-tuned": (0.0, 0.0),
}
BOUND = {jnp.float32: 2e-6, jnp.float64: 4e-15}  # above the largest measured, for other CPUs' FMA


def diff(name, dtype):
    ours, theirs = CASES[name]
    return descent_gap(ours(dtype), theirs(dtype), quadratic(dtype), descend)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_optax(dtype, name):
    assert diff(name, dtype) <= BOUND[dtype]


def test_first_step_is_the_learning_rate_start():
    p = {"w": jnp.ones(3)}
    opt = gradchain.dog(init_step=("learning_rate", 0.25))
    u, _ = opt.update({"w": jnp.full(3, 2.0)}, opt.init(p), p)
    np.testing.assert_allclose(u["w"], -0.5)


def test_bad_input_names_the_argument():
    with pytest.raises(gradchain.GradchainError, match="init_step"):
        gradchain.dog(init_step=("guess", 1.0))
    with pytest.raises(gradchain.GradchainError, match="init_step"):
        gradchain.scale_by_dog(1e-6)
    with pytest.raises(gradchain.GradchainError, match="reps_rel"):
        gradchain.scale_by_distance_over_gradients(-1.0)
    t = gradchain.scale_by_dowg()
    with pytest.raises(gradchain.GradchainError, match="params"):
        t.update(jnp.ones(3), t.init(jnp.ones(3)))
