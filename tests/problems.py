"""The small problems and compiled loops that several test modules run optimizers on (the
family tests and the conformance tables against Optax), and the two sets of optimizers whose
invariants and memory are checked on them. Each problem is written once, here."""

import contextlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradchain
from tests.conftest import reference_promotion

# --- objectives and a descent loop: 120 steps in one compiled scan ---------------------------

STEPS = 120


def max_diff(a, b):
    return max(
        float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def tol(dtype, f32, f64):
    return f32 if dtype == jnp.float32 else f64


def quadratic(dtype):
    """A multi-leaf quadratic with scales 0.5..8 and its minimum away from the start."""
    scales = {
        "w": jnp.linspace(0.5, 8.0, 12, dtype=dtype).reshape(4, 3),
        "b": jnp.asarray([1.0, 2.0, 4.0], dtype),
    }
    target = {
        "w": jnp.linspace(-1.0, 1.0, 12, dtype=dtype).reshape(4, 3),
        "b": jnp.asarray([0.5, -0.5, 0.25], dtype),
    }

    def f(p):
        return sum(0.5 * jnp.sum(scales[k] * (p[k] - target[k]) ** 2) for k in p) + 0.1

    return f, {"w": jnp.full((4, 3), 2.0, dtype), "b": jnp.full((3,), -2.0, dtype)}


def quadratic_and_quartic(dtype):
    """A quadratic with scales 0.5..4 plus a quartic leaf: curvature that changes."""
    scales = jnp.linspace(0.5, 4.0, 6, dtype=dtype).reshape(2, 3)

    def f(p):
        return 0.5 * jnp.sum(scales * (p["w"] - 1.0) ** 2) + jnp.sum(p["b"] ** 4) + 0.1

    return f, {"w": jnp.full((2, 3), 2.0, dtype), "b": jnp.asarray([1.0, -0.5, 0.25], dtype)}


def no_extra(f, value):
    return {}


def give_value(f, value):
    return {"value": value}


def descend(lib, opt, f, params, extra=no_extra, steps=STEPS):
    """``steps`` steps of ``opt`` on ``f`` in one scan; ``extra`` gives the update's extra
    arguments from the objective and its value. Returns the params, the values on the way
    and the last state."""

    def body(carry, _):
        p, s = carry
        value, grad = jax.value_and_grad(f)(p)
        u, s = opt.update(grad, s, p, **extra(f, value))
        return (lib.apply_updates(p, u), s), value

    (p, s), values = jax.lax.scan(body, (params, opt.init(params)), None, length=steps)
    return p, values, s


def descent_gap(ours, theirs, problem, loop=descend, *, descended=0.5, ours_promoted=False):
    """gradchain's transform ``ours`` and Optax's ``theirs`` down ``problem`` (an objective
    and its start) with ``loop(lib, opt, f, params) -> (params, values, ...)``: the largest
    params difference. Checks first that ours descended (last value below ``descended`` x the
    first: not vacuous) and kept every leaf's dtype. ``ours_promoted``: run ours under the
    reference's promotion rules too (an Optax piece inside it)."""
    f, p0 = problem
    with reference_promotion() if ours_promoted else contextlib.nullcontext():
        got = jax.jit(lambda p: loop(gradchain, ours, f, p))(p0)
    with reference_promotion():
        want = jax.jit(lambda p: loop(optax, theirs, f, p))(p0)
    assert float(got[1][-1]) < descended * float(got[1][0])
    for a, x in zip(jax.tree.leaves(got[0]), jax.tree.leaves(p0)):
        assert a.dtype == x.dtype
    return max_diff(got[0], want[0])


def compare(ours, theirs, dtype, extra=no_extra):
    """gradchain's ``ours()`` and Optax's ``theirs()`` down ``quadratic_and_quartic``: the
    largest params difference, and both runs (params, values, state)."""
    f, p0 = quadratic_and_quartic(dtype)
    got = jax.jit(lambda p: descend(gradchain, ours(), f, p, extra))(p0)
    with reference_promotion(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = jax.jit(lambda p: descend(optax, theirs(), f, p, extra))(p0)
    assert float(got[1][-1]) < 0.5 * float(got[1][0])  # it did descend: not vacuous
    return max_diff(got[0], want[0]), got, want


# --- a noisy quadratic with NaN steps: 100 steps -------------------------------------------

NOISY_STEPS = 100


def noisy_problem(dtype):
    params = {"w": jnp.linspace(-1.0, 1.0, 6, dtype=dtype).reshape(2, 3), "b": jnp.ones(2, dtype)}
    noise = jax.random.normal(jax.random.PRNGKey(1), (NOISY_STEPS, 8), dtype)
    scale = jnp.arange(1, 7, dtype=dtype).reshape(2, 3) / 3

    def grad(p, n):
        return {"w": p["w"] * scale + 0.1 * n[:6].reshape(2, 3), "b": p["b"] - 0.5 + 0.1 * n[6:]}

    return params, noise, grad


def final_params(opt, dtype, nan_steps=()):
    """The params and state after NOISY_STEPS steps of ``opt``; the gradient is all NaN at
    ``nan_steps``."""
    params, noise, grad = noisy_problem(dtype)
    bad = jnp.zeros(NOISY_STEPS, bool).at[jnp.asarray(nan_steps, int)].set(True)

    @jax.jit
    def run(params, noise, bad):
        def step(carry, x):
            p, s = carry
            g = jax.tree.map(lambda a: jnp.where(x[1], jnp.nan, a), grad(p, x[0]))
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(step, (params, opt.init(params)), (noise, bad))[0]

    with reference_promotion():
        return run(params, noise, bad)


def final_gap(ours, theirs, dtype, **kw):
    a, _ = final_params(ours, dtype, **kw)
    b, _ = final_params(theirs, dtype, **kw)
    return max(
        float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def with_lr(transform, optax_module=gradchain):
    return optax_module.chain(transform, optax_module.scale(-0.01))


# --- a tree with a 130 x 160 matrix, on gradient = params + noise: 200 steps ----------------


def matrix_tree(dtype):
    rng = np.random.default_rng(1)
    return {
        "w": jnp.asarray(rng.normal(size=(130, 160)), dtype),  # factored by default
        "v": jnp.asarray(rng.normal(size=(6, 3)), dtype),  # too small to factor
        "layers": [
            jnp.asarray(rng.normal(size=(7,)), dtype),
            jnp.asarray(rng.normal(), dtype),
            jnp.asarray(rng.normal(size=(5, 9)), dtype),
        ],
    }


def noise_sequence(params, dtype, steps=200):
    """``steps`` random trees like params, stacked along a leading axis."""
    rng = np.random.default_rng(2)
    return jax.tree.map(
        lambda p: jnp.asarray(rng.normal(size=(steps, *np.shape(p))), dtype), params
    )


def run_noisy(opt, params, noise, jit=True):
    """Steps on a noisy quadratic: gradient = params + noise (default Adafactor has no learning
    rate, and on pure noise its params would grow without bound). One ``lax.scan`` when
    jitted, a Python loop of eager updates otherwise."""

    def step(carry, n):
        params, state = carry
        grads = jax.tree.map(lambda p, x: p + x, params, n)
        updates, state = opt.update(grads, state, params)
        return (jax.tree.map(lambda p, u: p + u, params, updates), state), None

    carry = (params, opt.init(params))
    if jit:
        return jax.jit(lambda c, ns: jax.lax.scan(step, c, ns)[0])(carry, noise)
    for i in range(jax.tree.leaves(noise)[0].shape[0]):
        carry, _ = step(carry, jax.tree.map(lambda x, i=i: x[i], noise))
    return carry


# The optimizers with a reduced state (or none), as their invariants and memory are checked.
REDUCED_STATE = {
    "adafactor": lambda: gradchain.adafactor(0.01, min_dim_size_to_factor=4, momentum=0.9),
    "muon": lambda: gradchain.muon(0.01),
    "sign_sgd": lambda: gradchain.sign_sgd(0.01),
    "signum": lambda: gradchain.signum(0.01, mu_dtype=jnp.bfloat16),
}


# --- a small tree of matrices, vectors and a scalar, on random gradients: 200 steps ----------


def small_tree(dtype):
    rng = np.random.default_rng(1)
    return {
        "w": jnp.asarray(rng.normal(size=(4, 3)), dtype),
        "b": jnp.asarray(rng.normal(size=(3,)), dtype),
        "layers": [jnp.asarray(rng.normal(size=(2, 5)), dtype), jnp.asarray(rng.normal(), dtype)],
    }


def grads_sequence(params, dtype, steps=200):
    """``steps`` random gradients, stacked: each leaf has a leading axis of length ``steps``
    (made in numpy and moved once -- 800 small device arrays would cost seconds)."""
    rng = np.random.default_rng(2)
    return jax.tree.map(
        lambda p: jnp.asarray(rng.normal(size=(steps, *np.shape(p))), dtype), params
    )


def run_grads(opt, params, grads):
    """Apply ``opt`` along the stacked ``grads`` in one jitted ``lax.scan`` (one compilation,
    one dispatch -- and a state whose types drift would not even trace)."""

    def step(carry, g):
        params, state = carry
        updates, state = opt.update(g, state, params)
        return (jax.tree.map(lambda p, u: p + u, params, updates), state), None

    loop = jax.jit(lambda carry, gs: jax.lax.scan(step, carry, gs)[0])
    return loop((params, opt.init(params)), grads)


def steps_of(grads):
    """The stacked gradients as a list, one tree per step."""
    leaves, treedef = jax.tree.flatten(grads)
    return [treedef.unflatten([x[t] for x in leaves]) for t in range(leaves[0].shape[0])]


def max_abs_diff(a, b):
    return max(
        float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


# The adaptive optimizers that keep more than Adam's state, or other state than Adam's, as
# their invariants and memory are checked.
ADAPTIVE = {
    "ademamix": lambda: gradchain.ademamix(0.01, weight_decay=0.1),
    "adan": lambda: gradchain.adan(0.01, weight_decay=0.1),
    "schedule_free_adamw": lambda: gradchain.schedule_free_adamw(0.01, weight_decay=0.1),
    "adabelief": lambda: gradchain.adabelief(0.01),
    "radam": lambda: gradchain.radam(0.01),
    "yogi": lambda: gradchain.yogi(0.01),
    "adopt": lambda: gradchain.adopt(0.01),
    "nadamw": lambda: gradchain.nadamw(0.01),
    "adamaxw": lambda: gradchain.adamaxw(0.01),
    "lamb": lambda: gradchain.lamb(0.01),
    "lars": lambda: gradchain.lars(0.1),
    "rprop": lambda: gradchain.rprop(0.01),
    "adadelta": lambda: gradchain.adadelta(1.0),
}


# --- a vector under shrinking gradients, for the torch.optim references ---------------------


def shrinking_grads(steps=30, size=5):
    """``steps`` float64 gradients whose scale falls from 10 to 0.1: an old maximum wins."""
    rng = np.random.default_rng(4)
    return rng.normal(size=(steps, size)) * np.geomspace(10.0, 0.1, steps)[:, None]


def gradchain_steps(opt, params, grads):
    """``params`` after ``opt`` takes the given gradients, one jitted step each."""
    step, state = jax.jit(opt.update), opt.init(params)
    for g in grads:
        u, state = step(jnp.asarray(g), state, params)
        params = gradchain.apply_updates(params, u)
    return params


def torch_steps(make_optimizer, params, grads):
    """``params`` (one float64 vector) after torch's ``make_optimizer([tensor])`` takes the
    given gradients."""
    import torch

    t = torch.tensor(np.asarray(params, np.float64), requires_grad=True)
    opt = make_optimizer([t])
    for g in grads:
        t.grad = torch.tensor(np.asarray(g, np.float64))
        opt.step()
    return t.detach().numpy()
