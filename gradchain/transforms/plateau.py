"""Reduce on plateau: scale the updates down when the loss stops improving."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import GradientTransformation, describe, hyperparam_dtype
from gradchain.transforms.moment_math import increment

__all__ = [
    "ReduceLROnPlateauState",
    "reduce_on_plateau",
]


@describe(
    scale="the factor applied to the updates now (starts at 1)",
    best_value="the best (lowest) averaged value so far (starts at +inf)",
    plateau_count="averaged values in a row without improvement (int32 scalar)",
    cooldown_count="averaged values still to ignore after a reduction (int32 scalar)",
    count="values accumulated into avg_value so far (int32 scalar, < accumulation_size)",
    avg_value="the mean of the values accumulated so far",
)
class ReduceLROnPlateauState(NamedTuple):
    scale: jax.Array
    best_value: jax.Array
    plateau_count: jax.Array
    cooldown_count: jax.Array
    count: jax.Array
    avg_value: jax.Array


def _check_count(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, jax.core.Tracer):  # a traced integer is checked by its maker
        _checks.check_int(name, value, minimum=minimum)


def reduce_on_plateau(
    factor: float = 0.1,
    patience: int = 10,
    rtol: float = 1e-4,
    atol: float = 0.0,
    cooldown: int = 0,
    accumulation_size: int = 1,
    min_scale: float = 0.0,
) -> GradientTransformation:
    r"""Multiply the updates by a scale that drops by ``factor`` when ``value`` plateaus.

    Update:     avg <- mean of the last ``accumulation_size`` values (extra arg ``value``);
                once it is full:  improved = avg < (1 - rtol) * best - atol;
                  improved: best <- avg, plateau <- 0;  else plateau <- plateau + 1
                  in cooldown (cooldown_count > 0): plateau <- 0, cooldown_count - 1
                  else, when plateau == patience: scale <- max(scale * factor, min_scale),
                  plateau <- 0, cooldown_count <- cooldown
                emit scale * u_t (the new scale, this very step)
    State:      scale, best_value, avg_value -- float32 scalars (float64 under x64);
                plateau_count, cooldown_count, count -- int32 scalars.   Memory: 6 scalars.
    Args:       factor -- in (0, 1).  patience, cooldown -- integers >= 0.
                accumulation_size -- integer >= 1 (1: ``value`` is already a validation
                loss; more: average minibatch losses first).  rtol -- in [0, 1], atol --
                >= 0, not both 0.  min_scale -- >= 0.  The integers may be traced.
    Extra args: value -- the objective (``update(u, s, params, value=loss)``), required.
    Note:       Put it after the learning rate (``chain(adam(lr), reduce_on_plateau())``);
                read the scale with ``state[-1].scale``. jit-safe: the decision is a
                ``lax.cond`` on traced values. Optax's ``contrib.reduce_on_plateau``, same
                arguments, state fields and arithmetic; Optax keeps the scale in the params'
                lowest dtype and the values in their highest, here they are float32 (float64
                under x64), so bfloat16 params do not round the scale.
    Reference:  torch.optim.lr_scheduler.ReduceLROnPlateau; Optax ``contrib``.
    """
    _checks.check_hyperparam("factor", factor)
    x = _checks._concrete(factor)
    if x is not None and not 0.0 < x < 1.0:
        raise _checks.GradchainError(f"factor must be in (0, 1), got {x}")
    _check_count("patience", patience, 0)
    _checks.check_closed_unit_interval("rtol", rtol)
    _checks.check_non_negative("atol", atol)
    if _checks._concrete(rtol) == 0.0 and _checks._concrete(atol) == 0.0:
        raise _checks.GradchainError("rtol and atol must not both be 0: nothing would improve")
    _check_count("cooldown", cooldown, 0)
    _check_count("accumulation_size", accumulation_size, 1)
    _checks.check_non_negative("min_scale", min_scale)

    def init(params):
        h = hyperparam_dtype()
        return ReduceLROnPlateauState(
            scale=jnp.ones([], h),
            best_value=jnp.full([], jnp.inf, h),
            plateau_count=jnp.zeros([], jnp.int32),
            cooldown_count=jnp.zeros([], jnp.int32),
            count=jnp.zeros([], jnp.int32),
            avg_value=jnp.zeros([], h),
        )

    def judge(state):
        h = state.best_value.dtype
        improved = state.avg_value < (1 - jnp.asarray(rtol, h)) * state.best_value - jnp.asarray(
            atol, h
        )
        best = jnp.where(improved, state.avg_value, state.best_value)
        plateau = jnp.where(improved, 0, increment(state.plateau_count))
        reduce = plateau == patience
        cooling = state.cooldown_count > 0
        scale = jnp.maximum(
            jnp.where(reduce, state.scale * jnp.asarray(factor, h), state.scale),
            jnp.asarray(min_scale, h),
        )
        return ReduceLROnPlateauState(
            scale=jnp.where(cooling, state.scale, scale),
            best_value=best,
            plateau_count=jnp.where(cooling | reduce, 0, plateau).astype(jnp.int32),
            cooldown_count=jnp.where(
                cooling, state.cooldown_count - 1, jnp.where(reduce, cooldown, 0)
            ).astype(jnp.int32),
            count=jnp.zeros([], jnp.int32),
            avg_value=jnp.zeros([], h),
        )

    def update(updates, state, params=None, *, value=None, **extra):
        if value is None:
            raise _checks.GradchainError(
                "reduce_on_plateau reads the objective: give update(updates, state, params, "
                "value=loss)"
            )
        h = state.avg_value.dtype
        count = increment(state.count)
        avg = (
            state.count.astype(h) * state.avg_value + jnp.asarray(value).astype(h)
        ) / count.astype(h)
        state = state._replace(avg_value=avg.astype(h), count=count)
        state = jax.lax.cond(count == accumulation_size, judge, lambda s: s, state)
        out = jax.tree.map(lambda u: (state.scale.astype(u.dtype) * u).astype(u.dtype), updates)
        return out, state

    return GradientTransformation(init, update, name="reduce_on_plateau", preprocessing=False)
