"""Parameter-free optimizers (issue 16, optax.contrib): prodigy, dadapt_adamw, mechanize, cocob.

Against Optax's functions of the same name (120 steps, float32 and float64), and against the
authors' own torch code (prodigyopt, dadaptation) in float64. Tolerances measured once and
frozen, the measured number beside each.
"""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion

STEPS = 120
oc = optax.contrib


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


SCALES = {"w": np.linspace(0.5, 8.0, 12).reshape(4, 3), "b": np.asarray([1.0, 2.0, 4.0])}
TARGET = {"w": np.linspace(-1.0, 1.0, 12).reshape(4, 3), "b": np.asarray([0.5, -0.5, 0.25])}
START = {"w": np.full((4, 3), 2.0), "b": np.full((3,), -2.0)}


def quadratic(dtype):
    """A two-leaf quadratic with curvatures 0.5..8 and its minimum away from the start."""
    scales = {k: jnp.asarray(v, dtype) for k, v in SCALES.items()}
    target = {k: jnp.asarray(v, dtype) for k, v in TARGET.items()}

    def f(p):
        return sum(0.5 * jnp.sum(scales[k] * (p[k] - target[k]) ** 2) for k in p) + 0.1

    return f, {k: jnp.asarray(v, dtype) for k, v in START.items()}


def descend(lib, opt, f, params, steps=STEPS):
    """``steps`` steps in one compiled scan; the params at the end and the losses on the way."""

    def body(carry, _):
        p, s = carry
        value, grad = jax.value_and_grad(f)(p)
        u, s = opt.update(grad, s, p)
        return (lib.apply_updates(p, u), s), value

    (p, _), values = jax.lax.scan(body, (params, opt.init(params)), None, length=steps)
    return p, values


# --- against Optax ------------------------------------------------------------------------

