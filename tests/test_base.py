"""The protocol in base.py: which gradient a chain member reads, and the declarations that rule.

The rule (``gradchain.chain``'s docstring, README "Which gradient?"): every member reads the
output of the chain's leading run of pre-processing members. A transform declares whether it
pre-processes (``preprocessing=True``: its output is still a gradient); one that does not say,
standing in that run in front of a member that reads the gradient, is refused.

References here are written from the papers' equations in NumPy float64, step by step.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion

STEPS = 20
SCALES = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 0.25])


def _loss_grad(p):
    """Gradient of 0.5 * sum(SCALES * (p - 1)**2) plus a fixed oscillation: a filter has
    something to filter."""
    return lambda t: SCALES * (p - 1.0) + 0.3 * np.sin(np.arange(p.size) + t)


def _run(opt, dtype, steps=STEPS):
    """``steps`` jitted steps of ``opt`` on the problem above; returns float64 params."""
    params = jnp.full(SCALES.shape, 3.0, dtype)
    state = opt.init(params)

    @jax.jit
    def step(params, state, t):
        g = jnp.asarray(SCALES, dtype) * (params - 1) + jnp.asarray(0.3, dtype) * jnp.sin(
            jnp.arange(params.size, dtype=dtype) + t.astype(dtype)
        )
        u, state = opt.update(g, state, params)
        return gradchain.apply_updates(params, u), state

    for t in range(steps):
        params, state = step(params, state, jnp.asarray(t, jnp.int32))
    return np.asarray(params, np.float64)


def _grokfast_adamw_reference(alpha, lamb, lr, b1, b2, eps, wd, steps=STEPS):
    """Grokfast-EMA (Lee et al., 2024) in front of AdamW, from the equations:
    e_t = alpha e_{t-1} + (1 - alpha) g_t ;  h_t = g_t + lamb e_t ;  AdamW on h_t."""
    p = np.full(SCALES.shape, 3.0)
    e = np.zeros_like(p)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t in range(steps):
        g = _loss_grad(p)(t)
        e = alpha * e + (1 - alpha) * g
        h = g + lamb * e
        m = b1 * m + (1 - b1) * h
        v = b2 * v + (1 - b2) * h * h
        m_hat, v_hat = m / (1 - b1 ** (t + 1)), v / (1 - b2 ** (t + 1))
        p = p - lr * (m_hat / (np.sqrt(v_hat) + eps) + wd * p)
    return p


def _ema_filter(alpha, lamb, **declaration):
    """The filter as a researcher writes it from notebook 05: plain init and update."""

    def init(params):
        return {"ema": jax.tree.map(jnp.zeros_like, params)}

    def update(updates, state, params=None, **extra):
        ema = jax.tree.map(lambda e, g: alpha * e + (1 - alpha) * g, state["ema"], updates)
        return jax.tree.map(lambda g, e: g + lamb * e, updates, ema), {"ema": ema}

    return gradchain.GradientTransformation(init, update, **declaration)


HYPER = dict(alpha=0.9, lamb=2.0, lr=0.05, b1=0.9, b2=0.999, eps=1e-8, wd=1e-3)
# Measured after 20 steps: float64 4.4e-16 from the float64 reference, float32 8.8e-7.
TOL = {jnp.float32: 2e-6, jnp.float64: 1e-14}
# Against Optax's adamw in the same dtype. Measured: float64 4.4e-16 (0 with the clip in
# front); float32 7.2e-6 -- Optax's float32 run is itself 7.4e-6 from the float64 reference.
TOL_OPTAX = {jnp.float32: 1.5e-5, jnp.float64: 1e-14}


def _adamw():
    h = HYPER
    return gradchain.adamw(h["lr"], h["b1"], h["b2"], h["eps"], weight_decay=h["wd"])


def test_an_undeclared_filter_in_front_of_adam_is_refused_naming_it_and_the_fix():
    undeclared = _ema_filter(HYPER["alpha"], HYPER["lamb"], name="grokfast_ema")
    with pytest.raises(gradchain.GradchainError) as caught:
        gradchain.chain(undeclared, _adamw())
    message = str(caught.value)
    assert "grokfast_ema" in message and "adamw" in message
    assert "preprocessing=True" in message and "preprocessing=False" in message


def test_an_undeclared_transform_is_accepted_where_no_later_member_reads_the_gradient():
    undeclared = _ema_filter(0.9, 2.0)
    gradchain.chain(undeclared, gradchain.sgd(0.1))  # sgd reads only what reaches it
    gradchain.chain(gradchain.adam(0.1), undeclared)  # after the reader: nothing to decide
    gradchain.chain(gradchain.scale_by_momentum(0.9), undeclared, gradchain.scale_by_rms())


def test_a_declared_filter_in_front_of_adamw_equals_the_papers_equations(dtype):
    h = HYPER
    ours = gradchain.chain(_ema_filter(h["alpha"], h["lamb"], preprocessing=True), _adamw())
    reference = _grokfast_adamw_reference(**h)
    assert np.max(np.abs(_run(ours, dtype) - reference)) < TOL[dtype]


def test_the_same_filter_as_an_optax_transform_gives_the_same_numbers(dtype):
    h = HYPER
    filt = _ema_filter(h["alpha"], h["lamb"], preprocessing=True)
    as_optax = optax.GradientTransformation(filt.init, filt.update)
    with reference_promotion():
        ours = _run(gradchain.chain(filt, _adamw()), dtype)
        foreign_in_ours = _run(gradchain.chain(as_optax, _adamw()), dtype)
        all_optax = _run(
            optax.chain(as_optax, optax.adamw(h["lr"], h["b1"], h["b2"], h["eps"],
                                              weight_decay=h["wd"])),
            dtype,
        )
    assert np.array_equal(ours, foreign_in_ours)
    assert np.max(np.abs(ours - all_optax)) < TOL_OPTAX[dtype]


def test_a_declared_direction_in_front_lets_the_second_moment_see_the_raw_gradient(x64):
    """preprocessing=False: the user's own momentum, then scale_by_rms -- nu is built from
    the gradient that entered the momentum (Adam without bias correction)."""
    b1, b2, eps, lr = 0.9, 0.99, 1e-8, 0.05

    def init(params):
        return {"mu": jnp.zeros_like(params)}

    def update(updates, state, params=None, **extra):
        mu = b1 * state["mu"] + (1 - b1) * updates
        return mu, {"mu": mu}

    momentum = gradchain.GradientTransformation(init, update, preprocessing=False)
    ours = gradchain.chain(
        momentum, gradchain.scale_by_rms(b2, eps, eps_in_sqrt=False), gradchain.scale(-lr)
    )
    p = np.full(SCALES.shape, 3.0)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t in range(STEPS):
        g = _loss_grad(p)(t)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * m / (np.sqrt(v) + eps)
    # Measured: 2.2e-16.
    assert np.max(np.abs(_run(ours, jnp.float64) - p)) < 1e-14


def test_optax_transforms_in_front_keep_optax_numbers(dtype):
    """Foreign transforms count as pre-processing: clip, then AdamW, as optax.chain does."""
    with reference_promotion():
        ours = _run(gradchain.chain(optax.clip_by_global_norm(1.0), _adamw()), dtype)
        theirs = _run(
            optax.chain(
                optax.clip_by_global_norm(1.0),
                optax.adamw(HYPER["lr"], HYPER["b1"], HYPER["b2"], HYPER["eps"],
                            weight_decay=HYPER["wd"]),
            ),
            dtype,
        )
    assert np.max(np.abs(ours - theirs)) < TOL_OPTAX[dtype]


def test_a_transform_reading_extra_gradient_works_inside_optax_chain():
    """Inside optax.chain nobody passes ``gradient``: it is the update that reaches it."""
    seen = {}

    def update(updates, state, params=None, **extra):
        seen["gradient"] = extra["gradient"]
        return updates, state

    reader = gradchain.GradientTransformation(
        lambda p: gradchain.EmptyState(), update, preprocessing=False, reads_gradient=True
    )
    opt = optax.chain(optax.scale(2.0), reader)
    params = jnp.ones(3)
    opt.update(jnp.arange(3.0), opt.init(params), params)
    assert np.array_equal(seen["gradient"], 2.0 * np.arange(3.0))


@pytest.mark.parametrize(
    "build, reads",
    [
        (lambda: gradchain.scale_by_rms(), True),
        (lambda: gradchain.scale(2.0), False),
        (lambda: gradchain.adamw(0.1), True),
        (lambda: gradchain.sgd(0.1), False),
        (lambda: gradchain.masked(gradchain.scale_by_rms(), {"a": True}), True),
        (lambda: gradchain.masked(gradchain.scale(1.0), {"a": True}), False),
    ],
)
def test_reads_gradient_is_inferred_from_the_update_or_what_a_wrapper_holds(build, reads):
    assert build().reads_gradient is reads


def test_every_gradchain_transform_declares_whether_it_preprocesses():
    """The library never leaves the question open (only users' own transforms may)."""
    for name in gradchain.optimizers.__all__:
        opt = getattr(gradchain, name)
        try:
            built = opt(0.1)
        except TypeError:
            continue  # needs more than a learning rate; covered by its own tests
        for visit in gradchain.base.walk(built):
            mark = gradchain.base.is_preprocessing(visit.transform)
            assert mark in (True, False), (name, visit.transform)


def _cautious(eps=1e-3):
    """C-AdamW's mask (Liang et al., 2024), written as a researcher would: keep the direction
    where it agrees in sign with the gradient, rescaled by the kept fraction."""

    def update(updates, state, params=None, *, gradient=None, **extra):
        def one(u, g):
            keep = (u * g > 0).astype(u.dtype)
            return u * keep / jnp.maximum(jnp.mean(keep), jnp.asarray(eps, u.dtype))

        return jax.tree.map(one, updates, gradient), state

    return gradchain.GradientTransformation(lambda p: gradchain.EmptyState(), update)


def _cautious_adamw_reference(lr, b1, b2, eps, wd, steps=STEPS, floor=1e-3):
    p = np.full(SCALES.shape, 3.0)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t in range(steps):
        g = _loss_grad(p)(t)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        u = (m / (1 - b1 ** (t + 1))) / (np.sqrt(v / (1 - b2 ** (t + 1))) + eps)
        keep = (u * g > 0).astype(float)
        u = u * keep / max(keep.mean(), floor)
        p = p - lr * (u + wd * p)
    return p


def test_a_transform_after_the_direction_reads_the_gradient_that_entered_the_chain(dtype):
    """C-AdamW from the pieces: Adam's direction, the user's cautious mask (undeclared is fine
    after the direction: the gradient was already fixed), then decay and learning rate."""
    h = HYPER
    ours = gradchain.chain(
        gradchain.clip_by_global_norm(1e6),  # a declared filter in front changes nothing here
        gradchain.scale_by_adam(h["b1"], h["b2"], h["eps"]),
        _cautious(),
        gradchain.add_decayed_weights(h["wd"]),
        gradchain.scale_by_learning_rate(h["lr"]),
    )
    reference = _cautious_adamw_reference(h["lr"], h["b1"], h["b2"], h["eps"], h["wd"])
    # Measured: float64 4.4e-16, float32 1.3e-6.
    assert np.max(np.abs(_run(ours, dtype) - reference)) < TOL[dtype]


def test_gradient_transformation_extra_args_isinstance():
    assert isinstance(gradchain.adam(1e-3), gradchain.GradientTransformationExtraArgs)
    assert isinstance(gradchain.scale_by_adam(), gradchain.GradientTransformationExtraArgs)
    built = gradchain.GradientTransformationExtraArgs(
        lambda p: gradchain.EmptyState(), lambda u, s, p=None, **e: (u, s)
    )
    assert isinstance(built, gradchain.GradientTransformation)


def test_foreign_lbfgs_in_our_chain_equals_optax_chain(x64):
    """A foreign transform gets exactly what optax.chain gives it (value, grad, value_fn)."""
    matrix = jnp.array([[3.0, 0.5, 0.0], [0.5, 2.0, 0.3], [0.0, 0.3, 1.0]])

    def loss(p):
        return 0.5 * p @ matrix @ p - jnp.sum(p)

    def solve(opt):
        value_and_grad = optax.value_and_grad_from_state(loss)

        def step(carry, _):
            p, s = carry
            value, grad = value_and_grad(p, state=s)
            u, s = opt.update(grad, s, p, value=value, grad=grad, value_fn=loss)
            return (optax.apply_updates(p, u), s), None

        p0 = jnp.array([1.0, -1.0, 2.0])
        with reference_promotion():  # Optax's line search mixes int32 and int64 under x64
            return jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), None, length=15)[0][0])(
                p0
            )

    ours = solve(gradchain.chain(optax.clip_by_global_norm(10.0), optax.lbfgs()))
    theirs = solve(optax.chain(optax.clip_by_global_norm(10.0), optax.lbfgs()))
    assert float(jnp.max(jnp.abs(ours - theirs))) == 0.0  # measured: 0 (bit for bit)
    assert float(jnp.max(jnp.abs(ours - jnp.linalg.solve(matrix, jnp.ones(3))))) < 1e-10


