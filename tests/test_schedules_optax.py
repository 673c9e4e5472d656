"""Issue 16's schedules against Optax's of the same name over 150 steps, float32 and float64
(the hyperparameter dtype: float64 under x64). Tolerances measured once and frozen."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion

STEPS = 150

SGDR = [
    dict(init_value=0.0, peak_value=1.0, warmup_steps=5, decay_steps=40),
    dict(init_value=0.1, peak_value=0.5, warmup_steps=10, decay_steps=60, end_value=0.05),
    dict(init_value=0.0, peak_value=0.25, warmup_steps=0, decay_steps=30, exponent=2.0),
]

# name: (arguments, relative tolerance float32, float64); measured relative differences
# (max over 150 steps / max |value|) in the comments, float32 then float64
CASES = {
    "polynomial_schedule": (dict(init_value=1.0, end_value=0.01, power=2.0, transition_steps=100,
                                 transition_begin=10), 1e-6, 1e-14),  # 0.0, 0.0
    "sgdr_schedule": (dict(cosine_kwargs=SGDR), 2e-7, 1e-15),  # 3.0e-8, 5.6e-17
    "cosine_onecycle_schedule": (dict(transition_steps=120, peak_value=0.3), 1e-6, 1e-14),  # 0, 0
    "linear_onecycle_schedule": (dict(transition_steps=120, peak_value=0.3, pct_start=0.25),
                                 1e-6, 1e-14),  # 0.0, 0.0
    "warmup_constant_schedule": (dict(init_value=0.01, peak_value=0.5, warmup_steps=20),
                                 2e-7, 1e-15),  # 6.0e-8, 5.6e-17
    "warmup_exponential_decay_schedule": (
        dict(init_value=0.0, peak_value=1.0, warmup_steps=15, transition_steps=7,
             decay_rate=0.8, transition_begin=5, end_value=0.05), 2e-7, 1e-15),  # 6.0e-8, 1.1e-16
    "warmup_exponential_decay_schedule_staircase": (
        dict(init_value=0.0, peak_value=1.0, warmup_steps=15, transition_steps=7,
             decay_rate=0.8, staircase=True), 2e-7, 1e-15),  # 6.0e-8, 1.1e-16
}


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", request.param == "float64")
    yield jnp.dtype(request.param)
    jax.config.update("jax_enable_x64", before)


@pytest.mark.parametrize("case", sorted(CASES))
def test_schedule_equals_optax(case, dtype):
    kwargs, tol32, tol64 = CASES[case]
    name = case.replace("_staircase", "")
    counts = jnp.arange(STEPS, dtype=jnp.int32)
    ours = jax.jit(jax.vmap(getattr(gradchain, name)(**kwargs)))(counts)
    with reference_promotion():  # Optax computes in the counts' dtype: give it ours
        ref = jax.jit(jax.vmap(getattr(optax, name)(**kwargs)))(counts.astype(dtype))
    assert ours.dtype == dtype  # the hyperparameter dtype
    scale = float(jnp.max(jnp.abs(ref)))
    err = float(jnp.max(jnp.abs(ours - ref.astype(dtype)))) / scale
    assert err <= (tol32 if dtype == jnp.float32 else tol64)


def test_onecycle_shapes_by_hand():
    lin = gradchain.linear_onecycle_schedule(100, 1.0, pct_start=0.3, pct_final=0.85)
    np.testing.assert_allclose([float(lin(t)) for t in (0, 30, 85, 100, 150)],
                               [0.04, 1.0, 0.04, 4e-6, 4e-6], rtol=1e-5)
    cos = gradchain.cosine_onecycle_schedule(100, 1.0)
    np.testing.assert_allclose([float(cos(t)) for t in (0, 15, 30, 100)],
                               [0.04, 0.52, 1.0, 4e-6], rtol=1e-5)


def test_new_schedules_refuse_what_optax_turns_into_a_constant():
    with pytest.raises(gradchain.GradchainError, match="transition_steps"):
        gradchain.polynomial_schedule(1.0, 0.0, 1.0, transition_steps=0)
    with pytest.raises(gradchain.GradchainError, match="pct_final must be >= pct_start"):
        gradchain.linear_onecycle_schedule(100, 1.0, pct_start=0.5, pct_final=0.4)
    with pytest.raises(gradchain.GradchainError, match="list of dicts"):
        gradchain.sgdr_schedule(dict(init_value=0.0, peak_value=1.0, warmup_steps=1, decay_steps=5))
