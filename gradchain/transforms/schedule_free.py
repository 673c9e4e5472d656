"""Schedule-free learning: no decay schedule to choose, because the iterate is an average.

Three sequences share two arrays: ``z`` (the base optimizer's own iterate, kept in the state),
``x`` (a running average of z: the point to *evaluate*), and ``y`` (the interpolation where
gradients are taken: these are the params the training loop holds). ``x`` is never stored:
it is recovered from ``y`` and ``z`` whenever it is needed.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import (
    GradientTransformation,
    LearningRate,
    describe,
    hyperparam_dtype,
    tree_map_split,
)
from gradchain.transforms.moment_math import compute_dtype, increment

__all__ = [
    "ScheduleFreeState",
    "scale_by_schedule_free",
    "schedule_free_average",
]


@describe(
    z="the base optimizer's iterate: z_t = z_{t-1} - lr_t * u_t, one array per parameter",
    weight_sum="sum of the averaging weights max_lr**weight_lr_power so far",
    max_lr="the largest learning rate seen so far",
    count="steps taken so far (int32 scalar), the schedule's argument; None unless "
    "learning_rate is a schedule",
)
class ScheduleFreeState(NamedTuple):
    z: Any
    weight_sum: jax.Array
    max_lr: jax.Array
    count: Any


def scale_by_schedule_free(
    learning_rate: LearningRate,
    b1: float = 0.9,
    weight_lr_power: float = 2.0,
    *,
    z_dtype: Any = None,
) -> GradientTransformation:
    r"""Take the learning-rate step on z, and move the params to the schedule-free point.

    Update:     z_t = z_{t-1} - lr_t * u_t
                c_t = w_t / sum_{i<=t} w_i,  w_t = max_{i<=t}(lr_i)**weight_lr_power
                x_t = (1 - c_t) * x_{t-1} + c_t * z_t,  x_{t-1} = (y - (1 - b1) z_{t-1}) / b1
                emit y_t - y, with y_t = b1 * x_t + (1 - b1) * z_t  (y: the params given)
    State:      z -- a copy of the params at init (dtype ``z_dtype``).  weight_sum, max_lr --
                scalars; count (only for a schedule) -- int32 scalar.   Memory: +1x params.
    Args:       learning_rate -- >= 0, or a schedule of the step count (0 at the first
                step): it replaces ``scale_by_learning_rate`` at the end of a chain.
                b1 -- in (0, 1].  weight_lr_power -- >= 0.  z_dtype -- storage dtype of z.
    Note:       Evaluate (and checkpoint for inference) ``schedule_free_eval_params(state,
                params)`` = x, not the params y the loop holds. Needs the params in
                ``update``. With a schedule, the averaging weight reads it one step ahead,
                ``learning_rate(count + 1)``, as Optax's ``schedule_free`` does; the z step
                reads ``learning_rate(count)``, as every gradchain schedule does. Inside a
                named optimizer whose live hyperparameters evaluate the schedule, this
                transform gets one value and both read it (``schedule_free_adamw`` keeps its
                schedules here instead, to stay Optax's).
    Reference:  Defazio et al., "The Road Less Scheduled", NeurIPS 2024.
    """
    return _schedule_free(
        learning_rate,
        b1,
        weight_lr_power,
        z_dtype,
        "scale_by_schedule_free",
        lambda u, z, lr: z - lr * u,
    )


def schedule_free_average(
    learning_rate: LearningRate,
    b1: float = 0.9,
    weight_lr_power: float = 2.0,
    *,
    z_dtype: Any = None,
) -> GradientTransformation:
    r"""Schedule-free averaging after a base optimizer: its update is the step of z.

    Update:     z_t = z_{t-1} + u_t  (u: the base optimizer's update, learning rate included)
                then as ``scale_by_schedule_free``: x_t = (1 - c_t) x_{t-1} + c_t z_t,
                emit b1 * x_t + (1 - b1) * z_t - y  (y: the params given)
    State:      as ``scale_by_schedule_free``.   Memory: +1x params (z).
    Args:       learning_rate -- used only for the averaging weights max(lr)**weight_lr_power
                (a schedule is read one step ahead, ``learning_rate(count + 1)``, as Optax's
                ``schedule_free``).  b1 -- in (0, 1].  weight_lr_power -- >= 0.
    Note:       ``gradchain.schedule_free(base, learning_rate)`` is ``chain(base, this)``.
    Reference:  Defazio et al., "The Road Less Scheduled", NeurIPS 2024.
    """
    return _schedule_free(
        learning_rate,
        b1,
        weight_lr_power,
        z_dtype,
        "schedule_free_average",
        lambda u, z, lr: z + u,
    )


def _schedule_free(learning_rate, b1, weight_lr_power, z_dtype, name, z_step):
    """The two schedule-free transforms, which differ only in how z steps."""
    _checks.check_learning_rate(learning_rate)
    _checks.check_closed_unit_interval("b1", b1)
    _checks.check_positive("b1", b1)
    _checks.check_non_negative("weight_lr_power", weight_lr_power)
    _checks.check_dtype("z_dtype", z_dtype)
    schedule = learning_rate if callable(learning_rate) else None

    def init(params):
        def copy(p):  # a distinct buffer: z and the params are donated together
            return jnp.array(p, dtype=z_dtype or jnp.result_type(p), copy=True)

        return ScheduleFreeState(
            z=jax.tree.map(copy, params),
            weight_sum=jnp.zeros([], hyperparam_dtype()),
            max_lr=jnp.zeros([], hyperparam_dtype()),
            count=jnp.zeros([], jnp.int32) if schedule else None,
        )

    def update(updates, state, params=None, **extra):
        if params is None:
            raise _checks.GradchainError(
                f"{name} needs the params: call update(updates, state, params)"
            )
        _checks.check_same_structure("updates", updates, "params", params)
        h = state.max_lr.dtype
        if schedule is not None:
            lr = jnp.asarray(schedule(state.count)).astype(h)
            lr_weight = jnp.asarray(schedule(increment(state.count))).astype(h)
        else:
            lr = lr_weight = jnp.asarray(learning_rate, h)
        max_lr = jnp.maximum(state.max_lr, lr_weight)
        weight = max_lr ** jnp.asarray(weight_lr_power, h)
        weight_sum = state.weight_sum + weight
        c_t = jnp.where(weight_sum == 0, 0, weight / jnp.where(weight_sum == 0, 1, weight_sum))

        def step(u, y, z):
            c = compute_dtype(u.dtype, jnp.result_type(y), z.dtype)
            b, k, yc = jnp.asarray(b1, c), c_t.astype(c), jnp.asarray(y).astype(c)
            z_new = z_step(u.astype(c), z.astype(c), lr.astype(c))
            x_prev = (yc - (1 - b) * z.astype(c)) / b
            x = (1 - k) * x_prev + k * z_new
            y_new = b * x + (1 - b) * z_new
            return (y_new - yc).astype(u.dtype), z_new.astype(z.dtype)

        out, z = tree_map_split(step, 2, updates, params, state.z)
        count = increment(state.count) if schedule else None
        return out, ScheduleFreeState(z=z, weight_sum=weight_sum, max_lr=max_lr, count=count)

    return GradientTransformation(init, update, name=name, preprocessing=False)
