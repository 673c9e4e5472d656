"""Moments that Adam does not keep: each one costs a param-sized slot and buys something.

- ``add_slow_momentum``: AdEMAMix's second, slow momentum -- remembers gradients from
  thousands of steps ago (b3 = 0.9999) next to Adam's fast one.
- ``scale_by_gradient_difference``: Adan's moment of gradient differences (a cheap Nesterov
  look-ahead) and its second moment of the extrapolated gradient.
- ``scale_by_surprise_rms``: AdaBelief's second moment of the *surprise* ``g - mu`` instead of ``g``.
- ``scale_by_additive_rms``: Yogi's second moment, which moves by at most ``(1 - b2) g**2``
  per step, so it cannot forget a large past gradient as fast as Adam's can.

Every one reads the gradient from the ``gradient`` keyword (see ``gradchain.chain``) and acts
on whatever update reaches it, like ``scale_by_rms``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import GradientTransformation, describe, tree_map_split, tree_zeros_like
from gradchain.transforms.moment_math import (
    abs_sq,
    compute_dtype,
    divide,
    increment,
    moment_dtype,
)

__all__ = [
    "AdditiveRmsState",
    "BeliefState",
    "GradientDifferenceState",
    "SlowMomentumState",
    "add_slow_momentum",
    "scale_by_additive_rms",
    "scale_by_gradient_difference",
    "scale_by_surprise_rms",
]

HyperOrSchedule = float | Callable[[jax.Array], Any]


# --- AdEMAMix ------------------------------------------------------------------------------


@describe(
    slow_mu="slow momentum: moving average of g with decay b3 (no bias correction), "
    "one array per parameter",
    count="steps taken so far (int32 scalar), the schedules' argument; None unless b3 or "
    "alpha is a schedule",
)
class SlowMomentumState(NamedTuple):
    slow_mu: Any
    count: Any


def add_slow_momentum(
    b3: HyperOrSchedule = 0.9999, alpha: HyperOrSchedule = 5.0, *, mu_dtype: Any = None
) -> GradientTransformation:
    r"""Add a slow momentum of the gradient to the update (AdEMAMix).

    Update:     m2_t = b3 * m2_{t-1} + (1 - b3) * g_t ;  u_t = u_t + alpha * m2_t
    State:      slow_mu -- like params, dtype ``mu_dtype``, starts at 0 (never bias-corrected:
                the paper lets it warm up through alpha's and b3's schedules instead).
                count (only when b3 or alpha is a schedule) -- int32 scalar.
                Memory: +1x params.
    Args:       b3 -- in [0, 1), or a schedule of the step count (0 at the first step).
                alpha -- >= 0, or a schedule.  mu_dtype -- storage dtype of slow_mu.
    Note:       Place it after ``bias_correct`` and before ``scale_by_rms``: AdEMAMix divides
                ``m1_hat + alpha * m2`` by Adam's denominator (see ``gradchain.ademamix``).
                Inside a named optimizer the schedules are evaluated once per optimizer, by
                its live hyperparameters, and this transform gets their values.
    Reference:  Pagliardini, Ablin & Grangier, "The AdEMAMix Optimizer: Better, Faster,
                Older", 2024, Algorithm 1.
    """
    _checks.check_schedule_or("b3", b3, _checks.check_unit_interval)
    _checks.check_schedule_or("alpha", alpha, _checks.check_non_negative)
    _checks.check_dtype("mu_dtype", mu_dtype)
    counted = callable(b3) or callable(alpha)

    def init(params):
        count = jnp.zeros([], jnp.int32) if counted else None
        return SlowMomentumState(slow_mu=tree_zeros_like(params, mu_dtype), count=count)

    def update(updates, state, params=None, *, gradient=None, **extra):
        grads = updates if gradient is None else gradient
        b3_now = b3(state.count) if callable(b3) else b3
        alpha_now = alpha(state.count) if callable(alpha) else alpha

        def step(u, g, m):
            c = compute_dtype(u.dtype, g.dtype, m.dtype)
            d, a = jnp.asarray(b3_now).astype(c), jnp.asarray(alpha_now).astype(c)
            m_new = d * m.astype(c) + (1 - d) * g.astype(c)
            return (u.astype(c) + a * m_new).astype(u.dtype), m_new.astype(m.dtype)

        out, slow_mu = tree_map_split(step, 2, updates, grads, state.slow_mu)
        count = increment(state.count) if counted else None
        return out, SlowMomentumState(slow_mu=slow_mu, count=count)

    return GradientTransformation(init, update, name="add_slow_momentum")


# --- Adan ----------------------------------------------------------------------------------


@describe(
    v="moving average of gradient differences g_t - g_{t-1}, one array per parameter",
    n="second moment of the extrapolated gradient g_t + (1 - b2) (g_t - g_{t-1}), "
    "one array per parameter",
    previous_gradient="the gradient of the previous step, one array per parameter",
    count="steps taken so far (int32 scalar), for bias correction",
)
class GradientDifferenceState(NamedTuple):
    v: Any
    n: Any
    previous_gradient: Any
    count: jax.Array


def scale_by_gradient_difference(
    b2: float = 0.92, b3: float = 0.99, eps: float = 1e-8, eps_root: float = 1e-8
) -> GradientTransformation:
    r"""Add Adan's momentum of gradient differences, then divide by its second moment.

    Update:     d_t = g_t - g_{t-1}  (0 at the first step)
                v_t = b2 * v_{t-1} + (1 - b2) * d_t
                n_t = b3 * n_{t-1} + (1 - b3) * |g_t + (1 - b2) * d_t|**2
                u_t = (u_t + (1 - b2) * v_hat) / (sqrt(n_hat + eps_root) + eps)
                (v_hat, n_hat: divided by 1 - b2**t and 1 - b3**t)
    State:      v, n, previous_gradient -- like params, start at 0.  count -- int32 scalar.
                Memory: +3x params.
    Args:       b2, b3 -- in [0, 1).  eps, eps_root -- >= 0.
    Note:       Place it after Adan's first moment and its ``bias_correct``: it divides
                ``m_hat + (1 - b2) v_hat`` as Optax's ``scale_by_adan`` does. The previous
                gradient is the price of the look-ahead: Adan never evaluates a gradient
                anywhere but at the current params.
    Reference:  Xie et al., "Adan: Adaptive Nesterov Momentum Algorithm for Faster
                Optimizing Deep Models", 2022, Algorithm 1.
    """
    _checks.check_unit_interval("b2", b2)
    _checks.check_unit_interval("b3", b3)
    _checks.check_non_negative("eps", eps)
    _checks.check_non_negative("eps_root", eps_root)

    def init(params):
        return GradientDifferenceState(
            v=tree_zeros_like(params),
            n=jax.tree.map(lambda p: jnp.zeros_like(p, moment_dtype(p)), params),
            previous_gradient=tree_zeros_like(params),
            count=jnp.zeros([], jnp.int32),
        )

    def update(updates, state, params=None, *, gradient=None, **extra):
        grads = updates if gradient is None else gradient
        first = state.count == 0
        count = increment(state.count)

        def step(u, g, v, n, g_prev):
            c, cr = compute_dtype(u.dtype, g.dtype, v.dtype), compute_dtype(n.dtype)
            b2_, b3_, t = jnp.asarray(b2, c), jnp.asarray(b3, cr), count.astype(cr)
            gc = g.astype(c)
            diff = jnp.where(first, 0, gc - g_prev.astype(c))
            v_new = b2_ * v.astype(c) + (1 - b2_) * diff
            n_new = b3_ * n.astype(cr) + (1 - b3_) * abs_sq(gc + (1 - b2_) * diff, cr)
            v_hat = v_new / (1 - b2_ ** t.astype(c))
            n_hat = n_new / (1 - b3_**t)
            denom = jnp.sqrt(n_hat + jnp.asarray(eps_root, cr)) + jnp.asarray(eps, cr)
            out = divide((u.astype(c) + (1 - b2_) * v_hat).astype(u.dtype), denom)
            return out, v_new.astype(v.dtype), n_new.astype(n.dtype), g.astype(g_prev.dtype)

        out, v, n, g_prev = tree_map_split(
            step, 4, updates, grads, state.v, state.n, state.previous_gradient
        )
        return out, GradientDifferenceState(v=v, n=n, previous_gradient=g_prev, count=count)

    return GradientTransformation(init, update, name="scale_by_gradient_difference")


# --- AdaBelief -----------------------------------------------------------------------------


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

    return GradientTransformation(init, update, name="scale_by_surprise_rms")


# --- Yogi ----------------------------------------------------------------------------------


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

    return GradientTransformation(init, update, name="scale_by_additive_rms")
