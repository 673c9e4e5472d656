"""First moments: momentum in its heavy-ball and EMA forms, bias correction, Lion's momentum."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import GradientTransformation, describe, tree_map_split, tree_zeros_like
from gradchain.transforms.moment_math import cast, compute_dtype, increment, scalar_dtype

__all__ = [
    "BiasCorrectState",
    "LionMomentumState",
    "MomentumState",
    "bias_correct",
    "scale_by_lion_momentum",
    "scale_by_momentum",
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
    _checks.check_dtype("mu_dtype", mu_dtype)

    def init(params):
        return MomentumState(mu=tree_zeros_like(params, mu_dtype))

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

    return GradientTransformation(init, update, name="scale_by_momentum")


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

    return GradientTransformation(init, update, name="bias_correct")


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
        return LionMomentumState(mu=tree_zeros_like(params, mu_dtype))

    def update(updates, state, params=None, **extra):
        def step(u, mu):
            c = compute_dtype(u.dtype, mu.dtype)
            b1_, b2_, uc, mc = jnp.asarray(b1, c), jnp.asarray(b2, c), u.astype(c), mu.astype(c)
            out = b1_ * mc + (1 - b1_) * uc
            return out.astype(u.dtype), (b2_ * mc + (1 - b2_) * uc).astype(mu.dtype)

        out, mu = tree_map_split(step, 2, updates, state.mu)
        return out, LionMomentumState(mu=mu)

    return GradientTransformation(init, update, name="scale_by_lion_momentum")
