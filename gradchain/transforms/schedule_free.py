"""Schedule-free learning: no decay schedule to choose, because the iterate is an average.

Three sequences share two arrays: ``z`` (the base optimizer's own iterate, kept in the state),
``x`` (a running average of z: the point to *evaluate*), and ``y`` (the interpolation where
gradients are taken: these are the params the training loop holds). ``x`` is never stored:
it is recovered from ``y`` and ``z`` whenever it is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import (
    GradientTransformation,
    compute_dtype,
    describe,
    increment,
    live_hyperparams,
    store_hyperparam,
    store_hyperparams,
    tree_map_split,
)


@describe(
    z="the base optimizer's iterate: z_t = z_{t-1} - lr_t * u_t, one array per parameter",
    count="steps taken so far (int32 scalar); the schedule's argument",
    weight_sum="sum of the averaging weights max_lr**weight_lr_power so far",
    max_lr="the largest learning rate seen so far",
    learning_rate="the learning rate of the last step (live when constant; recorded, "
    "read-only, when a schedule sets it)",
    b1="hyperparameter: interpolation between the average x and z (where gradients are taken)",
    weight_lr_power="hyperparameter: the averaging weight of a step is max_lr**weight_lr_power",
)
class ScheduleFreeState(NamedTuple):
    z: Any
    count: jax.Array
    weight_sum: jax.Array
    max_lr: jax.Array
    learning_rate: jax.Array
    b1: jax.Array
    weight_lr_power: jax.Array


def scale_by_schedule_free(
    learning_rate: float | Callable[[jax.Array], Any],
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
    State:      z -- a copy of the params at init (dtype ``z_dtype``).  count, weight_sum,
                max_lr and three hyperparameters -- scalars.   Memory: +1x params.
    Args:       learning_rate -- >= 0, or a schedule of the step count (0 at the first
                step): it replaces ``scale_by_learning_rate`` at the end of a chain.
                b1 -- in (0, 1].  weight_lr_power -- >= 0.  z_dtype -- storage dtype of z.
    Note:       Evaluate (and checkpoint for inference) ``schedule_free_eval_params(state,
                params)`` = x, not the params y the loop holds. Needs the params in
                ``update``. With a schedule, the averaging weight reads it one step ahead,
                ``learning_rate(count + 1)``, as Optax's ``schedule_free`` does; the z step
                reads ``learning_rate(count)``, as every gradchain schedule does.
    Reference:  Defazio et al., "The Road Less Scheduled", NeurIPS 2024.
    """
    _checks.check_learning_rate(learning_rate)
    _checks.check_closed_unit_interval("b1", b1)
    _checks.check_positive("b1", b1)
    _checks.check_non_negative("weight_lr_power", weight_lr_power)
    _checks.check_dtype("z_dtype", z_dtype)
    schedule = learning_rate if callable(learning_rate) else None
    given = {"b1": b1, "weight_lr_power": weight_lr_power}

    def init(params):
        def copy(p):  # a distinct buffer: z and the params are donated together
            return jnp.array(p, dtype=z_dtype or jnp.result_type(p), copy=True)

        return ScheduleFreeState(
            z=jax.tree.map(copy, params),
            count=jnp.zeros([], jnp.int32),
            weight_sum=store_hyperparam(0.0),
            max_lr=store_hyperparam(0.0),
            learning_rate=store_hyperparam(0.0 if schedule else learning_rate),
            **store_hyperparams(given),
        )

    def update(updates, state, params=None, **extra):
        del extra
        if params is None:
            raise _checks.GradchainError(
                "scale_by_schedule_free needs the params: call update(updates, state, params)"
            )
        _checks.check_same_structure("updates", updates, "params", params)
        hp = live_hyperparams(given, state)
        dtype = state.learning_rate.dtype
        if schedule is not None:
            lr = jnp.asarray(schedule(state.count)).astype(dtype)
            lr_weight = jnp.asarray(schedule(increment(state.count))).astype(dtype)
        else:
            lr = live_hyperparams({"learning_rate": learning_rate}, state)["learning_rate"]
            lr_weight = lr
        max_lr = jnp.maximum(state.max_lr, lr_weight)
        weight = max_lr ** hp["weight_lr_power"]
        weight_sum = state.weight_sum + weight
        c_t = jnp.where(weight_sum == 0, 0, weight / jnp.where(weight_sum == 0, 1, weight_sum))

        def step(u, y, z):
            c = compute_dtype(u.dtype, jnp.result_type(y), z.dtype)
            b, k, yc = hp["b1"].astype(c), c_t.astype(c), jnp.asarray(y).astype(c)
            z_new = z.astype(c) - lr.astype(c) * u.astype(c)
            x_prev = (yc - (1 - b) * z.astype(c)) / b
            x = (1 - k) * x_prev + k * z_new
            y_new = b * x + (1 - b) * z_new
            return (y_new - yc).astype(u.dtype), z_new.astype(z.dtype)

        out, z = tree_map_split(step, 2, updates, params, state.z)
        return out, ScheduleFreeState(
            z=z,
            count=increment(state.count),
            weight_sum=weight_sum,
            max_lr=max_lr,
            learning_rate=lr,
            **hp,
        )

    return GradientTransformation(init, update, name="scale_by_schedule_free")


def schedule_free_eval_params(state: Any, params: Any) -> Any:
    r"""The params to evaluate a schedule-free model at: x = (y - (1 - b1) z) / b1.

    ``state`` is the optimizer state (of ``schedule_free_adamw``, or any chain holding a
    ``scale_by_schedule_free``); ``params`` are the params y the training loop holds. The
    result has the params' tree and dtypes. Use it for validation, for the final model, and
    for checkpoints meant for inference; keep training from y and the state.
    """
    found = [
        s
        for s in jax.tree.leaves(state, is_leaf=lambda s: isinstance(s, ScheduleFreeState))
        if isinstance(s, ScheduleFreeState)
    ]
    if len(found) != 1:
        raise _checks.GradchainError(
            "schedule_free_eval_params needs the state of an optimizer with exactly one "
            f"scale_by_schedule_free, found {len(found)}"
        )
    (sf,) = found

    def average(y, z):
        c = compute_dtype(jnp.result_type(y), z.dtype)
        b = sf.b1.astype(c)
        return ((jnp.asarray(y).astype(c) - (1 - b) * z.astype(c)) / b).astype(jnp.result_type(y))

    return jax.tree.map(average, params, sf.z)
