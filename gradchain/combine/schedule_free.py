"""Schedule-free learning around any optimizer: its steps move z, and the params the loop
holds interpolate z and its running average (``gradchain.schedule_free_sgd`` and
``schedule_free_adamw`` are the two common cases, written out)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gradchain.base import GradientTransformation, _as_transform, chain
from gradchain.combine.live import live
from gradchain.transforms.schedule_free import schedule_free_average

__all__ = [
    "schedule_free",
]


@live(static=("state_dtype",), own_schedules=("learning_rate",))  # reads lr(t + 1)
def schedule_free(
    base_optimizer: GradientTransformation,
    learning_rate: float | Callable[[Any], Any],
    b1: float = 0.9,
    weight_lr_power: float = 2.0,
    state_dtype: Any = None,
) -> GradientTransformation:
    r"""Make ``base_optimizer`` schedule-free: its updates step z; the params y are
    b1 * x + (1 - b1) * z, x the average of z weighted by max(lr)**weight_lr_power.

    Update:     z_t = z_{t-1} + base_optimizer(g_t, params=y);  then
                ``schedule_free_average`` (x_t = (1 - c_t) x_{t-1} + c_t z_t, emit y_t - y)
    State:      the base optimizer's, then z, weight_sum, max_lr (count: for a schedule),
                and the live hyperparameters b1, learning_rate, weight_lr_power.
                Memory: the base optimizer's + 1x params (z).
    Args:       base_optimizer -- its learning rate included, and its momentum off (e.g.
                ``adam(lr, b1=0.0)``, ``sgd(lr)``).  learning_rate -- the same learning
                rate (or schedule: warmup, no decay); here it only weighs the average.
                b1 -- in (0, 1].  weight_lr_power -- >= 0.  state_dtype -- dtype of z.
    Note:       Evaluate at ``gradchain.schedule_free_eval_params(state, params)``; it reads
                this wrapper's b1 from the state (not a base optimizer's own b1).
                Optax's ``contrib.schedule_free``, same arguments; equal to it over 120
                steps, and to the authors' ``schedulefree.SGDScheduleFree`` in float64
                (tests/test_optax_contrib.py). Optax keeps its scalars (b1, weight_sum,
                max_lr) in the params' dtype; here they are float32 (float64 under x64)
                whatever the params' dtype.
    Reference:  Defazio et al., "The Road Less Scheduled", NeurIPS 2024.
    """
    return chain(
        _as_transform(base_optimizer),
        schedule_free_average(learning_rate, b1, weight_lr_power, z_dtype=state_dtype),  # z (+1x)
    )
