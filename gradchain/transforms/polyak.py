"""Polyak's step size: how far to step, read from how far the objective is above its minimum.

Family: Polyak steps. ``scale_by_polyak`` scales the gradient by it; MoMo (``scale_by_momo``,
``scale_by_momo_adam``) builds a model of the loss from momentum averages of the values, the
gradients and <g, x>, and takes the Polyak step on that model, capped by the learning rate.
The MoMo transforms take the learning rate and the weight decay themselves (the step depends
on both) and emit the whole step with its sign: they end a chain (``optimizers/polyak.py``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.errors import ArgumentError
from gradchain.base import (
    EmptyState,
    GradientTransformation,
    LearningRate,
    describe,
    tree_map_split,
)
from gradchain.transforms.moment_math import abs_sq, cast, compute_dtype, increment, scalar_dtype

__all__ = [
    "MomoAdamState",
    "MomoState",
    "scale_by_momo",
    "scale_by_momo_adam",
    "scale_by_polyak",
]

_TINY = float(jnp.finfo(jnp.float64).eps)  # Optax's guard: below it, no step


def scale_by_polyak(
    f_min: float = 0.0, max_learning_rate: float = 1.0, eps: float = 0.0, variant: str = "sps"
) -> GradientTransformation:
    r"""Scale the update by the Polyak step (f - f_min) / ||u||**2, capped.

    Update:     gap = value - f_min   (``sps+``: max(gap, 0))
                u_t = min(gap / (||u||**2 + eps), max_learning_rate) * u_t, and 0 when
                ||u||**2 + eps <= 2.2e-16 (float64's eps, as Optax)
    State:      none.   Memory: 0.
    Args:       f_min -- a lower bound on the objective (0 for interpolating models).
                max_learning_rate -- >= 0, the cap.  eps -- >= 0.  variant -- "sps" or "sps+".
    Extra args: value -- the objective at the params (``update(u, s, p, value=f(p))``).
    Note:       Optax's ``scale_by_polyak``. ||u|| is the norm over the whole tree.
    Reference:  Polyak, "Introduction to Optimization", 1987; Loizou et al., "Stochastic
                Polyak Step-size for SGD", AISTATS 2021 (SPS, SPS+ as SPS_max's variants).
    """
    _checks.check_hyperparam("f_min", f_min)
    _checks.check_non_negative("max_learning_rate", max_learning_rate)
    _checks.check_non_negative("eps", eps)
    _checks.check_choice("variant", variant, ("sps", "sps+"))

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, *, value=None, **extra):
        if value is None:
            raise ArgumentError(
                "scale_by_polyak needs the objective's value: update(updates, state, params, "
                "value=f(params))"
            )
        leaves = jax.tree.leaves(updates)
        h = compute_dtype(*(u.dtype for u in leaves))
        sq_norm = sum((jnp.sum(abs_sq(u, h)) for u in leaves), jnp.zeros([], h))
        gap = jnp.asarray(value).astype(h) - jnp.asarray(f_min, h)
        if variant == "sps+":
            gap = jnp.maximum(gap, 0)
        denom = sq_norm + jnp.asarray(eps, h)
        step = jnp.minimum(gap / denom, jnp.asarray(max_learning_rate, h))
        step = jnp.where(denom <= _TINY, jnp.zeros([], h), step)

        def scaled(u):
            c = compute_dtype(u.dtype)
            return (step.astype(c) * u.astype(c)).astype(u.dtype)

        return jax.tree.map(scaled, updates), state

    return GradientTransformation(init, update, name="scale_by_polyak", preprocessing=False)


# --- MoMo: the Polyak step on a momentum model of the loss ---------------------------------


def _vdot(a: Any, b: Any, dtype: Any) -> jax.Array:
    """<a, b> over every leaf, in ``dtype`` (at least the leaves' compute dtype)."""
    total = jnp.zeros([], dtype)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        c = compute_dtype(x.dtype, y.dtype, dtype)
        total = total + jnp.sum(cast(x, c) * cast(y, c)).astype(dtype)
    return total


def _needs_value_and_params(who: str, value: Any, params: Any) -> None:
    if params is None:
        _checks.refuse_missing_params(who)
    if value is None:
        raise ArgumentError(
            f"{who} needs the objective's value: update(updates, state, params, value=f(params))"
        )


def _momo_step(lr, weight_decay, lower_bound, adapt, barf, gamma, lb, iprod, norm, bc1, c):
    """The Polyak step tau on the model, and the lower bound for the next step (Schaipp et
    al., Algorithm 1 and 3); ``bc1`` is 1 for MoMo, Adam's 1 - b1**t for MoMo-Adam."""
    lr, wd, lb0 = jnp.asarray(lr, c), jnp.asarray(weight_decay, c), jnp.asarray(lower_bound, c)
    shrink = 1 + lr * wd
    this_lb = lb
    if adapt:  # reset the bound where the model already sits below it
        cap = shrink * (barf - gamma) + iprod
        this_lb = jnp.where(cap < shrink * bc1 * lb, jnp.maximum(cap / (2 * bc1 * shrink), lb0), lb)
    gap = jnp.maximum(shrink * (barf - bc1 * this_lb - gamma) + iprod, 0)
    tau = jnp.where(norm <= _TINY, jnp.zeros([], c), gap / jnp.where(norm <= _TINY, 1, norm))
    tau = jnp.minimum(lr / bc1, tau)
    new_lb = jnp.maximum((barf + iprod - gamma - tau * norm / 2) / bc1, lb0) if adapt else lb
    return tau, new_lb, lr * wd / shrink


@describe(
    exp_avg="momentum of the gradients (like params; the first step takes g itself)",
    barf="momentum of the objective's values (a scalar, >= float32)",
    gamma="momentum of <g, x> (a scalar, >= float32)",
    lb="the lower bound on the objective in use (a scalar; moves with adapt_lower_bound)",
    count="steps taken so far (int32 scalar)",
)
class MomoState(NamedTuple):
    exp_avg: Any
    barf: jax.Array
    gamma: jax.Array
    lb: jax.Array
    count: jax.Array


def scale_by_momo(
    learning_rate: LearningRate = 1.0,
    beta: float = 0.9,
    lower_bound: float = 0.0,
    weight_decay: float = 0.0,
    adapt_lower_bound: bool = False,
) -> GradientTransformation:
    r"""MoMo's step: SGD with momentum whose step size is the Polyak step of a momentum model.

    Update:     b = 0 at the first step, beta after; d = m_t, averages with weight b:
                f_bar = b f_bar + (1 - b) f(x_t) ;  m_t = b m + (1 - b) g ;  gamma = b gamma +
                (1 - b) <g, x_t> ;  h = 1 + lr * wd
                tau = min(lr, max(h (f_bar - lb - gamma) + <m_t, x_t>, 0) / ||m_t||**2)
                (0 when ||m_t||**2 <= 2.2e-16);  emit -(lr wd / h) x_t - tau m_t
    State:      exp_avg (+1x params), barf, gamma, lb, count.   Memory: +1x params.
    Args:       learning_rate -- the cap on tau (a number: the optimizer evaluates a schedule).
                beta -- in [0, 1).  lower_bound -- a lower bound on the objective.
                weight_decay -- >= 0.  adapt_lower_bound -- estimate the bound on the fly.
    Extra args: value -- the objective at the params (``update(g, s, p, value=f(p))``).
    Note:       Optax's ``contrib.momo`` step for step. Ends a chain: the step has its sign.
    Reference:  Schaipp, Ohana, Eickenberg, Defazio & Gower, "MoMo: Momentum Models for
                Adaptive Learning Rates", ICML 2024.
    """
    _checks.check_learning_rate(learning_rate)
    _checks.check_closed_unit_interval("beta", beta)
    _checks.check_hyperparam("lower_bound", lower_bound)
    _checks.check_non_negative("weight_decay", weight_decay)

    def init(params):
        c = scalar_dtype(params)
        return MomoState(  # every leaf its own buffer: donation fails on aliased state
            jax.tree.map(jnp.zeros_like, params), jnp.zeros([], c), jnp.zeros([], c),
            jnp.asarray(lower_bound, c),
            jnp.zeros([], jnp.int32),
        )

    def update(updates, state, params=None, *, value=None, **extra):
        _needs_value_and_params("scale_by_momo", value, params)
        _checks.check_same_structure("updates", updates, "params", params)
        c = state.barf.dtype
        b = jnp.where(state.count == 0, jnp.zeros([], c), jnp.asarray(beta, c))
        barf = b * state.barf + (1 - b) * jnp.asarray(value).astype(c)

        def average(m, g):
            k = compute_dtype(m.dtype, g.dtype, c)
            return cast(b.astype(k) * cast(m, k) + (1 - b).astype(k) * cast(g, k), m.dtype)

        exp_avg = jax.tree.map(average, state.exp_avg, updates)
        gamma = b * state.gamma + (1 - b) * _vdot(updates, params, c)
        norm, iprod = _vdot(exp_avg, exp_avg, c), _vdot(exp_avg, params, c)
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        tau, lb, decay = _momo_step(
            lr, weight_decay, lower_bound, adapt_lower_bound, barf, gamma, state.lb, iprod, norm,
            jnp.ones([], c), c,
        )

        def step(m, p):
            k = compute_dtype(m.dtype, p.dtype, c)
            return cast(-decay.astype(k) * cast(p, k) - tau.astype(k) * cast(m, k), m.dtype)

        out = jax.tree.map(step, exp_avg, params)
        return out, MomoState(exp_avg, barf, gamma, lb, increment(state.count))

    return GradientTransformation(init, update, name="scale_by_momo", preprocessing=False)


@describe(
    exp_avg="first moment of the gradients (like params)",
    exp_avg_sq="second moment of the gradients (like params)",
    barf="momentum of the objective's values (a scalar, >= float32)",
    gamma="momentum of <g, x> (a scalar, >= float32)",
    lb="the lower bound on the objective in use (a scalar; moves with adapt_lower_bound)",
    count="steps taken so far (int32 scalar)",
)
class MomoAdamState(NamedTuple):
    exp_avg: Any
    exp_avg_sq: Any
    barf: jax.Array
    gamma: jax.Array
    lb: jax.Array
    count: jax.Array


def scale_by_momo_adam(
    learning_rate: LearningRate = 1e-2,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    lower_bound: float = 0.0,
    weight_decay: float = 0.0,
    adapt_lower_bound: bool = False,
) -> GradientTransformation:
    r"""MoMo-Adam's step: Adam whose step size is the Polyak step of a momentum model.

    Update:     m, v: Adam's moments (b1, b2); f_bar, gamma: b1-averages of f and <g, x>;
                D = eps + sqrt(v / (1 - b2**t)) ;  n = <m, m / D> ;  c1 = 1 - b1**t ;  h = 1 + lr wd
                tau = min(lr / c1, max(h (f_bar - c1 lb - gamma) + <m, x>, 0) / n)
                emit -(lr wd / h) x - tau m / D
    State:      exp_avg, exp_avg_sq (+2x params), barf, gamma, lb, count.   Memory: +2x params.
    Extra args: value -- the objective at the params.
    Note:       Optax's ``contrib.momo_adam`` step for step. Ends a chain.
    Reference:  Schaipp et al., "MoMo: Momentum Models for Adaptive Learning Rates", ICML 2024.
    """
    _checks.check_learning_rate(learning_rate)
    _checks.check_unit_interval("b1", b1)
    _checks.check_unit_interval("b2", b2)
    _checks.check_non_negative("eps", eps)
    _checks.check_hyperparam("lower_bound", lower_bound)
    _checks.check_non_negative("weight_decay", weight_decay)

    def init(params):
        c = scalar_dtype(params)
        zeros = lambda: jax.tree.map(jnp.zeros_like, params)  # noqa: E731
        return MomoAdamState(  # every leaf its own buffer: donation fails on aliased state
            zeros(), zeros(), jnp.zeros([], c), jnp.zeros([], c), jnp.asarray(lower_bound, c),
            jnp.zeros([], jnp.int32),
        )

    def update(updates, state, params=None, *, value=None, **extra):
        _needs_value_and_params("scale_by_momo_adam", value, params)
        _checks.check_same_structure("updates", updates, "params", params)
        c = state.barf.dtype
        t = increment(state.count)
        d1, d2 = jnp.asarray(b1, c), jnp.asarray(b2, c)
        barf = d1 * state.barf + (1 - d1) * jnp.asarray(value).astype(c)

        def moments(m, v, g):
            k = compute_dtype(m.dtype, g.dtype, c)
            gk = cast(g, k)
            m = d1.astype(k) * cast(m, k) + (1 - d1).astype(k) * gk
            v = d2.astype(k) * cast(v, k) + (1 - d2).astype(k) * gk * gk
            return m, v

        m_k, v_k = tree_map_split(moments, 2, state.exp_avg, state.exp_avg_sq, updates)
        bc2 = 1 - d2 ** t.astype(c)
        denom = jax.tree.map(
            lambda v: jnp.asarray(eps, v.dtype) + jnp.sqrt(v / bc2.astype(v.dtype)), v_k
        )
        weighted = jax.tree.map(lambda m, d: m / d, m_k, denom)
        norm = _vdot(m_k, weighted, c)
        gamma = d1 * state.gamma + (1 - d1) * _vdot(updates, params, c)
        iprod = _vdot(m_k, params, c)
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        tau, lb, decay = _momo_step(
            lr, weight_decay, lower_bound, adapt_lower_bound, barf, gamma, state.lb, iprod, norm,
            1 - d1 ** t.astype(c), c,
        )

        def step(w, p, like):
            k = w.dtype
            return cast(-decay.astype(k) * cast(p, k) - tau.astype(k) * w, like.dtype)

        out = jax.tree.map(step, weighted, params, updates)
        keep = lambda new, old: jax.tree.map(lambda n, o: cast(n, o.dtype), new, old)  # noqa: E731
        return out, MomoAdamState(
            keep(m_k, state.exp_avg), keep(v_k, state.exp_avg_sq), barf, gamma, lb, t
        )

    return GradientTransformation(init, update, name="scale_by_momo_adam", preprocessing=False)
