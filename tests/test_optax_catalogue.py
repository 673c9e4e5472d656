"""The rest of Optax's catalogue (issue 16) against Optax's functions of the same name, in
float32 and float64; tolerances measured once and frozen, the measured number beside each."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion


def max_diff(a, b):
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """float64 runs under x64 (restored afterwards)."""
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", request.param == "float64")
    yield jnp.dtype(request.param)
    jax.config.update("jax_enable_x64", before)


# --- L-BFGS and its line searches --------------------------------------------------------

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
        ill_conditioned, lambda m: m.lbfgs(learning_rate=0.5, memory_size=4, linesearch=None), False
    ),
}


# both problems with the default zoom search in both dtypes; the other searches in one dtype
# each, to keep the compile time down (~5 s per case)
LBFGS_RUNS = [
    ("zoom-quadratic", "float32"), ("zoom-quadratic", "float64"),
    ("zoom-rosenbrock", "float32"), ("zoom-rosenbrock", "float64"),
    ("backtracking-rosenbrock", "float64"), ("no-linesearch-quadratic", "float32"),
]


@pytest.mark.parametrize("case, dtype", LBFGS_RUNS, indirect=["dtype"])
def test_lbfgs_equals_optax(case, dtype):
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
        return opt.update(grad, opt.init(w), w, value=value, grad=grad, value_fn=f, data=data, **more)

    w, data = jnp.zeros(3), jnp.asarray([1.0, 2.0, 3.0])
    u, state = jax.jit(lambda w, d: step(gradchain, w, d))(w, data)
    with reference_promotion():
        v, _ = jax.jit(lambda w, d: step(optax, w, d))(w, data)
    np.testing.assert_allclose(u, v, rtol=0, atol=0)  # measured: bit for bit
    # Optax's own helper reads the value and gradient from a gradchain state
    v2, _ = optax.value_and_grad_from_state(f)(w + u, data, state=state)
    np.testing.assert_allclose(float(v2), float(f(w + u, data)), atol=1e-6)
    with pytest.raises(gradchain.GradchainError, match=r"\['batch'\] were not consumed by value_fn"):
        step(gradchain, w, data, batch=1)  # refused before anything runs
    opt = gradchain.lbfgs()
    with pytest.raises(gradchain.GradchainError, match="missing: value_fn"):
        opt.update(w, opt.init(w), w, value=1.0, grad=w)


# --- named optimizers: 120 steps on a quadratic, against Optax -----------------------------

STEPS = 120


def quadratic(dtype):
    """A multi-leaf quadratic with scales 0.5..8 and its minimum away from the start."""
    scales = {"w": jnp.linspace(0.5, 8.0, 12, dtype=dtype).reshape(4, 3), "b": jnp.asarray([1.0, 2.0, 4.0], dtype)}
    target = {"w": jnp.linspace(-1.0, 1.0, 12, dtype=dtype).reshape(4, 3), "b": jnp.asarray([0.5, -0.5, 0.25], dtype)}

    def f(p):
        return sum(0.5 * jnp.sum(scales[k] * (p[k] - target[k]) ** 2) for k in p) + 0.1

    return f, {"w": jnp.full((4, 3), 2.0, dtype), "b": jnp.full((3,), -2.0, dtype)}


def descend(lib, opt, f, params, with_value):
    def body(carry, _):
        p, s = carry
        value, grad = jax.value_and_grad(f)(p)
        extra = {"value": value} if with_value else {}
        u, s = opt.update(grad, s, p, **extra)
        return (lib.apply_updates(p, u), s), value

    (p, _), values = jax.lax.scan(body, (params, opt.init(params)), None, length=STEPS)
    return p, values


# name: (gradchain factory, optax factory, needs value=, float32 tol, float64 tol, measured)
NAMED_PAIRS = {
    "polyak_sgd": (lambda: gradchain.polyak_sgd(0.5, scaling=0.9, f_min=0.05),
                   lambda: optax.polyak_sgd(0.5, scaling=0.9, f_min=0.05), True),
    "polyak_sgd_plus": (lambda: gradchain.polyak_sgd(variant="sps+", eps=1e-3),
                        lambda: optax.polyak_sgd(variant="sps+", eps=1e-3), True),
    "novograd": (lambda: gradchain.novograd(0.02, weight_decay=0.01),
                 lambda: optax.novograd(0.02, weight_decay=0.01), False),
    "sm3": (lambda: gradchain.sm3(0.1), lambda: optax.sm3(0.1), False),
    # a constant rate (Optax computes a scheduled Fromage's factors in float32) small enough
    # not to reach the bouncing regime near the minimum, where ulps grow chaotically
    "fromage": (lambda: gradchain.fromage(0.01), lambda: optax.fromage(0.01), False),
    "noisy_sgd": (lambda: gradchain.noisy_sgd(0.02, key=3), lambda: optax.noisy_sgd(0.02, key=3), False),
    "optimistic_gradient_descent": (
        lambda: gradchain.optimistic_gradient_descent(0.02, alpha=0.8, beta=0.5),
        lambda: optax.optimistic_gradient_descent(0.02, alpha=0.8, beta=0.5), False),
    "optimistic_adam": (lambda: gradchain.optimistic_adam(0.02, optimism=0.01),
                        lambda: optax.optimistic_adam(0.02, optimism=0.01), False),
    "optimistic_adam_v2": (
        lambda: gradchain.optimistic_adam_v2(0.5, alpha=0.04, beta=0.02, nesterov=False),
        lambda: optax.optimistic_adam_v2(0.5, alpha=0.04, beta=0.02, nesterov=False), False),
}
# name: (float32, float64) bound on max |params difference| after 120 steps; measured
# values in the comments (params of size ~1); names not listed: measured 0.0 in both
NAMED_TOL = {
    "fromage": (5e-6, 1e-13),  # 1.8e-6, 2.1e-14
    "novograd": (5e-6, 1e-14),  # 1.4e-6, 8.9e-16
    "optimistic_adam": (3e-5, 1e-14),  # 9.7e-6, 1.7e-16
    "optimistic_adam_v2": (3e-5, 1e-14),  # 9.8e-6, 0.0
    "sm3": (1e-6, 1e-14),  # 3.6e-7, 0.0
}


@pytest.mark.parametrize("name", sorted(NAMED_PAIRS))
def test_named_optimizer_equals_optax(name, dtype):
    ours, theirs, with_value = NAMED_PAIRS[name]
    f, p0 = quadratic(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # optimistic_adam's first version
        got = jax.jit(lambda p: descend(gradchain, ours(), f, p, with_value))(p0)
    with reference_promotion(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # optimistic_adam's first version
        want = jax.jit(lambda p: descend(optax, theirs(), f, p, with_value))(p0)
    f32, f64 = NAMED_TOL.get(name, (0.0, 0.0))
    diff = max_diff(got[0], want[0])
    assert diff <= (f32 if dtype == jnp.float32 else f64)
    assert float(got[1][-1]) < float(got[1][0])  # it did descend: not a vacuous comparison


SCHEDULE_FREE_CASES = [  # (keywords, float32 bound, float64 bound): measured in the comments
    (dict(learning_rate=0.3), 5e-7, 1e-14),  # 1.2e-7, 0.0
    (dict(learning_rate=0.3, warmup_steps=10, weight_decay=0.01, b1=0.8), 5e-7, 5e-9),
    # ^ 1.8e-7, 1.2e-9: Optax's warmup schedule runs in float32 even under x64 (int32
    #   count); with that same schedule function given to both, float64 agrees exactly:
    (dict(learning_rate=optax.linear_schedule(0.0, 0.3, 10), weight_decay=0.01), 5e-7, 1e-14),  # 1.8e-7, 0.0
]


@pytest.mark.parametrize("case", range(len(SCHEDULE_FREE_CASES)))
def test_schedule_free_sgd_equals_optax(case, dtype):
    kwargs, tol32, tol64 = SCHEDULE_FREE_CASES[case]
    f, p0 = quadratic(dtype)
    got = jax.jit(lambda p: descend(gradchain, gradchain.schedule_free_sgd(**kwargs), f, p, False))(p0)
    with reference_promotion():
        want = jax.jit(lambda p: descend(optax, optax.contrib.schedule_free_sgd(**kwargs), f, p, False))(p0)
    assert max_diff(got[0], want[0]) <= (tol32 if dtype == jnp.float32 else tol64)


def test_sm3_takes_params_in_a_list():
    """SM3's state holds a list of accumulators per leaf; with the params themselves in a
    list, all of them were read as one leaf (Optax's alias suite, inject_hyperparams case).
    Three steps on a list of a matrix, a 3-d leaf and a vector equal Optax's: measured 4.5e-8
    in updates of size 0.1 (float32)."""
    params = [-jnp.ones((2, 3)), jnp.ones((2, 5, 2)), jnp.arange(4.0)]
    ours, theirs = gradchain.sm3(1.0), optax.sm3(1.0)
    s, t = ours.init(params), theirs.init(params)
    for _ in range(3):
        u, s = jax.jit(ours.update)(params, s, params)
        with reference_promotion():
            v, t = jax.jit(theirs.update)(params, t, params)
        assert max_diff(u, v) <= 1e-7


def test_noisy_sgd_takes_its_seed_as_a_traced_integer_under_optax_inject_hyperparams():
    """optax.inject_hyperparams hands ``key=0`` in as a traced int32; it was refused as not
    an integer. The injected optimizer's step and inner state equal plain noisy_sgd's: 0.0."""
    params = [-jnp.ones((2, 3)), jnp.ones((4,))]
    plain = gradchain.noisy_sgd(1e-3, eta=1e-4, key=0)
    injected = optax.inject_hyperparams(gradchain.noisy_sgd)(1e-3, eta=1e-4, key=0)
    u, s = jax.jit(plain.update)(params, plain.init(params), params)
    v, t = jax.jit(injected.update)(params, jax.jit(injected.init)(params), params)
    assert max_diff(u, v) == 0.0 and max_diff(s, t.inner_state) == 0.0
    assert jax.tree.structure(s) == jax.tree.structure(t.inner_state)


def test_optimistic_adam_is_deprecated_for_v2_as_in_optax_and_is_v2_with_its_rate_inside():
    """Optax deprecates optimistic_adam for optimistic_adam_v2 (its alias suite expects the
    warning); the first version is v2 with alpha = learning_rate, beta = optimism and a unit
    learning rate: 5 steps, measured bit for bit."""
    with pytest.warns(DeprecationWarning, match="use `optimistic_adam_v2` instead"):
        first = gradchain.optimistic_adam(0.02, optimism=0.01)
    second = gradchain.optimistic_adam_v2(1.0, alpha=0.02, beta=0.01)
    f, p0 = quadratic(jnp.float32)
    got, want = (jax.jit(lambda p, o=o: descend(gradchain, o, f, p, False))(p0) for o in (first, second))
    assert max_diff(got[0], want[0]) == 0.0


def test_polyak_sgd_gets_its_value_through_gradchains_wrappers_not_optaxs():
    """The documented difference in Optax's alias suite: optax.MultiSteps drops ``value`` on
    the way to a gradchain transform (it passes extra arguments only to its own class), so
    polyak_sgd refuses; gradchain's MultiSteps and inject_hyperparams pass it on: bit for bit."""
    f = lambda x: jnp.sum(x**2)  # noqa: E731
    p = jnp.asarray([1.0, 2.0])
    g = jax.grad(f)(p)
    alone = gradchain.polyak_sgd(max_learning_rate=1.0)
    want, _ = alone.update(g, alone.init(p), p, value=f(p))
    for opt in (gradchain.MultiSteps(gradchain.polyak_sgd(max_learning_rate=1.0), every_k_schedule=1),
                gradchain.inject_hyperparams(gradchain.polyak_sgd)(max_learning_rate=1.0)):
        got, _ = opt.update(g, opt.init(p), p, value=f(p))
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    theirs = optax.MultiSteps(gradchain.polyak_sgd(max_learning_rate=1.0), every_k_schedule=1)
    with pytest.raises(gradchain.GradchainError, match="needs the objective's value"):
        theirs.update(g, theirs.init(p), p, value=f(p))
