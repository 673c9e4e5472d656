"""Schedule-free SGD: plain SGD whose iterate is averaged, so no decay schedule is needed.
(``schedule_free_adamw``, its Adam sibling, lives with the memory-spending optimizers.)

Keyword names and defaults follow ``optax.contrib.schedule_free_sgd``.
"""

from __future__ import annotations

from typing import Any

from gradchain._checks import GradchainError
from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.schedules import linear_schedule
from gradchain.transforms import (
    add_decayed_weights,
)
from gradchain.transforms.adam import adam_denominator
from gradchain.transforms.schedule_free import scale_by_schedule_free

__all__ = [
    "schedule_free_adamw",
    "schedule_free_sgd",
]


@live(static=("warmup_steps",), own_schedules=("learning_rate",))  # reads lr(t + 1) too
def schedule_free_sgd(
    learning_rate: LearningRate = 1.0,
    warmup_steps: int | None = None,
    b1: float = 0.9,
    weight_decay: float | None = None,
    weight_lr_power: float = 2.0,
    state_dtype: Any = None,
) -> GradientTransformation:
    """Schedule-free SGD: z steps by -lr * g; the params y interpolate z and its average x.

    Memory: 1x params (z). Evaluate at ``gradchain.schedule_free_eval_params(state, params)``.
    ``warmup_steps`` warms the learning rate up linearly from 0; ``weight_decay`` (None: none)
    is added to the gradient at y, as Optax's. ``state_dtype`` -- the storage dtype of z.
    Note: Optax's ``contrib.schedule_free_sgd``, same keywords and defaults.
    Reference: Defazio et al., "The Road Less Scheduled", NeurIPS 2024.
    """
    if warmup_steps is not None:
        learning_rate = linear_schedule(0.0, learning_rate, warmup_steps)
    decay = [] if weight_decay is None else [add_decayed_weights(weight_decay)]  # L2 at y
    return chain(
        *decay,
        scale_by_schedule_free(learning_rate, b1, weight_lr_power, z_dtype=state_dtype),  # z (+1x)
    )


@live(static=("warmup_steps",), own_schedules=("learning_rate",))  # reads lr(t + 1) too
def schedule_free_adamw(
    learning_rate: LearningRate = 0.0025,
    warmup_steps: int | None = None,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    weight_lr_power: float = 2.0,
    state_dtype: Any = None,
    *,
    z_dtype: Any = None,
) -> GradientTransformation:
    """Schedule-free AdamW: no learning-rate decay to tune; the momentum slot holds z.

    Memory: 2x params (nu, z), as AdamW -- z replaces the momentum, and the average x that
    replaces a decay schedule is recovered from the params and z. Evaluate the model at
    ``gradchain.schedule_free_eval_params(state, params)``, not at the params themselves.

    ``warmup_steps`` warms the learning rate up linearly from 0 (Optax's
    ``warmup_constant_schedule``). ``state_dtype`` (Optax's keyword) and ``z_dtype`` (ours) both
    set z's storage dtype; give one.

    >>> import jax.numpy as jnp, gradchain
    >>> opt = gradchain.schedule_free_adamw(0.1)
    >>> params = jnp.array([1.0, -1.0])
    >>> state = opt.init(params)
    >>> updates, state = opt.update(2 * params, state, params)
    >>> params = gradchain.apply_updates(params, updates)
    >>> gradchain.schedule_free_eval_params(state, params).tolist()
    [0.8999999761581421, -0.8999999761581421]
    """
    if state_dtype is not None and z_dtype is not None:
        raise GradchainError("schedule_free_adamw: give state_dtype or z_dtype, not both")
    z_dtype = state_dtype if z_dtype is None else z_dtype
    if warmup_steps is not None:
        learning_rate = linear_schedule(0.0, learning_rate, warmup_steps)
    return chain(
        adam_denominator(b2, eps),  # second moment                  (+1x params)
        add_decayed_weights(weight_decay),  # decoupled decay, applied to y
        scale_by_schedule_free(learning_rate, b1, weight_lr_power, z_dtype=z_dtype),  # z (+1x)
    )
