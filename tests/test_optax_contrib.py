"""optax.contrib's wrappers and optimizers (issue 16) against Optax's functions of the same
name, in float32 and float64, 120 steps in one compiled scan each; tolerances measured once
and frozen, the measured number beside each. Schedule-free also against the authors' package."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion

STEPS = 120


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """float64 runs under x64 (restored afterwards)."""
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", request.param == "float64")
    yield jnp.dtype(request.param)
    jax.config.update("jax_enable_x64", before)


def max_diff(a, b):
    return max(
        float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def problem(dtype):
    """A quadratic with scales 0.5..4 plus a quartic leaf: curvature that changes."""
    scales = jnp.linspace(0.5, 4.0, 6, dtype=dtype).reshape(2, 3)

    def f(p):
        return 0.5 * jnp.sum(scales * (p["w"] - 1.0) ** 2) + jnp.sum(p["b"] ** 4) + 0.1

    return f, {"w": jnp.full((2, 3), 2.0, dtype), "b": jnp.asarray([1.0, -0.5, 0.25], dtype)}


def descend(lib, opt, f, params, extra=lambda f, value: {}):
    """STEPS steps of ``opt`` on ``f`` in one scan; ``extra`` gives the update's extra
    arguments from the objective and its value. Returns the params and the values."""

    def body(carry, _):
        p, s = carry
        value, grad = jax.value_and_grad(f)(p)
        u, s = opt.update(grad, s, p, **extra(f, value))
        return (lib.apply_updates(p, u), s), value

    (p, s), values = jax.lax.scan(body, (params, opt.init(params)), None, length=STEPS)
    return p, values, s


def compare(ours, theirs, dtype, extra=lambda f, value: {}):
    f, p0 = problem(dtype)
    got = jax.jit(lambda p: descend(gradchain, ours(), f, p, extra))(p0)
    with reference_promotion(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = jax.jit(lambda p: descend(optax, theirs(), f, p, extra))(p0)
    assert float(got[1][-1]) < 0.5 * float(got[1][0])  # it did descend: not vacuous
    return max_diff(got[0], want[0]), got, want


def tol(dtype, f32, f64):
    return f32 if dtype == jnp.float32 else f64


# --- SAM ---------------------------------------------------------------------------------


def sam_pair(lib, sync_period, reset_state):
    adversary = lib.chain(
        gradchain.normalize() if lib is gradchain else optax.contrib.normalize(), lib.sgd(0.05)
    )
    wrap = gradchain.sam if lib is gradchain else optax.contrib.sam
    return wrap(lib.adam(0.05), adversary, sync_period=sync_period, reset_state=reset_state)


@pytest.mark.parametrize("sync_period, reset_state", [(2, True), (3, False)])
def test_sam_equals_optax(sync_period, reset_state, dtype):
    diff, _, _ = compare(
        lambda: sam_pair(gradchain, sync_period, reset_state),
        lambda: sam_pair(optax, sync_period, reset_state),
        dtype,
    )
    # measured: float32 2.3e-6 (2, True), 2.9e-6 (3, False); float64 0.0 and 1.4e-17
    assert diff <= tol(dtype, 1e-5, 1e-14)


def test_sam_opaque_mode_equals_optax(x64):
    f, p0 = problem(jnp.float64)

    def extra(f, value):
        return {"grad_fn": lambda p, i: jax.grad(f)(p)}

    diff, got, _ = compare(
        lambda: gradchain.sam(
            gradchain.sgd(0.05),
            gradchain.chain(gradchain.normalize(), gradchain.sgd(0.05)),
            3,
            opaque_mode=True,
        ),
        lambda: optax.contrib.sam(
            optax.sgd(0.05),
            optax.chain(optax.contrib.normalize(), optax.sgd(0.05)),
            3,
            opaque_mode=True,
        ),
        jnp.float64,
        extra,
    )
    assert diff <= 1e-14  # measured 0.0
    assert got[2].cache is None
    with pytest.raises(gradchain.GradchainError, match="grad_fn"):
        opt = gradchain.sam(gradchain.sgd(0.1), gradchain.sgd(0.1), opaque_mode=True)
        opt.update(p0, opt.init(p0), p0)


def test_sam_with_sync_period_one_is_its_outer_optimizer_unlike_optax(x64):
    # Optax's cache is written after it is read: with sync_period=1 every step restarts from
    # the previous call's params. Here it is the outer optimizer (measured 6.9e-18 apart).
    f, p0 = problem(jnp.float64)
    got = descend(gradchain, gradchain.sam(gradchain.adam(0.05), gradchain.sgd(0.1), 1), f, p0)
    plain = descend(gradchain, gradchain.adam(0.05), f, p0)
    assert max_diff(got[0], plain[0]) <= 1e-15
    with reference_promotion():
        ref = descend(optax, optax.contrib.sam(optax.adam(0.05), optax.sgd(0.1), 1), f, p0)
    assert max_diff(got[0], ref[0]) > 0.05  # measured 0.15: Optax's is not adam's path


def test_sam_declares_both_optimizers_and_refuses_bad_arguments():
    opt = gradchain.sam(gradchain.adam(0.1), gradchain.sgd(0.1))
    paths = [s.path for s in gradchain.slots(opt.init({"w": jnp.ones(3)}))]
    assert "mu" in paths and "cache" in paths and "steps_since_sync" in paths
    assert [c.route for c in opt.children] == [("opt_state",), ("adv_state",)]
    with pytest.raises(ValueError, match="sync_period"):
        gradchain.sam(gradchain.sgd(0.1), gradchain.sgd(0.1), sync_period=0)
    with pytest.raises(gradchain.GradchainError, match="needs the params"):
        opt.update({"w": jnp.ones(3)}, opt.init({"w": jnp.ones(3)}))


# --- lookahead ---------------------------------------------------------------------------


def descend_lookahead(lib, opt, f, params):
    def body(carry, _):
        p, s = carry
        value, grad = jax.value_and_grad(f)(p.fast)
        u, s = opt.update(grad, s, p)
        return (lib.apply_updates(p, u), s), f(p.slow)

    start = lib.LookaheadParams.init_synced(params)
    return jax.lax.scan(body, (start, opt.init(start)), None, length=STEPS)


@pytest.mark.parametrize("reset_state", [False, True])
def test_lookahead_equals_optax(reset_state, dtype):
    f, p0 = problem(dtype)
    got = jax.jit(
        lambda p: descend_lookahead(
            gradchain, gradchain.lookahead(gradchain.adam(0.05), 5, 0.5, reset_state), f, p
        )
    )(p0)
    with reference_promotion():
        want = jax.jit(
            lambda p: descend_lookahead(
                optax, optax.lookahead(optax.adam(0.05), 5, 0.5, reset_state), f, p
            )
        )(p0)
    # measured: float32 1.1e-6 (False), 1.3e-7 (True); float64 5.6e-17 and 2.2e-16
    assert max_diff(got[0][0], want[0][0]) <= tol(dtype, 5e-6, 1e-14)
    assert float(got[1][-1]) < 0.1 * float(got[1][0])


def test_lookahead_needs_both_weights_and_takes_optax_params():
    opt = gradchain.lookahead(gradchain.sgd(0.1), 2, 0.5)
    p = {"w": jnp.ones(3)}
    state = opt.init(p)  # the fast params alone, as Optax allows
    with pytest.raises(gradchain.GradchainError, match="LookaheadParams"):
        opt.update(p, state, p)
    u, _ = opt.update(p, state, optax.LookaheadParams.init_synced(p))  # Optax's pair works
    assert isinstance(u, gradchain.LookaheadParams)
    with pytest.raises(ValueError, match="sync_period"):
        gradchain.lookahead(gradchain.sgd(0.1), 0, 0.5)
    with pytest.raises(ValueError, match="slow_step_size"):
        gradchain.lookahead(gradchain.sgd(0.1), 2, 1.5)


# --- MADGRAD and Sophia --------------------------------------------------------------------


def test_madgrad_equals_optax(dtype):
    diff, _, _ = compare(
        lambda: gradchain.madgrad(0.05, weight_decay=0.01),
        lambda: optax.contrib.madgrad(0.05, weight_decay=0.01),
        dtype,
    )
    # measured: float32 1.2e-7; float64 8.9e-10 -- on purpose: Optax's lambda_k = (lr + eps) *
    # sqrt(k + 1) is float32 even under x64 (sqrt of its int32 count), ours is float64
    assert diff <= tol(dtype, 5e-7, 5e-9)


def with_objective(f, value):
    return {"obj_fn": f}


@pytest.mark.parametrize("kwargs", [{}, {"update_interval": 3, "gamma": 0.05, "weight_decay": 0.0}])
def test_sophia_equals_optax(kwargs, dtype):
    diff, _, _ = compare(
        lambda: gradchain.sophia(0.05, **kwargs),
        lambda: optax.contrib.sophia(0.05, **kwargs),
        dtype,
        with_objective,
    )
    # measured: float32 3.2e-6 (defaults), 1.8e-6 (interval 3); float64 0.0 and 0.0
    assert diff <= tol(dtype, 1e-5, 1e-14)


def test_sophia_needs_the_objective_and_keeps_optax_keywords():
    opt = gradchain.sophia(0.1)
    p = {"w": jnp.ones(3)}
    with pytest.raises(gradchain.GradchainError, match="obj_fn"):
        opt.update(p, opt.init(p), p)
    mask = {"w": False}
    opt = gradchain.sophia(0.1, weight_decay=0.5, weight_decay_mask=mask, clip_threshold=None)
    u, _ = opt.update(p, opt.init(p), p, obj_fn=lambda q: jnp.sum(q["w"] ** 2))
    assert float(jnp.max(jnp.abs(u["w"]))) > 1.0  # no clip, no decay: 0.1 * 1 / eps-ish
    hp = gradchain.get_hyperparams(opt.init(p))
    assert {"b1", "b2", "gamma", "weight_decay", "learning_rate"} <= set(hp)


# --- schedule-free ----------------------------------------------------------------------


def schedule_free_pair(lib, schedule):
    # one schedule function for both: Optax's schedules compute in float32 even under x64
    lr = optax.warmup_constant_schedule(0.0, 0.05, 10) if schedule else 0.05
    wrap = gradchain.schedule_free if lib is gradchain else optax.contrib.schedule_free
    return wrap(lib.adam(lr, b1=0.0), lr, b1=0.9)


@pytest.mark.parametrize("schedule", [False, True])
def test_schedule_free_equals_optax(schedule, dtype):
    diff, got, want = compare(
        lambda: schedule_free_pair(gradchain, schedule),
        lambda: schedule_free_pair(optax, schedule),
        dtype,
    )
    # measured: float32 2.0e-6 (constant), 1.5e-6 (warmup); float64 0.0 and 0.0
    assert diff <= tol(dtype, 1e-5, 1e-14)
    # evaluation params: ours read the wrapper's b1 (not adam's b1=0) from the state
    x = gradchain.schedule_free_eval_params(got[2], got[0])
    x_ref = optax.contrib.schedule_free_eval_params(want[2], want[0])
    assert max_diff(x, x_ref) <= tol(dtype, 1e-5, 1e-14)  # measured 1.7e-6 / 1.2e-6, 0.0


def test_schedule_free_equals_the_authors_wrapper(x64):
    """``schedulefree.ScheduleFreeWrapper`` around torch's SGD and Adagrad, float64. (Its swap
    of params and z breaks torch's Adam, whose state would then look initialized.)"""
    torch = pytest.importorskip("torch")
    schedulefree = pytest.importorskip("schedulefree")
    f, p0 = problem(jnp.float64)
    for name, ours, base in [
        ("sgd", gradchain.sgd(0.05), lambda ps: torch.optim.SGD(ps, lr=0.05)),
        (
            "adagrad",
            gradchain.adagrad(0.05, initial_accumulator_value=0.0, eps=0.0),
            lambda ps: torch.optim.Adagrad(ps, lr=0.05, eps=0.0),
        ),
    ]:
        got = descend(gradchain, gradchain.schedule_free(ours, 0.05, b1=0.9), f, p0)
        params = {k: torch.tensor(np.asarray(v), requires_grad=True) for k, v in p0.items()}
        opt = schedulefree.ScheduleFreeWrapper(base(list(params.values())), momentum=0.9)
        opt.train()
        for _ in range(STEPS):
            opt.zero_grad()
            g = jax.grad(f)({k: jnp.asarray(v.detach().numpy()) for k, v in params.items()})
            for k, v in params.items():
                v.grad = torch.tensor(np.asarray(g[k]))
            opt.step()
        want = {k: jnp.asarray(v.detach().numpy()) for k, v in params.items()}
        # measured: sgd 6.7e-16, adagrad 3.3e-16
        assert max_diff(got[0], want) <= 1e-13, name


