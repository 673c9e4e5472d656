"""The line-search family (transforms/line_search.py, transforms/polyak.py,
optimizers/line_search.py): L-BFGS and its line searches, and the Polyak step, against
Optax; tolerances measured once and frozen, the measured number beside each."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

"""The backtracking line search with the settings Optax documents at the edges:
increase_factor=inf (start every search at max_learning_rate) and slope_rtol=0 (plain
decrease), against Optax's ``scale_by_backtracking_linesearch``, float32 and float64.
Tolerances measured once and frozen, the measured numbers beside them."""

import optax
import pytest

import gradchain
from tests.conftest import reference_promotion
from tests.problems import max_diff


def ill_conditioned(dtype):
    scales = jnp.logspace(0, 3, 6, dtype=dtype)  # condition number 1000
    return lambda w: 0.5 * jnp.sum(scales * w["a"] ** 2) + 0.3 * jnp.sum(w["b"] ** 2)


def rosenbrock(w):
    x = jnp.concatenate([w["a"], w["b"]])
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def minimize(lib, opt, f, w, steps=60, reuse=True):
    """``steps`` L-BFGS steps in one compiled scan, reusing the line search's value and
    gradient (``value_and_grad_from_state``) where the optimizer keeps them."""
    vag = lib.value_and_grad_from_state(f) if reuse else (lambda p, state: jax.value_and_grad(f)(p))

    def body(carry, _):
        w, s = carry
        value, grad = vag(w, state=s)
        u, s = opt.update(grad, s, w, value=value, grad=grad, value_fn=f)
        return (lib.apply_updates(w, u), s), value

    (w, _), values = jax.lax.scan(body, (w, opt.init(w)), None, length=steps)
    return w, values


LBFGS_CASES = {  # name: (problem, build from a library, reuse the stored gradient)
    "zoom-quadratic": (ill_conditioned, lambda m: m.lbfgs(), True),
    "zoom-rosenbrock": (lambda dt: rosenbrock, lambda m: m.lbfgs(), True),
    "backtracking-rosenbrock": (
        lambda dt: rosenbrock,
        lambda m: m.lbfgs(linesearch=m.scale_by_backtracking_linesearch(15, store_grad=True)),
        True,
    ),
    "no-linesearch-quadratic": (
        ill_conditioned,
        lambda m: m.lbfgs(learning_rate=0.5, memory_size=4, linesearch=None),
        False,
    ),
}


# both problems with the default zoom search in both dtypes; the other searches in one dtype
# each, to keep the compile time down (~5 s per case)
LBFGS_RUNS = [
    ("zoom-quadratic", "float32"),
    ("zoom-quadratic", "float64"),
    ("zoom-rosenbrock", "float32"),
    ("zoom-rosenbrock", "float64"),
    ("backtracking-rosenbrock", "float64"),
    ("no-linesearch-quadratic", "float32"),
]


@pytest.mark.parametrize("case, dtype_name", LBFGS_RUNS)
def test_lbfgs_equals_optax(case, dtype_name, request):
    dtype = {"float32": jnp.float32, "float64": jnp.float64}[dtype_name]
    if dtype == jnp.float64:
        request.getfixturevalue("x64")
    problem, build, reuse = LBFGS_CASES[case]
    f = problem(dtype)
    w0 = {"a": jnp.full(6, -1.2, dtype), "b": jnp.asarray([1.0, 0.5], dtype)}
    ours = jax.jit(lambda w: minimize(gradchain, build(gradchain), f, w, reuse=reuse))(w0)
    with reference_promotion():
        ref = jax.jit(lambda w: minimize(optax, build(optax), f, w, reuse=reuse))(w0)
    # measured 0.0 (bit for bit) in float32 and float64, every case, 60 steps
    assert max_diff(ours, ref) <= (1e-6 if dtype == jnp.float32 else 1e-12)
    if "zoom" in case:
        assert float(ours[1][-1]) < 1e-9  # it did converge: the comparison is not vacuous


def test_line_search_passes_extra_arguments_to_value_fn_and_refuses_the_rest():
    def f(w, data):
        return jnp.sum((w - data) ** 2)

    def step(lib, w, data, **more):
        opt = lib.lbfgs()
        value, grad = jax.value_and_grad(f)(w, data)
        return opt.update(
            grad, opt.init(w), w, value=value, grad=grad, value_fn=f, data=data, **more
        )

    w, data = jnp.zeros(3), jnp.asarray([1.0, 2.0, 3.0])
    u, state = jax.jit(lambda w, d: step(gradchain, w, d))(w, data)
    with reference_promotion():
        v, _ = jax.jit(lambda w, d: step(optax, w, d))(w, data)
    np.testing.assert_allclose(u, v, rtol=0, atol=0)  # measured: bit for bit
    # Optax's own helper reads the value and gradient from a gradchain state
    v2, _ = optax.value_and_grad_from_state(f)(w + u, data, state=state)
    np.testing.assert_allclose(float(v2), float(f(w + u, data)), atol=1e-6)
    unexpected = r"Unexpected keyword arguments \['batch'\]: value_fn does not take them"
    with pytest.raises(gradchain.GradchainError, match=unexpected):
        step(gradchain, w, data, batch=1)  # refused before anything runs
    with pytest.raises(TypeError, match=unexpected):  # what Python and Optax raise for them
        step(gradchain, w, data, batch=1)
    opt = gradchain.lbfgs()
    with pytest.raises(gradchain.GradchainError, match="missing: value_fn"):
        opt.update(w, opt.init(w), w, value=1.0, grad=w)


def test_polyak_sgd_gets_its_value_through_gradchains_wrappers_not_optaxs():
    """The documented difference in Optax's alias suite: optax.MultiSteps drops ``value`` on
    the way to a gradchain transform (it passes extra arguments only to its own class), so
    polyak_sgd refuses; gradchain's MultiSteps and inject_hyperparams pass it on: bit for bit."""
    f = lambda x: jnp.sum(x**2)  # noqa: E731
    p = jnp.asarray([1.0, 2.0])
    g = jax.grad(f)(p)
    alone = gradchain.polyak_sgd(max_learning_rate=1.0)
    want, _ = alone.update(g, alone.init(p), p, value=f(p))
    for opt in (
        gradchain.MultiSteps(gradchain.polyak_sgd(max_learning_rate=1.0), every_k_schedule=1),
        gradchain.inject_hyperparams(gradchain.polyak_sgd)(max_learning_rate=1.0),
    ):
        got, _ = opt.update(g, opt.init(p), p, value=f(p))
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    theirs = optax.MultiSteps(gradchain.polyak_sgd(max_learning_rate=1.0), every_k_schedule=1)
    with pytest.raises(gradchain.GradchainError, match="needs the objective's value"):
        theirs.update(g, theirs.init(p), p, value=f(p))