# name: (gradchain's, Optax's). Bounds on max |params difference| after 120 steps (params of
# size ~1): float32 1e-6, float64 1e-14, from the largest measured, 4.2e-7 and 8.9e-16 (per case
# in MEASURED). The ones measured 0.0 get the same bounds: XLA's fusion choices (FMA or not)
# may move a float32 result by an ulp on another CPU.
PAIRS = {
    "prodigy": (lambda: gradchain.prodigy(), lambda: oc.prodigy()),
    "prodigy-tuned": (  # every keyword away from its default
        lambda: gradchain.prodigy(0.5, (0.8, 0.99), 0.95, 1e-6, 1e-5, 2.0, 0.01),
        lambda: oc.prodigy(0.5, (0.8, 0.99), 0.95, 1e-6, 1e-5, 2.0, 0.01),
    ),
    "prodigy-safeguard": (
        lambda: gradchain.prodigy(safeguard_warmup=True),
        lambda: oc.prodigy(safeguard_warmup=True),
    ),
    "prodigy-optax-schedule": (  # never 0 (at 0 Optax's turns NaN: below)
        lambda: gradchain.prodigy(optax.cosine_decay_schedule(1.0, STEPS, alpha=0.1)),
        lambda: oc.prodigy(optax.cosine_decay_schedule(1.0, STEPS, alpha=0.1)),
    ),
    "dadapt_adamw": (lambda: gradchain.dadapt_adamw(), lambda: oc.dadapt_adamw()),
    "dadapt_adamw-tuned": (
        lambda: gradchain.dadapt_adamw(0.5, (0.8, 0.99), 1e-6, 1e-5, 0.01),
        lambda: oc.dadapt_adamw(0.5, (0.8, 0.99), 1e-6, 1e-5, 0.01),
    ),
    "cocob": (lambda: gradchain.cocob(), lambda: oc.cocob()),
    "cocob-tuned": (
        lambda: gradchain.cocob(0.5, 10.0, 1e-6, 0.01, mask={"w": True, "b": False}),
        lambda: oc.cocob(0.5, 10.0, 1e-6, 0.01, mask={"w": True, "b": False}),
    ),
    # Mechanic over SGD: both inner optimizers give the same steps, so this is Mechanic alone
    "mechanize-sgd": (
        lambda: gradchain.mechanize(gradchain.sgd(1.0)),
        lambda: oc.mechanize(optax.sgd(1.0)),
    ),
    # over Optax's own Adam (a foreign transform inside gradchain's wrapper), every keyword
    "mechanize-optax-adam": (
        lambda: gradchain.mechanize(optax.adam(1.0), 0.05, 1e-7, 1e-5, 4),
        lambda: oc.mechanize(optax.adam(1.0), 0.05, 1e-7, 1e-5, 4),
    ),
}
MEASURED = {  # name: (float32, float64)
    "prodigy": (2.1e-7, 2.2e-16),
    "prodigy-tuned": (6.0e-8, 1.1e-16),
    "prodigy-safeguard": (4.2e-7, 8.9e-16),
    "prodigy-optax-schedule": (6.0e-8, 1.1e-16),
    "dadapt_adamw": (6.0e-8, 2.2e-16),
    "dadapt_adamw-tuned": (3.0e-8, 5.6e-17),
    "cocob": (6.0e-8, 1.1e-16),
    "cocob-tuned": (0.0, 0.0),
    "mechanize-sgd": (0.0, 0.0),
    "mechanize-optax-adam": (0.0, 0.0),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_equals_optax(name, dtype):
    ours, theirs = PAIRS[name]
    f, p0 = quadratic(dtype)
    foreign = reference_promotion() if "optax" in name else contextlib.nullcontext()
    with foreign:  # Optax's code inside needs standard promotion; ours runs strict
        got = jax.jit(lambda p: descend(gradchain, ours(), f, p))(p0)
    with reference_promotion():
        want = jax.jit(lambda p: descend(optax, theirs(), f, p))(p0)
    assert max_diff(got[0], want[0]) <= (1e-6 if dtype == jnp.float32 else 1e-14)
    assert float(got[1][-1]) < 0.05 * float(got[1][0])  # it did descend: not a vacuous match


def test_mechanize_over_gradchain_adam_equals_optax_in_float64(x64):
    # Over Adam at lr 1 the run is chaotic near the minimum: in float32 one ulp of difference
    # between the two libraries' Adam (step 23) grows to 0.3 by step 120. Over the same Adam
    # (above) Mechanic is bit for bit; in float64 the whole chain is too.
    f, p0 = quadratic(jnp.float64)
    got = jax.jit(lambda p: descend(gradchain, gradchain.mechanize(gradchain.adam(1.0)), f, p))(p0)
    with reference_promotion():
        want = jax.jit(lambda p: descend(optax, oc.mechanize(optax.adam(1.0)), f, p))(p0)
    assert max_diff(got[0], want[0]) <= 1e-14  # measured 0.0


# --- against the authors' code (torch, float64) --------------------------------------------


def torch_run(make, steps=STEPS, lr_at=None):
    """The authors' optimizer on the same quadratic, in float64; the params after ``steps``."""
    torch = pytest.importorskip("torch")
    keys = sorted(START)  # jax's order for a dict: b, w
    params = [torch.tensor(START[k], dtype=torch.float64, requires_grad=True) for k in keys]
    scales = [torch.tensor(SCALES[k], dtype=torch.float64) for k in keys]
    target = [torch.tensor(TARGET[k], dtype=torch.float64) for k in keys]
    opt = make(params)
    for t in range(steps):
        if lr_at is not None:
            opt.param_groups[0]["lr"] = lr_at(t)
        opt.zero_grad()
        sum(0.5 * (s * (p - c) ** 2).sum() for p, s, c in zip(params, scales, target)).backward()
        opt.step()
    return {k: p.detach().numpy() for k, p in zip(keys, params)}


AUTHORS = {  # name: (gradchain's, the authors' configured alike, bound); measured beside
    "prodigy": (
        lambda: gradchain.prodigy(),
        lambda ps: pytest.importorskip("prodigyopt").Prodigy(ps, use_bias_correction=True),
        1e-13,  # 2.2e-16
    ),
    "prodigy-tuned": (
        lambda: gradchain.prodigy(0.5, (0.8, 0.99), 0.95, 1e-6, 1e-5, 2.0, 0.01, True),
        lambda ps: pytest.importorskip("prodigyopt").Prodigy(
            ps,
            0.5,
            (0.8, 0.99),
            0.95,
            1e-6,
            0.01,
            decouple=True,
            use_bias_correction=True,
            safeguard_warmup=True,
            d0=1e-5,
            d_coef=2.0,
        ),
        1e-13,  # 4.3e-15
    ),
    "dadapt_adamw": (
        lambda: gradchain.dadapt_adamw(),
        lambda ps: pytest.importorskip("dadaptation").DAdaptAdam(
            ps, decouple=True, use_bias_correction=True
        ),
        1e-13,  # 4.4e-16
    ),
    "dadapt_adamw-tuned": (
        lambda: gradchain.dadapt_adamw(0.5, (0.8, 0.99), 1e-6, 1e-5, 0.01),
        lambda ps: pytest.importorskip("dadaptation").DAdaptAdam(
            ps, 0.5, (0.8, 0.99), 1e-6, 0.01, decouple=True, use_bias_correction=True, d0=1e-5
        ),
        1e-13,  # 1.1e-16
    ),
}


@pytest.mark.parametrize("name", sorted(AUTHORS))
def test_equals_the_authors_code_in_float64(name, x64):
    ours, theirs, tol = AUTHORS[name]
    f, p0 = quadratic(jnp.float64)
    got, _ = jax.jit(lambda p: descend(gradchain, ours(), f, p))(p0)
    want = torch_run(theirs)
    assert max(float(np.max(np.abs(np.asarray(got[k]) - want[k]))) for k in want) <= tol


# --- where we differ on purpose: a zero denominator ----------------------------------------


@pytest.mark.parametrize("name", ["prodigy", "dadapt_adamw"])
def test_zero_gradients_keep_d_where_optax_turns_nan(name):
    params = {"w": jnp.ones(3, jnp.float32)}
    zeros = {"w": jnp.zeros(3, jnp.float32)}
    opt = getattr(gradchain, name)()
    state = opt.init(params)
    for _ in range(2):
        u, state = opt.update(zeros, state, params)
        np.testing.assert_array_equal(u["w"], 0.0)  # params unchanged, as the authors' step
    assert float(state.inner[0].d) == float(
        np.float32(1e-6)
    )  # D kept (hand-worked: 0 / 0 is no estimate)
    ref = getattr(oc, name)()
    _, ref_state = ref.update(zeros, ref.init(params), params)
    assert np.isnan(float(ref_state.estim_lr))  # Optax's 0 / 0


def test_prodigy_warmup_from_zero_is_finite_and_near_the_authors(x64):
    # Optax's recommended use (a schedule from 0) gives NaN from the first step; we keep D
    # while lr is 0, as the authors' code. The authors' code also skips the moments and the
    # step count while lr is 0 (Optax's form, ours, updates them): measured 0.023 apart
    # after 120 steps with 10 warmup steps, both converged.
    sched = optax.linear_schedule(0.0, 1.0, 10)
    f, p0 = quadratic(jnp.float64)
    with reference_promotion():  # Optax's schedule inside both
        got, values = jax.jit(lambda p: descend(gradchain, gradchain.prodigy(sched), f, p))(p0)
        nan, _ = jax.jit(lambda p: descend(optax, oc.prodigy(sched), f, p))(p0)
    Prodigy = pytest.importorskip("prodigyopt").Prodigy
    want = torch_run(
        lambda ps: Prodigy(ps, use_bias_correction=True), lr_at=lambda t: float(sched(t))
    )
    assert all(np.isnan(np.asarray(x)).all() for x in jax.tree.leaves(nan))
    assert float(values[-1]) < 0.05 * float(values[0])
    diff = max(float(np.max(np.abs(np.asarray(got[k]) - want[k]))) for k in want)
    assert diff <= 0.05  # measured 0.023 (0.017 with 30 warmup steps)


# --- live hyperparameters, wrappers, refusals ---------------------------------------------


def test_live_hyperparameters_by_optax_names():
    params = {"w": jnp.ones(3, jnp.float32)}
    state = gradchain.prodigy(beta3=0.9).init(params)
    assert sorted(gradchain.get_hyperparams(state)) == [
        "beta3",
        "eps",
        "estim_lr0",
        "estim_lr_coef",
        "learning_rate",
        "weight_decay",
    ]
    with pytest.raises(ValueError, match="beta3 must be in"):
        gradchain.set_hyperparam(state, "beta3", 1.5)
    with pytest.raises(ValueError, match=r"betas\[1\] must be in \[0, 1\)"):
        gradchain.dadapt_adamw(betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="betas must be a pair"):
        gradchain.prodigy(betas=0.9)
    state = gradchain.mechanize(gradchain.sgd(1.0)).init(params)
    hyper = gradchain.get_hyperparams(state)
    assert {"weight_decay", "eps", "s_init"} <= set(hyper)  # num_betas: a shape, fixed


def test_mechanize_refuses_what_is_not_an_optimizer():
    with pytest.raises(ValueError, match="chain\\(\\) takes|init and update"):
        gradchain.mechanize(0.01)
    with pytest.raises(ValueError, match="num_betas must be an integer >= 1"):
        gradchain.mechanize(gradchain.sgd(1.0), num_betas=0)


@pytest.mark.parametrize("name", ["scale_by_prodigy", "scale_by_dadapt_adam", "scale_by_cocob"])
def test_transforms_need_the_params(name):
    opt = getattr(gradchain, name)()
    g = {"w": jnp.ones(3, jnp.float32)}
    with pytest.raises(ValueError, match="needs the params"):
        opt.update(g, opt.init(g))


def test_memory_is_as_documented():
    params = {"w": jnp.ones((4, 3), jnp.float32), "b": jnp.ones(3, jnp.float32)}
    n = 15 * 4  # bytes of one copy of the params
    for opt, copies in [
        (gradchain.prodigy(), 4),
        (gradchain.dadapt_adamw(), 3),
        (gradchain.cocob(), 5),
        (gradchain.mechanize(gradchain.sgd(1.0)), 1),
    ]:
        report = gradchain.memory_report(opt, params)
        assert report.per_parameter_bytes == copies * n, (opt, report)
