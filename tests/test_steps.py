"""Skipping and accumulating steps (combine/steps.py): apply_if_finite and MultiSteps against
Optax's, 100 steps of a noisy quadratic with NaN steps, float32 and float64."""

import jax
import jax.numpy as jnp
import optax
import pytest

import gradchain
from tests.problems import final_gap, final_params, with_lr


def test_zero_nans_and_apply_if_finite_on_nan_steps(dtype):
    nan_steps = (5, 6, 40)
    gap = final_gap(
        with_lr(gradchain.zero_nans()),
        with_lr(optax.zero_nans(), optax),
        dtype,
        nan_steps=nan_steps,
    )
    assert gap == 0.0
    ours = gradchain.apply_if_finite(gradchain.adam(0.05), 3)
    theirs = optax.apply_if_finite(optax.adam(0.05), 3)
    a, sa = final_params(ours, dtype, nan_steps=nan_steps)
    b, sb = final_params(theirs, dtype, nan_steps=nan_steps)
    gap = max(
        float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )
    assert gap <= (3e-6 if dtype == jnp.float32 else 1e-15), gap  # measured 9.9e-7, 2.4e-17
    for field in ("notfinite_count", "last_finite", "total_notfinite"):
        assert int(getattr(sa, field)) == int(getattr(sb, field)), field


@pytest.mark.parametrize(
    "every_k, mean",
    [(3, True), (lambda step: 2 + step % 3, True), (4, False)],
    ids=["3", "schedule", "sum"],
)
def test_multi_steps_equals_optax(every_k, mean, dtype):
    acc_dtype = jnp.float32 if dtype == jnp.float32 else None
    ours = gradchain.MultiSteps(
        gradchain.adam(0.05), every_k, use_grad_mean=mean, accumulator_dtype=acc_dtype
    )
    theirs = optax.MultiSteps(
        optax.adam(0.05), every_k, use_grad_mean=mean, accumulator_dtype=acc_dtype
    )
    a, sa = final_params(ours.gradient_transformation(), dtype)
    b, sb = final_params(theirs.gradient_transformation(), dtype)
    gap = max(
        float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )
    assert gap <= (1.5e-5 if dtype == jnp.float32 else 1e-15), gap  # measured <= 4.3e-6, 1.1e-16
    assert int(sa.gradient_step) == int(sb.gradient_step)
    assert bool(ours.has_updated(sa)) == bool(theirs.has_updated(sb))


def test_multi_steps_should_skip_update_fn(x64):
    kw = dict(should_skip_update_fn=optax.skip_not_finite, accumulator_dtype=None)
    ours = gradchain.MultiSteps(gradchain.adam(0.05), 3, **kw).gradient_transformation()
    theirs = optax.MultiSteps(optax.adam(0.05), 3, **kw).gradient_transformation()
    a, sa = final_params(ours, jnp.float64, nan_steps=(5, 6, 40))
    b, sb = final_params(theirs, jnp.float64, nan_steps=(5, 6, 40))
    gap = max(
        float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )
    assert gap <= 1e-15, gap  # 1.4e-17
    assert int(sa.mini_step) == int(sb.mini_step)


@pytest.mark.parametrize(
    "every_k, mean",
    [(3, True), (lambda step: 2 + step % 3, True), (4, False)],
    ids=["3", "schedule", "sum"],
)
def test_multi_steps_with_the_default_float32_accumulator_in_float64(every_k, mean, x64):
    """docs/coming_from_optax.md: both libraries keep a float32 accumulator by default, so
    float64 runs agree to float32 rounding of the sums only. Measured: 4.2e-9, 3.7e-9, 1.2e-9."""
    ours = gradchain.MultiSteps(gradchain.adam(0.05), every_k, use_grad_mean=mean)
    theirs = optax.MultiSteps(optax.adam(0.05), every_k, use_grad_mean=mean)
    a, _ = final_params(ours.gradient_transformation(), jnp.float64)
    b, _ = final_params(theirs.gradient_transformation(), jnp.float64)
    gap = max(
        float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )
    assert 1e-12 < gap <= 1e-8
