"""torch's cycled momentum (``OneCycleLR`` / ``CyclicLR`` with ``cycle_momentum=True``): a
transform whose number is set afresh before each step, as torch's scheduler sets
``param_group["momentum"]`` or ``param_group["betas"][0]``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain.base import (
    GradientTransformation,
    describe,
    is_preprocessing,
    reads_gradient_keyword,
)
from gradchain.transforms.moment_math import increment

__all__ = ["ScheduledValueState", "idle_unless", "with_scheduled_value"]


@describe(
    count="steps taken so far (int32 scalar): the schedule's argument",
    inner="the state of the transform inside, built with the schedule's value",
)
class ScheduledValueState(NamedTuple):
    count: jax.Array
    inner: Any


def with_scheduled_value(
    make: Callable[[Any], GradientTransformation], schedule: Callable[[Any], Any]
) -> GradientTransformation:
    r"""``make(schedule(t))`` at step t: one number of a transform follows a schedule.

    Update:     u, inner <- make(v_t).update(u, inner),  v_t = schedule(t), t = 0 first
    State:      count, and the inner transform's state (``ScheduledValueState``).
                Memory: the inner transform's.
    Note:       ``make``'s state must not depend on the value (it is built once for init, with
                v_0). torch's cycled beta1 enters Adam's bias correction as beta1_t ** t, with
                today's beta1: wrapping both ``scale_by_momentum`` and ``bias_correct`` gives it.
    """

    def init(params):
        return ScheduledValueState(jnp.zeros([], jnp.int32), make(schedule(0)).init(params))

    def update(updates, state, params=None, **extra):
        inner = make(schedule(state.count))
        out, new = inner.update(updates, state.inner, params, **extra)
        return out, ScheduledValueState(increment(state.count), new)

    example = make(schedule(0))
    return GradientTransformation(
        init,
        update,
        name=f"scheduled({example.name})",
        preprocessing=is_preprocessing(example),  # what it wraps decides
        reads_gradient=reads_gradient_keyword(example),
    )


def idle_unless(
    transform: GradientTransformation, value: Any, active: Callable[[jax.Array], jax.Array]
) -> GradientTransformation:
    r"""``transform``, skipped at a step where ``active(value)`` is false.

    Update:     active(value): u, s <- transform.update(u, s) ;  else u and s unchanged
    State:      the transform's.   Memory: the transform's.
    Note:       torch reads a cycled momentum afresh each step and tests it there: SGD takes
                its buffer only ``if momentum != 0`` (the buffer stays as it was, or absent,
                and the step is the gradient), RMSprop ``if momentum > 0``. ``value`` is the
                step's (traced) number: the choice is a ``jnp.where``, both sides computed.
    """

    def update(updates, state, params=None, **extra):
        out, new = transform.update(updates, state, params, **extra)
        on = active(jnp.asarray(value))
        out = jax.tree.map(lambda o, u: jnp.where(on, o, u.astype(o.dtype)), out, updates)
        new = jax.tree.map(lambda n, s: jnp.where(on, n, s), new, state)
        return out, new

    return GradientTransformation(
        transform.init,
        update,
        name=transform.name,
        preprocessing=is_preprocessing(transform),
        reads_gradient=reads_gradient_keyword(transform),
    )
