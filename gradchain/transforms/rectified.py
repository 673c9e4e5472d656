"""Second moments that repair Adam's first steps.

Adam's denominator is estimated from a handful of gradients at the start, so its early steps
are noisy (RAdam), and it includes the very gradient it divides, which correlates the two
(ADOPT). Each fix here keeps Adam's memory -- one second moment -- and changes when and how
it divides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import (
    GradientTransformation,
    chain,
    describe,
    hyperparam_dtype,
    tree_map_split,
)
from gradchain.transforms.moment_math import (
    abs_sq,
    compute_dtype,
    divide,
    increment,
    moment_dtype,
    moment_zeros,
)
from gradchain.transforms.momentum import bias_correct, scale_by_momentum

__all__ = [
    "PreviousRmsState",
    "RectifiedRmsState",
    "RectifiedRmsTorchState",
    "scale_by_previous_rms",
    "scale_by_radam",
    "scale_by_rectified_rms",
    "scale_by_rectified_rms_torch",
]


@describe(
    nu="second moment: moving average of g**2, one array per parameter",
    count="steps taken so far (int32 scalar), for bias correction and rectification",
)
class RectifiedRmsState(NamedTuple):
    nu: Any
    count: jax.Array


def scale_by_rectified_rms(
    decay: float = 0.999,
    eps: float = 1e-8,
    *,
    eps_root: float = 0.0,
    threshold: float = 5.0,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""Divide by the RMS only once its variance is tractable, and rectified (RAdam).

    Update:     nu_t = decay * nu_{t-1} + (1 - decay) * |g_t|**2
                rho_inf = 2 / (1 - decay) - 1 ;  rho_t = rho_inf - 2 t decay**t / (1 - decay**t)
                r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                if rho_t >= threshold:  u_t = r_t * u_t / (sqrt(nu_hat + eps_root) + eps)
                otherwise (momentum SGD): u_t = u_t ;  nu_hat = nu_t / (1 - decay**t)
    State:      nu -- like params (real dtype, or ``nu_dtype``), starts at 0.
                count -- int32 scalar.   Memory: +1x params.
    Args:       decay -- in [0, 1).  eps, eps_root -- >= 0.  threshold -- the paper uses 4
                (where r_t is defined), Optax and these defaults 5.
    Note:       With the defaults the first 5 steps are plain bias-corrected momentum steps.
    Reference:  Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond",
                ICLR 2020, Algorithm 2.
    """
    _checks.check_unit_interval("decay", decay)
    _checks.check_non_negative("eps", eps)
    _checks.check_non_negative("eps_root", eps_root)
    _checks.check_hyperparam("threshold", threshold)
    _checks.check_dtype("nu_dtype", nu_dtype)

    def init(params):
        nu = jax.tree.map(lambda p: jnp.zeros_like(p, moment_dtype(p, nu_dtype)), params)
        return RectifiedRmsState(nu=nu, count=jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, *, gradient=None, **extra):
        grads = updates if gradient is None else gradient
        count = increment(state.count)
        # The rectification is one scalar per step, computed in decay's dtype (>= float32).
        h = compute_dtype(jnp.result_type(decay))
        b2, t = jnp.asarray(decay, h), count.astype(h)
        b2t = b2**t
        rho_inf = 2 / (1 - b2) - 1
        rho = rho_inf - 2 * t * b2t / (1 - b2t)
        adaptive = rho >= jnp.asarray(threshold, h)
        ratio = (rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)
        r = jnp.sqrt(jnp.where(adaptive, ratio, 1))

        def step(u, g, nu):
            c = compute_dtype(nu.dtype)
            d = b2.astype(c)
            nu_new = d * nu.astype(c) + (1 - d) * abs_sq(g, c)
            nu_hat = nu_new / (1 - d ** t.astype(c))
            denom = jnp.sqrt(nu_hat + jnp.asarray(eps_root, c)) + jnp.asarray(eps, c)
            cu = compute_dtype(u.dtype)
            scaled = (r.astype(cu) * divide(u, denom).astype(cu)).astype(u.dtype)
            return jnp.where(adaptive, scaled, u), nu_new.astype(nu.dtype)

        out, nu = tree_map_split(step, 2, updates, grads, state.nu)
        return out, RectifiedRmsState(nu=nu, count=count)

    return GradientTransformation(init, update, name="scale_by_rectified_rms", preprocessing=False)


