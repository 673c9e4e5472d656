"""Scalings that keep no moment: a constant factor, the learning rate (which keeps a step
count only when it is a schedule), and weight decay. Clipping is in ``clipping.py``, the
sign in ``sign.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import EmptyState, GradientTransformation, LearningRate, describe
from gradchain.transforms.moment_math import cast, compute_dtype, increment

__all__ = [
    "ScaleByScheduleState",
    "ScaleState",
    "AddDecayedWeightsState",
    "LearningRateState",
    "add_decayed_weights",
    "scale",
    "scale_by_learning_rate",
    "scale_by_schedule",
]


def _times(u: jax.Array, factor: Any) -> jax.Array:
    u = jnp.asarray(u)  # a Python-float leaf, as Optax's scale takes it
    c = compute_dtype(u.dtype)
    return cast(cast(u, c) * cast(factor, c), u.dtype)


def scale(step_size: float) -> GradientTransformation:
    r"""Multiply updates by a constant.

    Update:     u_t = step_size * u_t
    State:      none.   Memory: 0.
    """
    _checks.check_hyperparam("step_size", step_size)

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):
        return jax.tree.map(lambda u: _times(u, step_size), updates), state

    return GradientTransformation(init, update, name="scale", preprocessing=True)


def scale_by_learning_rate(
    learning_rate: LearningRate, *, flip_sign: bool = True
) -> GradientTransformation:
    r"""Multiply by -learning_rate: turn a direction into a descent step.

    Update:     u_t = -lr * u_t   (+lr with ``flip_sign=False``)
    State:      none for a number; a schedule is ``scale_by_schedule``'s (its count).
    Memory:     0x params.
    Args:       learning_rate -- a number >= 0, or a schedule: a function of the int32 step
                count (0 at the first step) returning a scalar.
                flip_sign -- False gives +lr (gradient ascent, or torch's maximize=True).
    Note:       Inside a named optimizer a schedule is evaluated once per optimizer, by its
                live hyperparameters (``gradchain.live``), and this transform gets the value.
    """
    _checks.check_learning_rate(learning_rate)
    sign = -1.0 if flip_sign else 1.0
    if callable(learning_rate):
        return scale_by_schedule(lambda count: sign * jnp.asarray(learning_rate(count)))

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):
        factor = sign * jnp.asarray(learning_rate)
        return jax.tree.map(lambda u: _times(u, factor), updates), state

    return GradientTransformation(init, update, name="scale_by_learning_rate", preprocessing=False)


@describe(count="steps taken so far (int32 scalar): the schedule's argument")
class LearningRateState(NamedTuple):
    count: jax.Array


def scale_by_schedule(step_size_fn: Callable[[jax.Array], Any]) -> GradientTransformation:
    r"""Multiply by a factor that a schedule gives for each step (Optax's ``scale_by_schedule``).

    Update:     u_t = step_size_fn(count) * u_t ;  count_t = count_{t-1} + 1 (0 at the first step)
    State:      count -- int32 scalar.   Memory: one scalar.
    Args:       step_size_fn -- a function of the int32 step count returning a scalar.
    """
    if not callable(step_size_fn) or isinstance(step_size_fn, type):
        raise _checks.GradchainError(
            f"scale_by_schedule takes a function of the step count, got {step_size_fn!r}"
        )

    def init(params):
        return LearningRateState(count=jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, **extra):
        factor = jnp.asarray(step_size_fn(state.count))
        if factor.shape != ():
            raise _checks.GradchainError(
                f"the learning-rate schedule returned shape {factor.shape} at a step; "
                "a schedule must return a scalar"
            )
        out = jax.tree.map(lambda u: _times(u, factor), updates)
        return out, LearningRateState(count=increment(state.count))

    return GradientTransformation(init, update, name="scale_by_schedule", preprocessing=False)


def add_decayed_weights(weight_decay: float = 0.0, mask: Any = None) -> GradientTransformation:
    r"""Add ``weight_decay * params`` to the update.

    Update:     u_t = u_t + weight_decay * p_t
    State:      none.   Memory: 0.
    Args:       weight_decay -- >= 0.  mask -- (Optax's keyword) a tree of bools shaped like
                the params, or a function of the params returning one: only leaves marked
                True are decayed (``gradchain.masked`` around this transform).
    Note:       Its position in a chain is the whole difference between L2 regularisation and
                decoupled weight decay. Before the preconditioner (first in the chain) it is
                L2: the decay enters the gradient and is rescaled by Adam's 1/sqrt(nu). After
                it (just before the learning rate) it is AdamW's decoupled decay.
    Reference:  Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019.
    """
    _checks.check_non_negative("weight_decay", weight_decay)
    if mask is not None:
        from gradchain.combine.masks import masked

        return masked(add_decayed_weights(weight_decay), mask)

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):
        if params is None:
            _checks.refuse_missing_params("add_decayed_weights")
        params = _checks.none_covers(updates, params)  # a None update stays None, as in Optax
        _checks.check_same_structure("updates", updates, "params", params)

        def decay(u, p):
            if u is None:
                return None
            c = compute_dtype(u.dtype, jnp.result_type(p))
            return cast(cast(u, c) + cast(weight_decay, c) * cast(p, c), u.dtype)

        return jax.tree.map(decay, updates, params, is_leaf=lambda x: x is None), state

    return GradientTransformation(init, update, name="add_decayed_weights", preprocessing=True)

ScaleByScheduleState = LearningRateState  # Optax's name; same field `count`
ScaleState = EmptyState  # Optax's name: scale keeps no state
AddDecayedWeightsState = EmptyState  # Optax's name: add_decayed_weights keeps no state
