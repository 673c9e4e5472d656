"""Transforms whose math only torch.optim uses: the forms ``gradchain.torch`` needs where torch
computes something other than the textbook (and Optax) form.

Each one states the torch line it reproduces. Where torch and Optax agree up to rounding
(Adam's ``sqrt(v)/sqrt(1 - b2**t)`` against Optax's ``sqrt(v / (1 - b2**t))``), the ordinary
transform is used and no form lives here.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import (
    GradientTransformation,
    describe,
    hyperparam_dtype,
    tree_map_split,
    tree_zeros_like,
)
from gradchain.transforms.moment_math import abs_sq, compute_dtype, increment, moment_dtype

__all__ = [
    "AmsgradRawState",
    "NadamScheduleState",
    "RectifiedRmsTorchState",
    "SgdMomentumState",
    "bias_correct_nadam",
    "scale_by_amsgrad_raw",
    "scale_by_rectified_rms_torch",
    "scale_by_sgd_momentum",
]


def _moment_zeros(params: Any, dtype: Any) -> Any:
    return jax.tree.map(lambda p: jnp.zeros_like(p, moment_dtype(p, dtype)), params)


@describe(
    mu="momentum buffer: the first gradient, then momentum * mu + (1 - dampening) * g",
    count="steps taken so far (int32 scalar); at 0 the buffer is set to the gradient",
)
class SgdMomentumState(NamedTuple):
    mu: Any
    count: jax.Array


def scale_by_sgd_momentum(
    momentum: float = 0.9,
    dampening: float = 0.0,
    *,
    nesterov: bool = False,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""torch.optim.SGD's momentum buffer, with dampening and a first step that copies g.

    Update:     mu_1 = u_1 ;  mu_t = momentum * mu_{t-1} + (1 - dampening) * u_t  (t > 1)
                emit mu_t, or u_t + momentum * mu_t with nesterov
    State:      mu -- like params (dtype ``mu_dtype``), starts at 0; count -- int32 scalar.
                Memory: +1x params.
    Args:       momentum -- >= 0.  dampening -- in [0, 1].  nesterov -- look ahead.
    Note:       with dampening = 0 this is ``scale_by_momentum`` (heavy ball): a zero start
                and a first step that copies g agree. With dampening > 0 they differ at the
                first step, where torch takes the whole gradient, not (1 - dampening) of it.
    Reference:  torch.optim.SGD; Sutskever et al., 2013.
    """
    _checks.check_non_negative("momentum", momentum)
    _checks.check_closed_unit_interval("dampening", dampening)
    _checks.check_dtype("mu_dtype", mu_dtype)

    def init(params):
        mu = tree_zeros_like(params, mu_dtype)
        return SgdMomentumState(mu=mu, count=jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, **extra):
        first = state.count == 0

        def step(u, mu):
            c = compute_dtype(u.dtype, mu.dtype)
            m, d, uc = jnp.asarray(momentum, c), jnp.asarray(dampening, c), u.astype(c)
            mu_new = jnp.where(first, uc, m * mu.astype(c) + (1 - d) * uc)
            out = uc + m * mu_new if nesterov else mu_new
            return out.astype(u.dtype), mu_new.astype(mu.dtype)

        out, mu = tree_map_split(step, 2, updates, state.mu)
        return out, SgdMomentumState(mu=mu, count=increment(state.count))

    return GradientTransformation(init, update, name="scale_by_sgd_momentum")


@describe(
    nu="second moment: moving average of g**2, one array per parameter",
    nu_max="running maximum of the raw (not bias-corrected) nu, one array per parameter",
    count="steps taken so far (int32 scalar), for the bias correction",
)
class AmsgradRawState(NamedTuple):
    nu: Any
    nu_max: Any
    count: jax.Array