def test_every_transform_the_library_builds_says_whether_it_preprocesses():
    """Read from the source: each ``GradientTransformation(...)`` the library constructs
    passes ``preprocessing=`` -- a new transform cannot leave the question to chain."""
    import ast
    import pathlib

    root = pathlib.Path(gradchain.__file__).parent
    undeclared = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None))
                == "GradientTransformation"
                and path.name != "base.py"
                and "preprocessing" not in {k.arg for k in node.keywords}
            ):
                undeclared.append(f"{path.relative_to(root)}:{node.lineno}")
    assert undeclared == []


# --- Optax's protocol helpers (issue 24): stateless, stateless_with_tree_map,
# with_extra_args_support, init_empty_state; None parameters in apply_updates -----------------


def test_stateless_helpers_match_optax(dtype):
    params = {"w": jnp.linspace(-1, 1, 4, dtype=dtype), "b": jnp.ones(2, dtype)}
    g = jax.tree.map(lambda x: 2 * x + 1, params)
    f = lambda u, p: jax.tree.map(lambda a, b: a * b, u, p)  # noqa: E731
    leaf = lambda u, p: u * 3 if p is None else u * p  # noqa: E731
    for ours, theirs in [
        (gradchain.base.stateless(f), optax.stateless(f)),
        (gradchain.base.stateless_with_tree_map(leaf), optax.stateless_with_tree_map(leaf)),
    ]:
        for p in (params, None):
            if p is None and ours.name == "stateless":
                continue
            u1, s1 = ours.update(g, ours.init(params), p)
            u2, _ = theirs.update(g, theirs.init(params), p)
            assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), u1, u2))
            assert s1 == gradchain.EmptyState() == gradchain.base.init_empty_state(params)


