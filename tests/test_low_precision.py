"""Exact low-precision parameters: ``kahan_summation`` and ``stochastic_rounding``.

- The emitted update is the one ``apply_updates`` lands exactly (bit for bit, against a
  NumPy/ml_dtypes reference of the compensated sum), and Kahan's compensation keeps every
  step even when it cannot be landed exactly.
- Stochastic rounding lands on one of the two neighbours of p + u, unbiased.
- The target: bfloat16 linear regression near its answer, where Adam's 1e-3 steps are below
  bfloat16's spacing, so plain bfloat16 AdamW does not move; Kahan and stochastic rounding
  reach float32 AdamW's loss.
- torch-optimi's AdamW(kahan_sum=True) on the same bfloat16 params and gradients (CPU torch).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import gradchain
from gradchain import adamw, apply_updates, chain, kahan_summation, stochastic_rounding

LOW = [jnp.bfloat16, jnp.float16]


def _params(dtype, shape, rng, low=-3.0, high=3.0):
    """Values of every magnitude from 1e-3 to 1e3, both signs, in ``dtype``."""
    magnitude = 10.0 ** rng.uniform(low, high, shape)
    return jnp.asarray((rng.choice([-1.0, 1.0], shape) * magnitude).astype(np.float32)).astype(
        dtype
    )


# --- Kahan: the update apply_updates lands exactly ------------------------------------------


@pytest.mark.parametrize("dtype", LOW)
def test_kahan_update_lands_exactly_on_the_compensated_sum(dtype, rng):
    shape = (4096,)
    p = _params(dtype, shape, rng)
    # steps from 1e-6x to 1x the parameter (never cancelling it to ~0), compensations small
    u = np.asarray(p, np.float32) * 10.0 ** rng.uniform(-6, 0, shape) * rng.choice([-1, 1], shape)
    comp = (np.asarray(p, np.float32) * 1e-3 * rng.normal(size=shape)).astype(np.float32)
    opt = kahan_summation()
    state = gradchain.KahanState(compensation=jnp.asarray(comp).astype(dtype))
    d, new = jax.jit(opt.update)(jnp.asarray(u, jnp.float32), state, p)

    # the reference, in NumPy with ml_dtypes: y = u + c in float32, p' = round(p + y)
    np_dtype = np.dtype(ml_dtypes.bfloat16 if dtype == jnp.bfloat16 else np.float16)
    p32 = np.asarray(p).astype(np_dtype).astype(np.float32)
    y = u.astype(np.float32) + np.asarray(state.compensation).astype(np_dtype).astype(np.float32)
    target = (p32 + y).astype(np_dtype)
    lost = (y - (target.astype(np.float32) - p32)).astype(np_dtype)

    assert d.dtype == jnp.float32 and new.compensation.dtype == dtype
    landed = np.asarray(apply_updates(p, d)).astype(np_dtype)
    np.testing.assert_array_equal(landed.view(np.uint16), target.view(np.uint16))
    np.testing.assert_array_equal(
        np.asarray(new.compensation).astype(np_dtype).view(np.uint16), lost.view(np.uint16)
    )


# Updates in the params' own dtype whose step p' - p crosses zero and is not representable
# there (found by a search over 20,000 random pairs: 2 in bfloat16, 1 in float16).
UNLANDABLE = {
    jnp.bfloat16: ([0.353515625, -1.0078125], [-0.85546875, 3.015625]),
    jnp.float16: ([-2.837890625], [6.83984375]),
}


@pytest.mark.parametrize("dtype", LOW)
def test_kahan_keeps_a_step_it_cannot_land_exactly(dtype):
    # apply_updates lands one ulp off p' = round(p + u); the compensation holds the difference
    # from what really landed, so landed + c is still p + u, exactly.
    p, u = (jnp.asarray(v, dtype) for v in UNLANDABLE[dtype])
    opt = kahan_summation()
    d, state = opt.update(u, opt.init(p), p)
    landed = apply_updates(p, d)
    assert d.dtype == dtype
    assert np.all(landed != apply_updates(p, u.astype(jnp.float32)))
    kept = landed.astype(jnp.float32) + state.compensation.astype(jnp.float32)
    np.testing.assert_array_equal(kept, p.astype(jnp.float32) + u.astype(jnp.float32))


# The compensation is itself in the params' dtype, so each step added to it is rounded at its
# precision: with 1000 equal steps the rounding is systematic. Measured shortfall of p + c
# against the sum 0.1: bfloat16 2.8e-3 (0.36 of an ulp at 1.0), float16 3.2e-5.
KAHAN_SUM_ATOL = {jnp.bfloat16: 4e-3, jnp.float16: 1e-4}


@pytest.mark.parametrize("dtype", LOW)
def test_kahan_sums_steps_far_below_the_spacing(dtype):
    # 1000 steps of 1e-4 into params near 1 (bfloat16 spacing 2**-8 or 2**-7 there).
    p0 = jnp.asarray([0.6, 1.0, -1.3, 1.9], dtype)

    def run(opt):
        def body(carry, _):
            p, s = carry
            d, s = opt.update(jnp.full(p.shape, 1e-4, jnp.float32), s, p)
            return (apply_updates(p, d), s), None

        (p, s), _ = jax.lax.scan(body, (p0, opt.init(p0)), None, 1000)
        return p, s

    plain, _ = run(gradchain.identity())
    np.testing.assert_array_equal(plain, p0)  # every step rounded away
    p, state = run(kahan_summation())
    comp = np.asarray(state.compensation.astype(jnp.float32))
    spacing = np.spacing(np.abs(np.asarray(p, np.float32))) * (
        2.0**16 if dtype == jnp.bfloat16 else 2.0**13
    )
    assert np.all(np.abs(comp) <= spacing / 2)  # p is the nearest value to p + c
    total = np.asarray(p, np.float32) + comp
    wanted = np.asarray(p0, np.float32) + 0.1
    np.testing.assert_allclose(total, wanted, rtol=0, atol=KAHAN_SUM_ATOL[dtype])


# --- stochastic rounding: neighbours, unbiased ------------------------------------------


@pytest.mark.parametrize("dtype", LOW)
def test_stochastic_rounding_is_unbiased_between_the_two_neighbours(dtype, rng):
    n = 8192  # samples of each (p, u) pair, in one step
    values = np.asarray([1.0, -1.0, 0.7, 3.3, -250.0, 1e-3, 0.0, 5e-2], np.float32)
    p_small = jnp.asarray(values).astype(dtype)
    spacing = np.spacing(np.abs(np.asarray(p_small, np.float32))) * (
        2.0**16 if dtype == jnp.bfloat16 else 2.0**13
    )
    spacing = np.where(values == 0, 1e-6, spacing)
    u_small = (spacing * np.asarray([0.128, 0.5, 0.9, 0.01, 0.3, 0.77, 0.4, 3.25])).astype(
        np.float32
    )
    p = jnp.repeat(p_small[:, None], n, axis=1)
    u = jnp.asarray(np.repeat(u_small[:, None], n, axis=1))
    opt = stochastic_rounding(seed=3)
    d, state = jax.jit(opt.update)(u, opt.init(p), p)
    assert d.dtype == jnp.float32 and state.key.dtype == jnp.uint32
    landed = np.asarray(apply_updates(p, d).astype(jnp.float32))
    x = np.asarray(p_small, np.float32) + u_small  # what p + u is, in float32

    for row, xi in zip(landed, x):
        lo, hi = row.min(), row.max()
        assert len(np.unique(row)) <= 2 and lo <= xi <= hi  # the two neighbours of x
        gap = float(hi - lo) or 1.0
        q = (xi - lo) / gap
        sigma = gap * np.sqrt(q * (1 - q) / n)
        # E[round(p + u)] = p + u: within 5 sigma of the sample mean (measured, seeds 1-4
        # and both dtypes: max 2.3 sigma)
        assert abs(row.mean(dtype=np.float64) - xi) <= 5 * sigma + 1e-12


def test_stochastic_rounding_of_an_update_in_the_params_dtype():
    # bfloat16 update and params: p + u is formed in float32 (exact here) and rounded from there
    n = 8192
    p = jnp.ones((n,), jnp.bfloat16)
    u = jnp.full((n,), 1e-3, jnp.bfloat16)
    opt = stochastic_rounding(seed=5)
    d, _ = opt.update(u, opt.init(p), p)
    assert d.dtype == jnp.bfloat16
    landed = np.asarray(apply_updates(p, d).astype(jnp.float32))
    x = 1.0 + float(u[0])
    assert set(np.unique(landed)) == {1.0, 1.0 + 2.0**-7}
    q = (x - 1.0) / 2.0**-7
    sigma = 2.0**-7 * np.sqrt(q * (1 - q) / n)
    assert abs(landed.mean(dtype=np.float64) - x) <= 5 * sigma  # measured 0.5 sigma


def test_stochastic_rounding_passes_float32_params_through():
    p = jnp.asarray([1.0, 2.0], jnp.float32)
    u = jnp.asarray([1e-9, -3e-8], jnp.float32)
    opt = stochastic_rounding(seed=0)
    state = opt.init(p)
    d, new = opt.update(u, state, p)
    np.testing.assert_array_equal(d, u)
    assert not np.array_equal(new.key, state.key)  # the key advances all the same


def test_stochastic_rounding_draws_anew_each_step_and_repeats_by_seed():
    p = jnp.ones((256,), jnp.bfloat16)
    u = jnp.full((256,), 1e-3, jnp.float32)
    opt = stochastic_rounding(seed=7)
    step = jax.jit(opt.update)
    d1, s1 = step(u, opt.init(p), p)
    d2, _ = step(u, s1, p)
    d1_again, _ = opt.update(u, stochastic_rounding(seed=7).init(p), p)  # eager == jit
    assert not np.array_equal(d1, d2)
    np.testing.assert_array_equal(d1, d1_again)


# --- the target: bfloat16 linear regression ---------------------------------------------


def _regression(offset):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 16)).astype(np.float32)
    w = (rng.choice([-1, 1], 16) * rng.uniform(0.6, 1.9, 16)).astype(np.float32)
    y = x @ w + 0.001 * rng.normal(size=256).astype(np.float32)
    w0 = (w + offset * rng.normal(size=16)).astype(np.float32)

    def loss(p):
        return jnp.mean((x @ p.astype(jnp.float32) - y) ** 2)

    return w0, loss


def _train(opt, w0, loss, dtype, steps=200):
    """``steps`` full-batch steps; the gradient is float32 (taken at the float32 value)."""

    def body(carry, _):
        p, s = carry
        g = jax.grad(loss)(p.astype(jnp.float32))
        u, s = opt.update(g, s, p)
        return (apply_updates(p, u), s), None

    p0 = jnp.asarray(w0).astype(dtype)
    (p, _), _ = jax.jit(lambda p: jax.lax.scan(body, (p, opt.init(p)), None, steps))(p0)
    return p, float(loss(p))


# (dtype, lr, start offset, extra adamw arguments, tolerances as a fraction of the start loss)
# bfloat16: spacing 2**-8..2**-7 on |w| in [0.6, 1.9], Adam's steps 1e-3: below half of it.
# float16: spacing 2**-11..2**-10 there, so steps of 1e-4; float32 moments, because Adam's
# nu = g**2 underflows float16 near the answer (measured: steps blow up, loss 8x the start).
CASES = {
    "bfloat16": (jnp.bfloat16, 1e-3, 0.03, {}, 0.05, 0.10),
    "float16": (
        jnp.float16,
        1e-4,
        0.003,
        {"mu_dtype": jnp.float32, "nu_dtype": jnp.float32},
        0.05,
        0.10,
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_low_precision_adamw_reaches_float32_loss(case):
    dtype, lr, offset, kwargs, kahan_tol, sr_tol = CASES[case]
    w0, loss = _regression(offset)
    start = float(loss(jnp.asarray(w0).astype(dtype)))
    _, float32_loss = _train(adamw(lr, **kwargs), w0, loss, jnp.float32)
    plain, plain_loss = _train(adamw(lr, **kwargs), w0, loss, dtype)
    _, kahan_loss = _train(chain(adamw(lr, **kwargs), kahan_summation()), w0, loss, dtype)
    _, sr_loss = _train(chain(adamw(lr, **kwargs), stochastic_rounding(seed=0)), w0, loss, dtype)

    np.testing.assert_array_equal(plain, jnp.asarray(w0).astype(dtype))  # never moved
    assert plain_loss == start
    # measured, 200 steps, as |loss - float32 AdamW's loss| / start loss:
    #   bfloat16: start 1.13e-2, float32 9.4e-7; Kahan 2.16e-4 (1.90%); stochastic rounding
    #             1.96e-4 (1.72%; seeds 0-4: 1.2% to 3.9%). The answer rounded to bfloat16
    #             has loss 6.2e-5 (0.55%): what bfloat16 can hold.
    #   float16:  start 1.16e-4, float32 9.4e-7; Kahan 3.0e-6 (1.80%); stochastic rounding
    #             4.2e-6 (2.80%; seeds 0-4: 2.1% to 3.9%). Rounded answer: 2.1e-6 (1.0%).
    assert abs(kahan_loss - float32_loss) <= kahan_tol * start
    assert abs(sr_loss - float32_loss) <= sr_tol * start
    assert float32_loss < 0.02 * start  # the float32 run converged (measured <= 0.81%)


# --- torch-optimi's Kahan summation ------------------------------------------------------


def test_kahan_adamw_matches_torch_optimi():
    # 200 AdamW steps on 256 bfloat16 params in [0.5, 2), fixed bfloat16 gradients 0.3 + N(0, 1)
    # (drift ~0.09 = 12 ulps; plain bfloat16 moves 0.002). Weight decay 0: optimi multiplies
    # the params by (1 - lr * wd) outside its compensation.
    torch = pytest.importorskip("torch")
    optimi = pytest.importorskip("optimi")
    rng = np.random.default_rng(0)
    k, steps, lr = 256, 200, 1e-3
    p0 = torch.tensor(rng.choice([-1, 1], k) * rng.uniform(0.5, 2.0, k)).to(torch.bfloat16)
    grads = torch.tensor(0.3 + rng.normal(size=(steps, k))).to(torch.bfloat16)

    param = torch.nn.Parameter(p0.clone())
    theirs = optimi.AdamW([param], lr=lr, eps=1e-8, weight_decay=0.0, kahan_sum=True, foreach=False)
    for t in range(steps):
        param.grad = grads[t].clone()
        theirs.step()
    their_p = param.detach().float().numpy()
    their_total = their_p + theirs.state[param]["kahan_comp"].float().numpy()

    opt = chain(adamw(lr, eps=1e-8, weight_decay=0.0), kahan_summation())
    g = jnp.asarray(grads.float().numpy()).astype(jnp.bfloat16)

    def body(carry, g_t):
        p, s = carry
        u, s = opt.update(g_t, s, p)
        return (apply_updates(p, u), s), None

    p = jnp.asarray(p0.float().numpy()).astype(jnp.bfloat16)
    (p, state), _ = jax.jit(lambda p: jax.lax.scan(body, (p, opt.init(p)), g))(p)
    our_p = np.asarray(p.astype(jnp.float32))
    our_total = our_p + np.asarray(state[1].compensation.astype(jnp.float32))

    # float64 AdamW on the same gradients: the sum both are approximating
    exact = p0.double().numpy()
    m, v = np.zeros(k), np.zeros(k)
    for t in range(1, steps + 1):
        g_t = grads[t - 1].double().numpy()
        m, v = 0.9 * m + 0.1 * g_t, 0.999 * v + 0.001 * g_t**2
        exact = exact - lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)

    ulp = np.spacing(np.abs(our_p)) * 2.0**16  # bfloat16's spacing at each parameter
    # The params: at most one bfloat16 ulp apart (measured: 1 ulp on 29 of 256, else equal):
    # where p + c sits near a rounding midpoint, the two compensations round it apart.
    assert np.all(np.abs(our_p - their_p) <= ulp)
    # p + compensation: measured max 2.66e-3 apart; ours 5.2e-4 from float64 AdamW, optimi's
    # 2.53e-3. optimi rounds its bfloat16 compensation twice a step (adding the step to it,
    # then the error back); ours once (y = u + c is float32, only the new c is rounded).
    np.testing.assert_allclose(our_total, their_total, rtol=0, atol=4e-3)
    np.testing.assert_allclose(our_total, exact, rtol=0, atol=1e-3)
    assert np.abs(their_total - exact).max() >= np.abs(our_total - exact).max()


# --- memory, sharding, bad input ---------------------------------------------------------


def test_memory_report_shows_the_compensation_slot():
    params = {
        "w": jax.ShapeDtypeStruct((64, 32), jnp.bfloat16),
        "b": jax.ShapeDtypeStruct((32,), jnp.bfloat16),
    }
    report = gradchain.memory_report(chain(adamw(1e-3), kahan_summation()), params)
    (row,) = [r for r in report.rows if r.slot == "compensation"]
    assert row.transform == "kahan_summation" and row.kind == "same shape"
    assert row.dtype == "bfloat16" and row.bytes == report.param_bytes and row.multiple == 1.0
    assert report.params_multiple == 3.0  # mu, nu, compensation

    sr = gradchain.memory_report(chain(adamw(1e-3), stochastic_rounding(seed=0)), params)
    (key,) = [r for r in sr.rows if r.slot == "key"]
    assert key.bytes == 8 and not key.per_parameter and sr.params_multiple == 2.0


def test_state_shardings_place_the_compensation_with_its_parameter():
    mesh = jax.make_mesh((1, 1), ("data", "model"))
    w_sharding = NamedSharding(mesh, P(None, "model"))
    params = {
        "w": jax.ShapeDtypeStruct((8, 4), jnp.bfloat16, sharding=w_sharding),
        "b": jax.ShapeDtypeStruct((4,), jnp.bfloat16, sharding=NamedSharding(mesh, P())),
    }
    shardings = gradchain.state_shardings(chain(adamw(1e-3), kahan_summation()), params)
    assert shardings[1].compensation["w"] == w_sharding
    assert shardings[1].compensation["b"] == params["b"].sharding
    sr = gradchain.state_shardings(chain(adamw(1e-3), stochastic_rounding(seed=0)), params)
    assert sr[1].key.spec == P()  # replicated


@pytest.mark.parametrize("make", [kahan_summation, lambda: stochastic_rounding(seed=0)])
def test_refuses_an_update_without_params(make):
    opt = make()
    p = jnp.ones((3,), jnp.bfloat16)
    with pytest.raises(gradchain.GradchainError, match="needs the params"):
        opt.update(jnp.ones((3,), jnp.float32), opt.init(p))


@pytest.mark.parametrize("seed", [1.5, "0", True, -1])
def test_refuses_a_seed_that_is_not_an_integer(seed):
    with pytest.raises(gradchain.GradchainError, match="seed"):
        stochastic_rounding(seed=seed)
