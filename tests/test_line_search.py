"""The backtracking line search with the settings Optax documents at the edges:
increase_factor=inf (start every search at max_learning_rate) and slope_rtol=0 (plain
decrease), against Optax's ``scale_by_backtracking_linesearch``, float32 and float64.
Tolerances measured once and frozen, the measured numbers beside them."""

import jax
import jax.numpy as jnp
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion

STEPS = 30


def objective(p):
    """Curvatures 1..8 and a quartic term: a step size that must change along the way."""
    x = p["x"]
    scales = jnp.asarray([1.0, 2.0, 4.0, 8.0], x.dtype)
    return jnp.sum(scales * (x - 1.0) ** 2) + jnp.sum(x**4) / 4


def descend(lib, opt, params):
    def body(carry, _):
        p, s = carry
        value, grad = jax.value_and_grad(objective)(p)
        u, s = opt.update(grad, s, p, value=value, grad=grad, value_fn=objective)
        return (lib.apply_updates(p, u), s), value

    (p, s), values = jax.lax.scan(body, (params, opt.init(params)), None, length=STEPS)
    return p, values


def pair(**kw):
    return (
        lambda: gradchain.chain(
            gradchain.sgd(1.0), gradchain.scale_by_backtracking_linesearch(15, **kw)
        ),
        lambda: optax.chain(optax.sgd(1.0), optax.scale_by_backtracking_linesearch(15, **kw)),
    )


CASES = {
    "increase_factor-inf": pair(increase_factor=jnp.inf),
    "increase_factor-inf-max_lr": pair(increase_factor=float("inf"), max_learning_rate=0.01),
    "slope_rtol-0": pair(slope_rtol=0.0),
    "both": pair(slope_rtol=0.0, increase_factor=jnp.inf, decrease_factor=0.5),
}
# max |params difference| after 30 steps (params ~1), float32 / float64, measured (the same
# operations: exactly equal):
MEASURED = {name: (0.0, 0.0) for name in CASES}
FLOOR = {jnp.float32: 1e-6, jnp.float64: 4e-15}  # room for another CPU's FMA choices


def diff(name, dtype):
    ours, theirs = CASES[name]
    p0 = {"x": jnp.asarray([-1.2, 1.0, -0.5, 0.8], dtype)}
    got = jax.jit(lambda p: descend(gradchain, ours(), p))(p0)
    with reference_promotion():
        want = jax.jit(lambda p: descend(optax, theirs(), p))(p0)
    assert float(got[1][-1]) < 0.5 * float(got[1][0])  # it descended: not vacuous
    assert got[0]["x"].dtype == dtype
    return float(jnp.max(jnp.abs(got[0]["x"] - want[0]["x"])))


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_optax(dtype, name):
    assert diff(name, dtype) <= max(4 * MEASURED[name][dtype == jnp.float64], FLOOR[dtype])


def test_inf_starts_at_max_learning_rate_even_after_a_zero_step():
    t = gradchain.scale_by_backtracking_linesearch(
        3, increase_factor=jnp.inf, max_learning_rate=0.5
    )
    p = {"x": jnp.asarray([1.0, 2.0, -1.0, 0.5])}
    state = t.init(p)._replace(learning_rate=jnp.zeros([]))  # inf * 0 would be NaN
    g = jax.grad(objective)(p)
    descent = jax.tree.map(jnp.negative, g)
    _, state = t.update(descent, state, p, value=objective(p), grad=g, value_fn=objective)
    assert float(state.learning_rate) > 0  # a step was found, from max_learning_rate down
    assert bool(jnp.isfinite(state.learning_rate))


def test_bad_input_names_the_argument():
    with pytest.raises(gradchain.GradchainError, match="slope_rtol"):
        gradchain.scale_by_backtracking_linesearch(5, slope_rtol=-1e-4)
    with pytest.raises(gradchain.GradchainError, match="increase_factor"):
        gradchain.scale_by_backtracking_linesearch(5, increase_factor=0.0)