def test_with_extra_args_support_drops_what_the_update_does_not_take():
    t = gradchain.base.with_extra_args_support(optax.scale(2.0))  # update takes no **kwargs
    u, _ = t.update(jnp.ones(2), t.init(jnp.ones(2)), None, loss=3.0)
    assert u.tolist() == [2.0, 2.0]
    own = gradchain.scale(2.0)
    assert gradchain.base.with_extra_args_support(own) is own  # already takes them


def test_apply_updates_keeps_none_parameters_like_optax():
    params = {"a": None, "b": jnp.ones(2)}
    updates = {"a": jnp.ones(3), "b": jnp.ones(2)}
    got, want = gradchain.apply_updates(params, updates), optax.apply_updates(params, updates)
    assert got["a"] is None and want["a"] is None and got["b"].tolist() == want["b"].tolist()
    assert gradchain.apply_updates(None, jnp.ones(3)) is None
    with pytest.raises(gradchain.GradchainError, match="None in one of"):
        gradchain.apply_updates({"a": jnp.ones(2)}, {"a": None})  # an update missing: refused


def test_an_update_without_params_is_called_without_them():
    """Optax's protocol lets ``update(updates, state, *, logger=None, **extra)`` leave out
    ``params``; a call that gives none reaches it, and one that gives params fails as it
    would in Optax (the function has no place for them)."""
    seen = {}

    def update(updates, state, *, logger=None, **extra):
        logger("seen", extra["gradient"])
        return updates, state

    t = gradchain.base.GradientTransformationExtraArgs(lambda params: {}, update)
    out, _ = t.update({"a": 1.0}, {}, logger=seen.__setitem__)
    assert out == {"a": 1.0} and seen == {"seen": {"a": 1.0}}
    with pytest.raises(TypeError, match="positional"):
        t.update({"a": 1.0}, {}, {"a": 0.0}, logger=seen.__setitem__)
