"""First moments: momentum in its heavy-ball and EMA forms (and Optax's ``trace`` and
``ema``, torch's SGD momentum as ``scale_by_sgd_momentum``), bias correction (and NAdam's
scheduled form), Lion's momentum, AdEMAMix's slow momentum and Adan's gradient difference."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import (
    GradientTransformation,
    ScalarOrSchedule,
    chain,
    describe,
    hyperparam_dtype,
    tree_map_split,
    tree_zeros_like,
)
from gradchain.transforms.moment_math import (
    abs_sq,
    accumulator_zeros,
    cast,
    compute_dtype,
    divide,
    increment,
    moment_zeros,
    scalar_dtype,
)

__all__ = [
    "TraceState",
    "BiasCorrectState",
    "GradientDifferenceState",
    "LionMomentumState",
    "MomentumState",
    "NadamScheduleState",
    "SgdMomentumState",
    "ScaleByAdemamixState",
    "SlowMomentumState",
    "add_slow_momentum",
    "bias_correct",
    "bias_correct_nadam",
    "ema",
    "scale_by_gradient_difference",
    "scale_by_lion_momentum",
    "scale_by_momentum",
    "scale_by_sgd_momentum",
    "trace",
]


@describe(mu="velocity: running (weighted) sum of the incoming updates, one array per parameter")
class MomentumState(NamedTuple):
    mu: Any


def scale_by_momentum(
    decay: float = 0.9, *, ema: bool = False, nesterov: bool = False, mu_dtype: Any = None
) -> GradientTransformation:
    r"""Accumulate a velocity and emit it.

    Update:     mu_t = decay * mu_{t-1} + c * u_t ;  emit mu_t
                nesterov: emit decay * mu_t + c * u_t (look ahead along the new velocity)
                c = 1 (heavy ball, ``ema=False``) or 1 - decay (moving average, ``ema=True``)
    State:      mu -- same tree and shapes as params, dtype ``mu_dtype`` (default: the
                params'), starts at 0.   Memory: +1x params.
    Args:       decay -- in [0, 1).  ema -- average instead of sum.  nesterov -- look ahead.
                mu_dtype -- storage dtype of mu (e.g. jnp.bfloat16 to halve its bytes).
    Note:       heavy ball with nesterov is Optax's ``trace(nesterov=True)`` and
                torch.optim.SGD(nesterov=True) (both: g + decay * buf).
    Reference:  Polyak, 1964; Sutskever et al., 2013 (Nesterov form).
    """
    _checks.check_unit_interval("decay", decay)
    return _velocity(decay, ema, nesterov, mu_dtype)


def _velocity(decay: Any, ema: bool, nesterov: bool, mu_dtype: Any) -> GradientTransformation:
    """``scale_by_momentum`` without the check of ``decay`` (``trace`` allows decay = 1)."""
    _checks.check_dtype("mu_dtype", mu_dtype)

    def init(params):
        return MomentumState(mu=accumulator_zeros(params, mu_dtype))

    def update(updates, state, params=None, **extra):
        d = jnp.asarray(decay, scalar_dtype(updates, state.mu))  # >= float32, once per step
        weight = 1 - d if ema else jnp.ones_like(d)  # of the new update

        def step(u, mu):
            c = compute_dtype(u.dtype, mu.dtype)
            new_term = cast(weight, c) * cast(u, c)
            mu_new = cast(d, c) * cast(mu, c) + new_term
            out = cast(d, c) * mu_new + new_term if nesterov else mu_new
            return cast(out, u.dtype), cast(mu_new, mu.dtype)

        out, mu = tree_map_split(step, 2, updates, state.mu)
        return out, MomentumState(mu=mu)

    return GradientTransformation(init, update, name="scale_by_momentum", preprocessing=False)


@describe(count="steps taken so far (int32 scalar)")
class BiasCorrectState(NamedTuple):
    count: jax.Array


def bias_correct(decay: float = 0.9, *, nesterov: bool = False) -> GradientTransformation:
    r"""Undo the zero start of an exponential moving average.

    Update:     u_t = u_t / (1 - decay**t)
                nesterov (NAdam): u_t = decay * u_t / (1 - decay**(t+1))
                                        + (1 - decay) * g_t / (1 - decay**t)
    State:      count -- int32 scalar.   Memory: one scalar.
    Args:       decay -- the decay of the EMA that produced u, in [0, 1).
                nesterov -- NAdam's look-ahead; reads the gradient g (see ``chain``).
    Reference:  Kingma & Ba, 2015, section 3; Dozat, 2016 (NAdam).
    """
    _checks.check_unit_interval("decay", decay)

    def init(params):
        return BiasCorrectState(count=jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, *, gradient=None, **extra):
        count = increment(state.count)
        grads = updates if gradient is None else gradient
        d, t = (jnp.asarray(x, scalar_dtype(updates)) for x in (decay, count))
        correction = 1 - d**t  # and NAdam's look-ahead: d / (1 - d**(t+1)), (1 - d) / (1 - d**t)
        ahead, now = (d / (1 - d ** (t + 1)), (1 - d) / correction) if nesterov else (None, None)

        def correct(u, g):
            c = compute_dtype(u.dtype)
            if not nesterov:
                return cast(cast(u, c) / cast(correction, c), u.dtype)
            return cast(cast(ahead, c) * cast(u, c) + cast(now, c) * cast(g, c), u.dtype)

        return jax.tree.map(correct, updates, grads), BiasCorrectState(count=count)

    return GradientTransformation(init, update, name="bias_correct", preprocessing=False)


@describe(mu="momentum: moving average of gradients with decay b2, one array per parameter")
class LionMomentumState(NamedTuple):
    mu: Any


def scale_by_lion_momentum(
    b1: float = 0.9, b2: float = 0.99, *, mu_dtype: Any = None
) -> GradientTransformation:
    r"""Lion's two-speed momentum: emit one interpolation, store another.

    Update:     emit c_t = b1 * mu_{t-1} + (1 - b1) * u_t ;  mu_t = b2 * mu_{t-1} + (1 - b2) * u_t
    State:      mu -- like params, dtype ``mu_dtype``, starts at 0.   Memory: +1x params.
    Args:       b1, b2 -- in [0, 1).  Follow it with ``scale_by_sign()`` for Lion.
    Reference:  Chen et al., "Symbolic Discovery of Optimization Algorithms", 2023.
    """
    _checks.check_unit_interval("b1", b1)
    _checks.check_unit_interval("b2", b2)
    _checks.check_dtype("mu_dtype", mu_dtype)

    def init(params):
        return LionMomentumState(mu=accumulator_zeros(params, mu_dtype))

    def update(updates, state, params=None, **extra):
        def step(u, mu):
            c = compute_dtype(u.dtype, mu.dtype)
            b1_, b2_, uc, mc = jnp.asarray(b1, c), jnp.asarray(b2, c), u.astype(c), mu.astype(c)
            out = b1_ * mc + (1 - b1_) * uc
            return out.astype(u.dtype), (b2_ * mc + (1 - b2_) * uc).astype(mu.dtype)

        out, mu = tree_map_split(step, 2, updates, state.mu)
        return out, LionMomentumState(mu=mu)

    return GradientTransformation(init, update, name="scale_by_lion_momentum", preprocessing=False)


@_checks.names_arguments
def trace(
    decay: float, nesterov: bool = False, accumulator_dtype: Any = None
) -> GradientTransformation:
    r"""Heavy-ball momentum: ``trace = decay * trace + u`` (Optax's ``trace``).

    It is ``scale_by_momentum(decay, nesterov=nesterov, mu_dtype=accumulator_dtype)``; the
    slot is called ``mu`` (Optax: ``trace``).   Memory: +1x params.
    Unlike ``scale_by_momentum``, decay = 1 is allowed, as in Optax: a plain running sum of
    the updates (decay in [0, 1]).
    """
    _checks.check_closed_unit_interval("decay", decay)
    return _velocity(decay, False, nesterov, accumulator_dtype)


@_checks.names_arguments
def ema(decay: float, debias: bool = True, accumulator_dtype: Any = None) -> GradientTransformation:
    r"""Exponential moving average of the updates, bias-corrected unless ``debias=False``.

    Update:     mu_t = decay mu_{t-1} + (1 - decay) u_t ;  u_t = mu_t / (1 - decay**t)
    State:      mu (Optax: ``ema``), count (with ``debias``).   Memory: +1x params.
    """
    average = scale_by_momentum(decay, ema=True, mu_dtype=accumulator_dtype)  # (+1x params)
    return chain(average, bias_correct(decay)) if debias else average


@describe(
    slow_mu="slow momentum: moving average of g with decay b3 (no bias correction), "
    "one array per parameter",
    count="steps taken so far (int32 scalar), the schedules' argument; None unless b3 or "
    "alpha is a schedule",
)
class SlowMomentumState(NamedTuple):
    slow_mu: Any
    count: Any


# Optax's name (contrib.ScaleByAdemamixState: count, count_m2, m1, m2, nu, one tuple).
# gradchain's scale_by_ademamix is a chain: this is the slot AdEMAMix adds (slow_mu is Optax's
# m2); m1 is the chain's MomentumState.mu, nu its RmsState.nu.
ScaleByAdemamixState = SlowMomentumState

def add_slow_momentum(
    b3: ScalarOrSchedule = 0.9999, alpha: ScalarOrSchedule = 5.0, *, mu_dtype: Any = None
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
        return SlowMomentumState(slow_mu=accumulator_zeros(params, mu_dtype), count=count)

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

    return GradientTransformation(init, update, name="add_slow_momentum", preprocessing=False)


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
            v=accumulator_zeros(params),
            n=moment_zeros(params),
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

    return GradientTransformation(init, update, name="scale_by_gradient_difference", preprocessing=False)


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
        mu = accumulator_zeros(params, mu_dtype)
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

    return GradientTransformation(init, update, name="scale_by_sgd_momentum", preprocessing=False)


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

    return GradientTransformation(init, update, name="bias_correct_nadam", preprocessing=False)

TraceState = MomentumState  # trace's state; Optax calls the field `trace`, gradchain `mu`
