"""Schedules against hand-written closed forms at chosen steps, against optax.schedules over
a range of steps, in float32 and float64; jit-safety; construction-time validation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion

# (gradchain schedule, optax schedule, {step: value by hand}).
CASES = {
    "constant": (
        lambda: gradchain.constant_schedule(0.3),
        lambda: optax.constant_schedule(0.3),
        {0: 0.3, 7: 0.3, 10**6: 0.3},
    ),
    "linear": (
        lambda: gradchain.linear_schedule(1.0, 0.2, transition_steps=8, transition_begin=4),
        lambda: optax.linear_schedule(1.0, 0.2, transition_steps=8, transition_begin=4),
        {0: 1.0, 4: 1.0, 6: 1.0 - 0.8 * 2 / 8, 12: 0.2, 50: 0.2},
    ),
    "cosine": (
        lambda: gradchain.cosine_decay_schedule(2.0, decay_steps=10),
        lambda: optax.cosine_decay_schedule(2.0, decay_steps=10),
        {0: 2.0, 5: 1.0, 3: (1 + math.cos(math.pi * 0.3)), 10: 0.0, 30: 0.0},
    ),
    "cosine_alpha_exponent": (
        lambda: gradchain.cosine_decay_schedule(2.0, 10, alpha=0.1, exponent=2.0),
        lambda: optax.cosine_decay_schedule(2.0, 10, alpha=0.1, exponent=2.0),
        {0: 2.0, 5: 0.2 + 1.8 * 0.25, 10: 0.2, 11: 0.2},
    ),
    "exponential": (
        lambda: gradchain.exponential_decay(1.0, transition_steps=4, decay_rate=0.5),
        lambda: optax.exponential_decay(1.0, transition_steps=4, decay_rate=0.5),
        {0: 1.0, 2: 0.5**0.5, 4: 0.5, 10: 0.5**2.5},
    ),
    "exponential_staircase_begin_end": (
        lambda: gradchain.exponential_decay(
            1.0, 4, 0.5, transition_begin=3, staircase=True, end_value=0.2
        ),
        lambda: optax.exponential_decay(
            1.0, 4, 0.5, transition_begin=3, staircase=True, end_value=0.2
        ),
        {0: 1.0, 3: 1.0, 6: 1.0, 7: 0.5, 11: 0.25, 15: 0.2, 100: 0.2},
    ),
    "exponential_growth_capped": (
        lambda: gradchain.exponential_decay(0.1, 2, 3.0, end_value=2.0),
        lambda: optax.exponential_decay(0.1, 2, 3.0, end_value=2.0),
        {0: 0.1, 2: 0.3, 4: 0.9, 20: 2.0},
    ),
    "piecewise_constant": (
        lambda: gradchain.piecewise_constant_schedule(1.0, {10: 0.5, 5: 0.1}),
        lambda: optax.piecewise_constant_schedule(1.0, {10: 0.5, 5: 0.1}),
        {0: 1.0, 4: 1.0, 5: 0.1, 9: 0.1, 10: 0.05, 99: 0.05},
    ),
    "warmup_cosine": (
        lambda: gradchain.warmup_cosine_decay_schedule(0.1, 1.0, 10, 30, end_value=0.2),
        lambda: optax.warmup_cosine_decay_schedule(0.1, 1.0, 10, 30, end_value=0.2),
        {0: 0.1, 5: 0.55, 10: 1.0, 20: 0.6, 30: 0.2, 40: 0.2},
    ),
    "join": (
        lambda: gradchain.join_schedules(
            [gradchain.constant_schedule(1.0), gradchain.linear_schedule(1.0, 0.0, 4)], [3]
        ),
        lambda: optax.join_schedules(
            [optax.constant_schedule(1.0), optax.linear_schedule(1.0, 0.0, 4)], [3]
        ),
        {0: 1.0, 2: 1.0, 3: 1.0, 4: 0.75, 7: 0.0, 9: 0.0},
    ),
}

# float32: rounding of cos/pow at these magnitudes (measured <= 1.2e-7); float64: 1e-15.
TOL = {jnp.float32: 5e-7, jnp.float64: 1e-14}


@pytest.fixture(params=[jnp.float32, jnp.float64], ids=["float32", "float64"])
def dtype(request):
    if request.param == jnp.float64:
        request.getfixturevalue("x64")
    return request.param


@pytest.mark.parametrize("name", sorted(CASES))
def test_schedule_matches_closed_form(name, dtype):
    ours, _, hand = CASES[name]
    schedule = ours()
    for step, want in hand.items():
        got = schedule(jnp.asarray(step, jnp.int32))
        assert got.shape == () and got.dtype == dtype
        np.testing.assert_allclose(float(got), want, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("name", sorted(CASES))
def test_schedule_matches_optax(name, dtype):
    ours, theirs, _ = CASES[name]
    steps = jnp.arange(0, 64, dtype=jnp.int32)
    got = jax.jit(jax.vmap(ours()))(steps)
    with reference_promotion():
        want = jnp.stack([jnp.asarray(theirs()(int(s)), dtype) for s in steps])
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("name", sorted(CASES))
def test_schedule_is_the_same_under_jit(name):
    schedule = CASES[name][0]()
    jitted = jax.jit(schedule)
    for step in (0, 3, 17, 1000):
        count = jnp.asarray(step, jnp.int32)
        # XLA may fuse pow/cos differently under jit: allow 2 float32 ulps.
        np.testing.assert_allclose(float(jitted(count)), float(schedule(count)), rtol=2.5e-7)


def test_float32_schedule_with_python_int_and_int32_agree():
    schedule = gradchain.cosine_decay_schedule(1.0, 100)
    assert float(schedule(37)) == float(schedule(jnp.int32(37)))


def test_adam_with_a_schedule_matches_optax():
    params = {"w": jnp.ones((3,)), "b": jnp.zeros((2,))}
    rng = np.random.default_rng(0)
    grads = [jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)]
    grads = grads * 3 + [
        jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
        for _ in range(20)
    ]

    def run(opt):
        p, state = params, opt.init(params)
        step = jax.jit(opt.update)
        for g in grads:
            u, state = step(g, state, p)
            p = jax.tree.map(lambda a, b: a + b, p, u)
        return p

    got = run(gradchain.adam(gradchain.warmup_cosine_decay_schedule(0.0, 0.1, 5, 20)))
    with reference_promotion():
        want = run(optax.adam(optax.warmup_cosine_decay_schedule(0.0, 0.1, 5, 20)))
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=0, atol=2e-6)


def test_linear_with_zero_transition_steps_jumps_at_begin():
    schedule = gradchain.linear_schedule(1.0, 0.5, transition_steps=0, transition_begin=3)
    assert [float(schedule(t)) for t in (0, 2, 3, 9)] == [1.0, 1.0, 0.5, 0.5]


def test_warmup_of_zero_steps_starts_at_peak():
    schedule = gradchain.warmup_cosine_decay_schedule(0.0, 1.0, 0, 10)
    assert float(schedule(0)) == 1.0
    assert float(schedule(10)) == 0.0


def test_cosine_end_value_equals_alpha_form():
    a = gradchain.cosine_decay_schedule(4.0, 10, alpha=0.25)
    b = gradchain.cosine_decay_schedule(4.0, 10, end_value=1.0)
    for t in range(12):
        np.testing.assert_allclose(float(a(t)), float(b(t)), rtol=1e-7)


@pytest.mark.parametrize(
    "build, words",
    [
        (
            lambda: gradchain.linear_schedule(1.0, 0.0, -1),
            "transition_steps must be an integer >= 0, got -1",
        ),
        (
            lambda: gradchain.linear_schedule(1.0, 0.0, 2.5),
            "transition_steps must be an integer >= 0, got 2.5",
        ),
        (
            lambda: gradchain.linear_schedule(1.0, 0.0, 10, -2),
            "transition_begin must be an integer >= 0",
        ),
        (lambda: gradchain.linear_schedule(float("nan"), 0.0, 10), "init_value must not be NaN"),
        (
            lambda: gradchain.cosine_decay_schedule(1.0, 0),
            "decay_steps must be an integer >= 1, got 0",
        ),
        (lambda: gradchain.cosine_decay_schedule(1.0, 10, exponent=0.0), "exponent must be > 0"),
        (
            lambda: gradchain.cosine_decay_schedule(1.0, 10, alpha=0.1, end_value=0.1),
            "not both",
        ),
        (
            lambda: gradchain.exponential_decay(1.0, 0, 0.5),
            "transition_steps must be an integer >= 1",
        ),
        (lambda: gradchain.exponential_decay(1.0, 10, 0.0), "decay_rate must be > 0"),
        (lambda: gradchain.exponential_decay(1.0, 10, 0.5, end_value=math.inf), "finite"),
        (
            lambda: gradchain.piecewise_constant_schedule(1.0, {10: -0.1}),
            "the scale at boundary 10 must be >= 0",
        ),
        (lambda: gradchain.piecewise_constant_schedule(1.0, {-3: 0.1}), "boundary"),
        (lambda: gradchain.join_schedules([gradchain.constant_schedule(1.0)], [3]), "n - 1"),
        (
            lambda: gradchain.join_schedules([gradchain.constant_schedule(1.0)] * 3, [5, 2]),
            "non-decreasing",
        ),
        (lambda: gradchain.join_schedules([1.0, 2.0], [3]), "function of the step"),
        (
            lambda: gradchain.warmup_cosine_decay_schedule(0.0, 1.0, 10, 10),
            "must exceed warmup_steps",
        ),
    ],
)
def test_bad_arguments_are_refused_at_construction(build, words):
    with pytest.raises(gradchain.GradchainError, match=words):
        build()