@describe(
    nu="second moment: moving average of g**2 up to the previous step, one array per parameter",
    count="steps taken so far (int32 scalar)",
)
class PreviousRmsState(NamedTuple):
    nu: Any
    count: jax.Array


def _quarter_power(t: jax.Array) -> jax.Array:
    return t**0.25


def scale_by_previous_rms(
    decay: float = 0.9999,
    eps: float = 1e-6,
    *,
    clip_value_fn: Callable[[jax.Array], jax.Array] | None = _quarter_power,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""Divide by the RMS of the gradients *before* this one, then clip (ADOPT).

    Update:     first step (t = 0): u_t = 0 ;  nu_0 = |g_0|**2
                later:  u_t = clip(u_t / max(sqrt(nu_{t-1}), eps), -c(t), c(t))
                        nu_t = decay * nu_{t-1} + (1 - decay) * |g_t|**2
                c(t) = clip_value_fn(t), t the number of steps before this one (a float)
    State:      nu -- like params (real dtype, or ``nu_dtype``), starts at 0.
                count -- int32 scalar.   Memory: +1x params.
    Args:       decay -- in [0, 1).  eps -- >= 0.  clip_value_fn -- None for no clipping;
                the default is t**0.25, as in the paper and Optax.
    Note:       Follow it with ``scale_by_momentum(b1, ema=True)``: the momentum of the
                normalised gradient is ADOPT's step. The first step only measures nu, so the
                momentum stays at 0 there, as Optax's b1 = 1 at the first step does.
    Reference:  Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any beta_2 with the
                Optimal Rate", NeurIPS 2024, Algorithm 2.
    """
    _checks.check_unit_interval("decay", decay)
    _checks.check_non_negative("eps", eps)
    _checks.check_dtype("nu_dtype", nu_dtype)

    def init(params):
        nu = jax.tree.map(lambda p: jnp.zeros_like(p, moment_dtype(p, nu_dtype)), params)
        return PreviousRmsState(nu=nu, count=jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, *, gradient=None, **extra):
        grads = updates if gradient is None else gradient
        started = state.count > 0

        def step(u, g, nu):
            c = compute_dtype(nu.dtype)
            nu_c = nu.astype(c)
            d = jnp.where(started, jnp.asarray(decay, c), 0)
            cu = compute_dtype(u.dtype)
            out = u.astype(cu) / jnp.maximum(jnp.sqrt(nu_c), jnp.asarray(eps, c)).astype(cu)
            if clip_value_fn is not None:
                limit = jnp.asarray(clip_value_fn(state.count.astype(c))).astype(cu)
                # an infinite ratio stays infinite: clipped, it would hide a moment that is
                # now infinite for good (nu_t), and the param would stop moving silently
                out = jnp.where(jnp.isfinite(out), jnp.clip(out, -limit, limit), out)
            out = jnp.where(started, out, 0).astype(u.dtype)
            return out, (d * nu_c + (1 - d) * abs_sq(g, c)).astype(nu.dtype)

        out, nu = tree_map_split(step, 2, updates, grads, state.nu)
        return out, PreviousRmsState(nu=nu, count=increment(state.count))

    return GradientTransformation(init, update, name="scale_by_previous_rms", preprocessing=False)


@_checks.names_arguments
def scale_by_radam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    threshold: float = 5.0,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    r"""RAdam's direction: momentum steps until the second moment is trustworthy, then
    Adam's, rectified.

    State:      mu, count, nu, count.   Memory: +2x params.
    Reference:  Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", 2020.
    """
    return chain(
        scale_by_momentum(b1, ema=True),  # first moment                      (+1x params)
        bias_correct(b1, nesterov=nesterov),
        scale_by_rectified_rms(b2, eps, eps_root=eps_root, threshold=threshold),  # nu (+1x)
    )


@describe(
    nu="second moment: moving average of g**2, one array per parameter",
    count="steps taken so far (int32 scalar), for the bias correction and the rectification",
)
class RectifiedRmsTorchState(NamedTuple):
    nu: Any
    count: jax.Array


def scale_by_rectified_rms_torch(
    decay: float = 0.999, eps: float = 1e-8, *, nu_dtype: Any = None
) -> GradientTransformation:
    r"""torch.optim.RAdam's rectified denominator: RMS scaling only once its variance is
    tractable, with eps where torch puts it.

    Update:     nu_t = decay * nu_{t-1} + (1 - decay) * |g_t|**2
                rho_inf = 2 / (1 - decay) - 1 ;  rho_t = rho_inf - 2 t decay**t / (1 - decay**t)
                rho_t > 5:  u_t = r_t * u_t * sqrt(1 - decay**t) / (sqrt(nu_t) + eps),
                            r_t = sqrt((rho_t-4)(rho_t-2) rho_inf / ((rho_inf-4)(rho_inf-2) rho_t))
                otherwise:  u_t unchanged (momentum alone while the variance is untrustworthy)
    State:      nu -- like params (real dtype, or ``nu_dtype``), starts at 0; count -- int32
                scalar.   Memory: +1x params.
    Args:       decay -- in [0, 1).  eps -- >= 0.
    Note:       torch adds eps to the *raw* sqrt(nu_t), then multiplies by sqrt(1 - decay**t);
                ``scale_by_rectified_rms`` (Optax's radam) adds it to the bias-corrected
                sqrt(nu_t / (1 - decay**t)). RAdam is
                ``chain(scale_by_momentum(b1, ema=True), bias_correct(b1), this)``.
    Reference:  Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", 2020;
                torch.optim.RAdam.
    """
    _checks.check_unit_interval("decay", decay)
    _checks.check_non_negative("eps", eps)
    _checks.check_dtype("nu_dtype", nu_dtype)

    def init(params):
        return RectifiedRmsTorchState(
            nu=moment_zeros(params, nu_dtype), count=jnp.zeros([], jnp.int32)
        )

    def update(updates, state, params=None, *, gradient=None, **extra):
        grads = updates if gradient is None else gradient
        count = increment(state.count)
        h = hyperparam_dtype()
        b2, t = jnp.asarray(decay, h), count.astype(h)
        bc2 = 1 - b2**t
        rho_inf = 2 / (1 - b2) - 1
        rho = rho_inf - 2 * t * b2**t / bc2
        rectify = rho > 5
        safe_rho = jnp.where(rectify, rho, 6)  # keeps the unused branch finite
        rect = jnp.sqrt(
            (safe_rho - 4) * (safe_rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * safe_rho)
        )

        def step(u, g, nu):
            c = compute_dtype(nu.dtype)
            d = b2.astype(c)
            nu_new = d * nu.astype(c) + (1 - d) * abs_sq(g, c)
            adaptive = jnp.sqrt(bc2.astype(c)) / (jnp.sqrt(nu_new) + jnp.asarray(eps, c))
            factor = jnp.where(rectify, rect.astype(c) * adaptive, 1)
            cu = compute_dtype(u.dtype)
            return (u.astype(cu) * factor.astype(cu)).astype(u.dtype), nu_new.astype(nu.dtype)

        out, nu = tree_map_split(step, 2, updates, grads, state.nu)
        return out, RectifiedRmsTorchState(nu=nu, count=count)

    return GradientTransformation(init, update, name="scale_by_rectified_rms_torch", preprocessing=False)