# --- reduce on plateau -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(patience=3, cooldown=2, factor=0.5, rtol=1e-2),
        dict(patience=2, accumulation_size=3, atol=1e-3, rtol=0.0, min_scale=0.05),
    ],
)
def test_reduce_on_plateau_equals_optax(kwargs, dtype):
    """SGD whose rate is too large (it bounces), so the value plateaus and the scale drops."""

    def build(lib, contrib):
        return lib.chain(lib.sgd(0.49), contrib.reduce_on_plateau(**kwargs))

    def with_value(f, value):
        return {"value": value}

    diff, got, want = compare(
        lambda: build(gradchain, gradchain), lambda: build(optax, optax.contrib), dtype, with_value
    )
    assert diff <= tol(dtype, 1e-6, 1e-14)  # measured 0.0 and 0.0
    ours, theirs = got[2][-1], want[2][-1]
    assert float(ours.scale) == float(theirs.scale) < 1.0  # it did reduce
    for field in ("plateau_count", "cooldown_count", "count"):
        assert int(getattr(ours, field)) == int(getattr(theirs, field))


def test_reduce_on_plateau_needs_the_value_and_refuses_bad_arguments():
    opt = gradchain.reduce_on_plateau()
    p = {"w": jnp.ones(2)}
    with pytest.raises(gradchain.GradchainError, match="value=loss"):
        opt.update(p, opt.init(p), p)
    for kwargs, name in [
        (dict(factor=1.0), "factor"),
        (dict(rtol=0.0, atol=0.0), "rtol and atol"),
        (dict(patience=-1), "patience"),
        (dict(accumulation_size=0), "accumulation_size"),
    ]:
        with pytest.raises(ValueError, match=name):
            gradchain.reduce_on_plateau(**kwargs)