def test_scale_by_polyak_is_the_gap_over_the_squared_norm_capped_by_hand():
    """u = (3, 4) over two leaves, ||u||**2 = 25: value 10 gives the step 10 / 25 = 0.4; a cap
    of 0.1 wins over it; sps+ with the value below f_min gives 0; a zero update stays 0."""
    u = {"a": jnp.asarray([3.0]), "b": jnp.asarray([4.0])}

    def step(value, **kw):
        opt = gradchain.scale_by_polyak(**kw)
        return opt.update(u, opt.init(u), u, value=jnp.asarray(value))[0]

    chex.assert_trees_all_close(
        step(10.0), {"a": jnp.asarray([1.2]), "b": jnp.asarray([1.6])}, rtol=1e-7
    )
    chex.assert_trees_all_close(
        step(11.0, f_min=1.0, max_learning_rate=0.1),
        {"a": jnp.asarray([0.3]), "b": jnp.asarray([0.4])},
        rtol=1e-7,
    )  # float32: a few ulps
    chex.assert_trees_all_equal(step(-1.0, variant="sps+"), {"a": jnp.zeros(1), "b": jnp.zeros(1)})
    zero = {"a": jnp.zeros(1), "b": jnp.zeros(1)}
    opt = gradchain.scale_by_polyak()
    chex.assert_trees_all_equal(opt.update(zero, opt.init(zero), zero, value=1.0)[0], zero)

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


def test_value_and_grad_from_state_refuses_a_state_without_exactly_one_line_search():
    """None storing the gradient: a GradchainError (a ValueError, as Optax's). Two line
    searches: ambiguous, a GradchainError that is also the KeyError Optax raises."""
    w = jnp.ones(3)
    f = lambda p: jnp.sum(p**2)  # noqa: E731
    vag = gradchain.value_and_grad_from_state(f)
    with pytest.raises(ValueError, match="found 0 line searches, 0 storing it"):
        vag(w, state=gradchain.adam(0.1).init(w))
    two = gradchain.chain(
        gradchain.scale_by_backtracking_linesearch(15, store_grad=True),
        gradchain.scale_by_backtracking_linesearch(15, store_grad=True),
    )
    with pytest.raises(KeyError, match="found 2 line searches, 2 storing it") as caught:
        vag(w, state=two.init(w))
    assert isinstance(caught.value, gradchain.GradchainError)
    assert str(caught.value).startswith("value_and_grad_from_state")  # not quoted
