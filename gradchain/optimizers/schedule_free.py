"""Schedule-free SGD: plain SGD whose iterate is averaged, so no decay schedule is needed.
(``schedule_free_adamw``, its Adam sibling, lives with the memory-spending optimizers.)

Keyword names and defaults follow ``optax.contrib.schedule_free_sgd``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gradchain.base import GradientTransformation, chain
from gradchain.combine.live import live
from gradchain.schedules import linear_schedule
from gradchain.transforms.scaling import add_decayed_weights
from gradchain.transforms.schedule_free import scale_by_schedule_free

__all__ = ["schedule_free_sgd"]


@live(static=("warmup_steps",), own_schedules=("learning_rate",))  # reads lr(t + 1) too
def schedule_free_sgd(
    learning_rate: float | Callable[[Any], Any] = 1.0,
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