def scale_by_amsgrad_raw(
    decay: float = 0.999, eps: float = 1e-8, *, nu_dtype: Any = None
) -> GradientTransformation:
    r"""torch.optim.Adam(amsgrad=True)'s denominator: the maximum of the *raw* second moment.

    Update:     nu_t = decay * nu_{t-1} + (1 - decay) * |g_t|**2
                nu_max_t = max(nu_max_{t-1}, nu_t)
                u_t = u_t / (sqrt(nu_max_t) / sqrt(1 - decay**t) + eps)
    State:      nu, nu_max -- like params (real dtype, or ``nu_dtype``), start at 0;
                count -- int32 scalar.   Memory: +2x params.
    Args:       decay -- in [0, 1).  eps -- >= 0.
    Note:       Optax's (and ``scale_by_rms(amsgrad=True)``'s) maximum is taken of the
                bias-corrected nu_t / (1 - decay**t). The two differ whenever an old maximum
                wins: torch then divides the old raw value by today's, smaller, correction.
    Reference:  Reddi, Kale & Kumar, 2018; torch.optim.Adam.
    """
    _checks.check_unit_interval("decay", decay)
    _checks.check_non_negative("eps", eps)
    _checks.check_dtype("nu_dtype", nu_dtype)

    def init(params):
        nu, nu_max = _moment_zeros(params, nu_dtype), _moment_zeros(params, nu_dtype)
        return AmsgradRawState(nu=nu, nu_max=nu_max, count=jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, *, gradient=None, **extra):
        grads = updates if gradient is None else gradient
        count = increment(state.count)

        def step(u, g, nu, nu_max):
            c = compute_dtype(nu.dtype)
            d = jnp.asarray(decay, c)
            nu_new = d * nu.astype(c) + (1 - d) * abs_sq(g, c)
            top = jnp.maximum(nu_max.astype(c), nu_new)
            denom = jnp.sqrt(top) / jnp.sqrt(1 - d ** count.astype(c)) + jnp.asarray(eps, c)
            cu = compute_dtype(u.dtype)
            out = (u.astype(cu) / denom.astype(cu)).astype(u.dtype)
            return out, nu_new.astype(nu.dtype), top.astype(nu_max.dtype)

        out, nu, nu_max = tree_map_split(step, 3, updates, grads, state.nu, state.nu_max)
        return out, AmsgradRawState(nu=nu, nu_max=nu_max, count=count)

    return GradientTransformation(init, update, name="scale_by_amsgrad_raw")


@describe(
    count="steps taken so far (int32 scalar)",
    mu_product="product of the scheduled momenta mu_1 ... mu_t (a float scalar)",
)
class NadamScheduleState(NamedTuple):
    count: jax.Array
    mu_product: jax.Array


def bias_correct_nadam(decay: float = 0.9, momentum_decay: float = 4e-3) -> GradientTransformation:
    r"""NAdam's look-ahead bias correction under Dozat's momentum schedule (torch's NAdam).

    Update:     mu_t = decay * (1 - 0.5 * 0.96**(t * momentum_decay))
                P_t = mu_1 * ... * mu_t
                u_t = mu_{t+1} * u_t / (1 - P_t * mu_{t+1}) + (1 - mu_t) * g_t / (1 - P_t)
                (u_t is the EMA of g with the constant ``decay``; g_t is the gradient)
    State:      count -- int32 scalar; mu_product -- one float scalar.   Memory: 2 scalars.
    Args:       decay -- b1, in [0, 1).  momentum_decay -- psi, >= 0 (torch's default 4e-3).
    Note:       ``bias_correct(decay, nesterov=True)`` is Optax's NAdam: the constant
                mu_t = decay. This transform is torch.optim.NAdam's; it reads the gradient
                (see ``gradchain.chain``).
    Reference:  Dozat, "Incorporating Nesterov Momentum into Adam", 2016; torch.optim.NAdam.
    """
    _checks.check_unit_interval("decay", decay)
    _checks.check_non_negative("momentum_decay", momentum_decay)

    def init(params):
        return NadamScheduleState(
            count=jnp.zeros([], jnp.int32), mu_product=jnp.ones([], hyperparam_dtype())
        )

    def update(updates, state, params=None, *, gradient=None, **extra):
        count = increment(state.count)
        grads = updates if gradient is None else gradient
        c = state.mu_product.dtype
        b1, psi, t = jnp.asarray(decay, c), jnp.asarray(momentum_decay, c), count.astype(c)
        mu = b1 * (1 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
        product = state.mu_product * mu
        ahead = mu_next / (1 - product * mu_next)
        now = (1 - mu) / (1 - product)

        def correct(u, g):
            cu = compute_dtype(u.dtype)
            out = ahead.astype(cu) * u.astype(cu) + now.astype(cu) * g.astype(cu)
            return out.astype(u.dtype)

        new_state = NadamScheduleState(count=count, mu_product=product)
        return jax.tree.map(correct, updates, grads), new_state

    return GradientTransformation(init, update, name="bias_correct_nadam")


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
            nu=_moment_zeros(params, nu_dtype), count=jnp.zeros([], jnp.int32)
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

    return GradientTransformation(init, update, name="scale_by_rectified_rms_torch")
