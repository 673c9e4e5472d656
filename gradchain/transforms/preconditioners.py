"""Second moments: divide the running update by a per-parameter scale built from g**2.

Each of these builds its statistic from the *gradient* (the ``gradient`` keyword that
``chain`` passes, see ``gradchain.chain``) and divides *whatever update reaches it*. Used
alone it divides the gradient (RMSProp, AdaGrad); after momentum and bias correction it is
Adam's denominator.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import GradientTransformation, describe, tree_map_split, tree_zeros_like
from gradchain.transforms.moment_math import (
    abs_sq,
    accumulator_zeros,
    cast,
    compute_dtype,
    divide,
    increment,
    moment_dtype,
    moment_zeros,
    scalar_dtype,
)

__all__ = [
    "ScaleByRmsState",
    "ScaleByRStdDevState",
    "ScaleByRssState",
    "AdditiveRmsState",
    "AmsgradRawState",
    "BeliefState",
    "InfNormState",
    "RmsState",
    "RssState",
    "StddevState",
    "scale_by_additive_rms",
    "scale_by_amsgrad_raw",
    "scale_by_inf_norm",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_stddev",
    "scale_by_surprise_rms",
]


@describe(
    nu="second moment: moving average of g**2, one array per parameter",
    nu_max="AMSGrad's running maximum of nu (bias-corrected); None unless amsgrad=True",
    count="steps taken so far, for bias correction; None unless bias_correction=True",
)
class RmsState(NamedTuple):
    nu: Any
    nu_max: Any
    count: Any


def scale_by_rms(
    decay: float = 0.9, eps: float = 1e-8, initial_scale: float = 0.0, eps_in_sqrt: bool = True,
    bias_correction: bool = False, *, eps_root: float = 0.0, amsgrad: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:  # fmt: skip
    r"""Divide by the root of a moving average of squared gradients.

    Update:     nu_t = decay * nu_{t-1} + (1 - decay) * |g_t|**2
                nu_hat = nu_t / (1 - decay**t) if bias_correction else nu_t
                amsgrad: nu_max_t = max(nu_max_{t-1}, nu_hat); nu_hat = nu_max_t
                u_t = u_t / sqrt(nu_hat + eps_root + eps)      (eps_in_sqrt, Optax's default)
                u_t = u_t / (sqrt(nu_hat + eps_root) + eps)    (eps_in_sqrt=False: Adam's)
    State:      nu -- like params (real dtype for complex params, or ``nu_dtype``), starts at
                ``initial_scale``.  Memory: +1x params.  nu_max (amsgrad): +1x params.
                count (bias_correction): one scalar.
    Args:       decay -- in [0, 1).  eps, eps_root -- >= 0.  bias_correction -- Adam's.
                Positional order and defaults are Optax's ``scale_by_rms``.
    Note:       eps inside the root is Optax's default; Adam and torch.optim put it outside.
                AMSGrad takes the max of the bias-corrected nu, as Optax does; torch.optim
                takes it of the raw nu.
    Reference:  Tieleman & Hinton, 2012 (RMSProp); Kingma & Ba, 2015 (Adam);
                Reddi et al., 2018 (AMSGrad).
    """
    _checks.check_unit_interval("decay", decay)
    for name, value in (("eps", eps), ("eps_root", eps_root), ("initial_scale", initial_scale)):
        _checks.check_non_negative(name, value)
    _checks.check_dtype("nu_dtype", nu_dtype)

    eps_inside, eps_outside = (eps_root + eps, 0.0) if eps_in_sqrt else (eps_root, eps)

    def init(params):
        start = lambda p: jnp.full_like(p, initial_scale, moment_dtype(p, nu_dtype))  # noqa: E731
        nu, count = jax.tree.map(start, params), jnp.zeros([], jnp.int32)
        nu_max = tree_zeros_like(nu) if amsgrad else None
        return RmsState(nu=nu, nu_max=nu_max, count=count if bias_correction else None)

    def update(updates, state, params=None, *, gradient=None, **extra):
        grads = updates if gradient is None else gradient
        count = increment(state.count) if bias_correction else None
        nu_max_in = state.nu_max if amsgrad else state.nu  # placeholder tree when unused
        d = jnp.asarray(decay, scalar_dtype(state.nu))  # scalars once per step, >= float32
        new_weight = 1 - d
        correction = 1 - d ** count.astype(d.dtype) if bias_correction else jnp.ones_like(d)
        inside, outside = jnp.asarray(eps_inside, d.dtype), jnp.asarray(eps_outside, d.dtype)

        def step(u, g, nu, nu_max):
            c = compute_dtype(nu.dtype)
            nu_new = cast(d, c) * cast(nu, c) + cast(new_weight, c) * abs_sq(g, c)
            nu_hat = nu_new / cast(correction, c) if bias_correction else nu_new
            nu_hat = jnp.maximum(cast(nu_max, c), nu_hat) if amsgrad else nu_hat
            denom = jnp.sqrt(nu_hat + cast(inside, c)) + cast(outside, c)
            return divide(u, denom), cast(nu_new, nu.dtype), cast(nu_hat, nu.dtype)

        out, nu, nu_max = tree_map_split(step, 3, updates, grads, state.nu, nu_max_in)
        return out, RmsState(nu=nu, nu_max=nu_max if amsgrad else None, count=count)

    return GradientTransformation(init, update, name="scale_by_rms", preprocessing=False)


@describe(
    mu="first moment of the gradient: moving average of g, one array per parameter",
    nu="second moment: moving average of g**2, one array per parameter",
    count="steps taken so far, for bias correction; None unless bias_correction=True",
)
class StddevState(NamedTuple):
    mu: Any
    nu: Any
    count: Any


def scale_by_stddev(
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
    *,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""Divide by a moving estimate of the gradient's standard deviation (centered RMSProp).

    Update:     mu_t = decay * mu_{t-1} + (1 - decay) * g_t
                nu_t = decay * nu_{t-1} + (1 - decay) * |g_t|**2
                (bias-corrected by 1 - decay**t when bias_correction)
                u_t = u_t / sqrt(nu_t - |mu_t|**2 + eps_root + eps)   (eps_in_sqrt)
                u_t = u_t / (sqrt(nu_t - |mu_t|**2 + eps_root) + eps) (eps_in_sqrt=False)
    State:      mu, nu -- like params, start at 0 and ``initial_scale``.  Memory: +2x params.
    Args:       decay -- in [0, 1).  eps, eps_root -- >= 0.  Positional order and defaults
                are Optax's ``scale_by_stddev``.
    Reference:  Graves, "Generating Sequences With Recurrent Neural Networks", 2013, eq. 38.
    """
    _checks.check_unit_interval("decay", decay)
    _checks.check_non_negative("eps", eps)
    _checks.check_non_negative("eps_root", eps_root)
    _checks.check_non_negative("initial_scale", initial_scale)
    _checks.check_dtype("mu_dtype", mu_dtype)
    _checks.check_dtype("nu_dtype", nu_dtype)
    eps_inside, eps_outside = (eps_root + eps, 0.0) if eps_in_sqrt else (eps_root, eps)

    def init(params):
        nu = jax.tree.map(
            lambda p: jnp.full_like(p, initial_scale, moment_dtype(p, nu_dtype)), params
        )
        count = jnp.zeros([], jnp.int32) if bias_correction else None
        mu = accumulator_zeros(params, mu_dtype)
        return StddevState(mu=mu, nu=nu, count=count)

    def update(updates, state, params=None, *, gradient=None, **extra):
        grads = updates if gradient is None else gradient
        count = increment(state.count) if bias_correction else None

        def step(u, g, mu, nu):
            c, cr = compute_dtype(mu.dtype, g.dtype), compute_dtype(nu.dtype)
            d, dr = jnp.asarray(decay, c), jnp.asarray(decay, cr)
            mu_new = d * mu.astype(c) + (1 - d) * g.astype(c)
            nu_new = dr * nu.astype(cr) + (1 - dr) * abs_sq(g, cr)
            mu_hat, nu_hat = mu_new, nu_new
            if bias_correction:
                t = count.astype(cr)
                mu_hat, nu_hat = mu_new / (1 - d ** t.astype(c)), nu_new / (1 - dr**t)
            var = nu_hat - abs_sq(mu_hat, cr)
            denom = jnp.sqrt(var + jnp.asarray(eps_inside, cr)) + jnp.asarray(eps_outside, cr)
            return divide(u, denom), mu_new.astype(mu.dtype), nu_new.astype(nu.dtype)

        out, mu, nu = tree_map_split(step, 3, updates, grads, state.mu, state.nu)
        return out, StddevState(mu=mu, nu=nu, count=count)

    return GradientTransformation(init, update, name="scale_by_stddev", preprocessing=False)


@describe(
    sum_of_squares="AdaGrad's accumulator: running sum of g**2, one array per parameter",
)
class RssState(NamedTuple):
    sum_of_squares: Any


def scale_by_rss(
    initial_accumulator_value: float = 0.1,
    eps: float = 0.0,
    *,
    eps_root: float = 1e-7,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""Divide by the root of the sum of all squared gradients so far (AdaGrad).

    Update:     s_t = s_{t-1} + |g_t|**2 ;  u_t = u_t / (sqrt(s_t + eps_root) + eps)
    State:      sum_of_squares -- like params, starts at ``initial_accumulator_value``.
                Memory: +1x params.
    Args:       initial_accumulator_value, eps, eps_root -- >= 0.
    Note:       Optax: initial 0.1, eps 1e-7 inside the root (these defaults). torch.optim:
                initial 0, eps 1e-10 outside (eps=1e-10, eps_root=0).
    Reference:  Duchi, Hazan & Singer, 2011.
    """
    _checks.check_non_negative("initial_accumulator_value", initial_accumulator_value)
    _checks.check_non_negative("eps", eps)
    _checks.check_non_negative("eps_root", eps_root)
    _checks.check_dtype("nu_dtype", nu_dtype)

    def init(params):
        acc = jax.tree.map(
            lambda p: jnp.full_like(p, initial_accumulator_value, moment_dtype(p, nu_dtype)),
            params,
        )
        return RssState(sum_of_squares=acc)

    def update(updates, state, params=None, *, gradient=None, **extra):
        grads = updates if gradient is None else gradient

        def step(u, g, s):
            c = compute_dtype(s.dtype)
            s_new = s.astype(c) + abs_sq(g, c)
            denom = jnp.sqrt(s_new + jnp.asarray(eps_root, c)) + jnp.asarray(eps, c)
            # Optax's adagrad emits 0 while the accumulator is still 0.
            denom = jnp.where(s_new == 0, 0, denom)  # (a NaN sum is not 0: it shows)
            return divide(u, denom), s_new.astype(s.dtype)

        out, acc = tree_map_split(step, 2, updates, grads, state.sum_of_squares)
        return out, RssState(sum_of_squares=acc)

    return GradientTransformation(init, update, name="scale_by_rss", preprocessing=False)


@describe(
    nu="infinity norm: exponentially weighted maximum of |g|, one array per parameter",
)
class InfNormState(NamedTuple):
    nu: Any


def scale_by_inf_norm(
    decay: float = 0.999, eps: float = 1e-8, *, nu_dtype: Any = None
) -> GradientTransformation:
    r"""Divide by an exponentially weighted infinity norm of the gradient (Adamax).

    Update:     nu_t = max(decay * nu_{t-1}, |g_t| + eps) ;  u_t = u_t / nu_t
    State:      nu -- like params (real dtype), starts at 0.   Memory: +1x params.
    Args:       decay -- in [0, 1).  eps -- >= 0.
    Note:       torch.optim.Adamax computes the same max(decay * nu, |g| + eps).
    Reference:  Kingma & Ba, 2015, section 7.1.
    """
    _checks.check_unit_interval("decay", decay)
    _checks.check_non_negative("eps", eps)
    _checks.check_dtype("nu_dtype", nu_dtype)

    def init(params):
        nu = jax.tree.map(lambda p: jnp.zeros_like(p, moment_dtype(p, nu_dtype)), params)
        return InfNormState(nu=nu)

    def update(updates, state, params=None, *, gradient=None, **extra):
        grads = updates if gradient is None else gradient

        def step(u, g, nu):
            c = compute_dtype(nu.dtype)
            g_abs = jnp.abs(g.astype(compute_dtype(g.dtype))).astype(c)
            nu_new = jnp.maximum(jnp.asarray(decay, c) * nu.astype(c), g_abs + jnp.asarray(eps, c))
            return divide(u, nu_new), nu_new.astype(nu.dtype)

        out, nu = tree_map_split(step, 2, updates, grads, state.nu)
        return out, InfNormState(nu=nu)

    return GradientTransformation(init, update, name="scale_by_inf_norm", preprocessing=False)


@describe(
    belief="second moment of the surprise: moving average of (g - mu)**2 (plus eps_root), "
    "one array per parameter",
    count="steps taken so far (int32 scalar), for bias correction",
)
class BeliefState(NamedTuple):
    belief: Any
    count: jax.Array


def scale_by_surprise_rms(
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    *,
    nesterov_decay: float | None = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""Divide the momentum by how far gradients stray from it (AdaBelief's denominator).

    Update:     s_t = b2 * s_{t-1} + (1 - b2) * |g_t - u_t|**2 + eps_root
                u_t = u_t / (sqrt(s_t / (1 - b2**t)) + eps)
                nesterov_decay = b1: the numerator is Nesterov's, bias-corrected here,
                u_t = (b1 u_t / (1 - b1**(t+1)) + (1 - b1) g_t / (1 - b1**t)) / (same denom)
    State:      belief -- like params (real dtype, or ``nu_dtype``), starts at 0.
                count -- int32 scalar.   Memory: +1x params.
    Args:       b2 -- in [0, 1).  eps, eps_root -- >= 0.  nesterov_decay -- None, or b1 in
                [0, 1) for AdaBelief's Nesterov form (then put no ``bias_correct`` after it).
    Note:       The incoming update u_t must be the first moment mu_t itself: place it right
                after ``scale_by_momentum(b1, ema=True)`` and *before* ``bias_correct(b1)``
                (division by a per-coordinate factor commutes with the scalar correction).
                Where the gradient agrees with the momentum the step is large, where it
                surprises the step is small. eps_root accumulates in the state, as in Optax.
                ``gradchain.scale_by_belief`` is the whole of Optax's transform (with b1).
    Reference:  Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief in
                Observed Gradients", 2020, Algorithm 2.
    """
    _checks.check_unit_interval("b2", b2)
    _checks.check_non_negative("eps", eps)
    _checks.check_non_negative("eps_root", eps_root)
    if nesterov_decay is not None:
        _checks.check_unit_interval("nesterov_decay", nesterov_decay)
    _checks.check_dtype("nu_dtype", nu_dtype)

    def init(params):
        belief = jax.tree.map(lambda p: jnp.zeros_like(p, moment_dtype(p, nu_dtype)), params)
        return BeliefState(belief=belief, count=jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, *, gradient=None, **extra):
        grads = updates if gradient is None else gradient
        count = increment(state.count)

        def step(u, g, s):
            c, cr = compute_dtype(u.dtype, g.dtype), compute_dtype(s.dtype)
            d, t = jnp.asarray(b2, cr), count.astype(cr)
            surprise = abs_sq(g.astype(c) - u.astype(c), cr)
            s_new = d * s.astype(cr) + (1 - d) * surprise + jnp.asarray(eps_root, cr)
            denom = jnp.sqrt(s_new / (1 - d**t)) + jnp.asarray(eps, cr)
            if nesterov_decay is not None:
                b1, tc = jnp.asarray(nesterov_decay, c), count.astype(c)
                ahead = b1 * u.astype(c) / (1 - b1 ** (tc + 1))
                u = (ahead + (1 - b1) * g.astype(c) / (1 - b1**tc)).astype(u.dtype)
            return divide(u, denom), s_new.astype(s.dtype)

        out, belief = tree_map_split(step, 2, updates, grads, state.belief)
        return out, BeliefState(belief=belief, count=count)

    return GradientTransformation(init, update, name="scale_by_surprise_rms", preprocessing=False)


@describe(
    nu="second moment, moved additively: nu - (1 - b2) sign(nu - g**2) g**2, "
    "one array per parameter",
    count="steps taken so far (int32 scalar), for bias correction",
)
class AdditiveRmsState(NamedTuple):
    nu: Any
    count: jax.Array


def scale_by_additive_rms(
    decay: float = 0.999,
    eps: float = 1e-3,
    *,
    eps_root: float = 0.0,
    initial_accumulator_value: float = 1e-6,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""Divide by a second moment that changes additively, not multiplicatively (Yogi).

    Update:     nu_t = nu_{t-1} - (1 - decay) * sign(nu_{t-1} - |g_t|**2) * |g_t|**2
                u_t = u_t / (sqrt(nu_t / (1 - decay**t) + eps_root) + eps)
    State:      nu -- like params (real dtype, or ``nu_dtype``), starts at
                ``initial_accumulator_value``.  count -- int32 scalar.   Memory: +1x params.
    Args:       decay -- in [0, 1).  eps, eps_root, initial_accumulator_value -- >= 0.
    Note:       Adam's nu moves by (1 - decay) * (g**2 - nu): after a burst of large gradients
                it forgets geometrically, and the effective step jumps. Yogi's moves by at most
                (1 - decay) * g**2 -- the step grows back slowly.
    Reference:  Zaheer et al., "Adaptive Methods for Nonconvex Optimization", NeurIPS 2018.
    """
    _checks.check_unit_interval("decay", decay)
    _checks.check_non_negative("eps", eps)
    _checks.check_non_negative("eps_root", eps_root)
    _checks.check_non_negative("initial_accumulator_value", initial_accumulator_value)
    _checks.check_dtype("nu_dtype", nu_dtype)

    def init(params):
        nu = jax.tree.map(
            lambda p: jnp.full_like(p, initial_accumulator_value, moment_dtype(p, nu_dtype)),
            params,
        )
        return AdditiveRmsState(nu=nu, count=jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, *, gradient=None, **extra):
        grads = updates if gradient is None else gradient
        count = increment(state.count)

        def step(u, g, nu):
            c = compute_dtype(nu.dtype)
            d, t = jnp.asarray(decay, c), count.astype(c)
            g2, nu_c = abs_sq(g, c), nu.astype(c)
            nu_new = nu_c - (1 - d) * jnp.sign(nu_c - g2) * g2
            denom = jnp.sqrt(nu_new / (1 - d**t) + jnp.asarray(eps_root, c)) + jnp.asarray(eps, c)
            return divide(u, denom), nu_new.astype(nu.dtype)

        out, nu = tree_map_split(step, 2, updates, grads, state.nu)
        return out, AdditiveRmsState(nu=nu, count=count)

    return GradientTransformation(init, update, name="scale_by_additive_rms", preprocessing=False)


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
        nu, nu_max = moment_zeros(params, nu_dtype), moment_zeros(params, nu_dtype)
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

    return GradientTransformation(init, update, name="scale_by_amsgrad_raw", preprocessing=False)

ScaleByRmsState = RmsState  # Optax's name; gradchain adds `nu_max` and `count` (None unless used)
ScaleByRStdDevState = StddevState  # Optax's name; same fields (mu, nu), plus `count`
ScaleByRssState = RssState  # Optax's name; same field `sum_of_squares`
