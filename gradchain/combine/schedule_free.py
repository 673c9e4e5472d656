"""Schedule-free learning around any optimizer: its steps move z, and the params the loop
holds interpolate z and its running average (``gradchain.schedule_free_sgd`` and
``schedule_free_adamw`` are the two common cases, written out)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import GradientTransformation, LearningRate, _as_transform, chain
from gradchain.combine.live import live
from gradchain.state import get_hyperparams
from gradchain.transforms.moment_math import compute_dtype
from gradchain.transforms.schedule_free import ScheduleFreeState, schedule_free_average

__all__ = [
    "schedule_free",
    "schedule_free_eval_params",
]


@live(static=("state_dtype",), own_schedules=("learning_rate",))  # reads lr(t + 1)
def schedule_free(
    base_optimizer: GradientTransformation,
    learning_rate: LearningRate,
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
                (tests/test_schedule_free.py). Optax keeps its scalars (b1, weight_sum,
                max_lr) in the params' dtype; here they are float32 (float64 under x64)
                whatever the params' dtype.
    Reference:  Defazio et al., "The Road Less Scheduled", NeurIPS 2024.
    """
    return chain(
        _as_transform(base_optimizer),
        schedule_free_average(learning_rate, b1, weight_lr_power, z_dtype=state_dtype),  # z (+1x)
    )


def schedule_free_eval_params(state: Any, params: Any, b1: Any = None) -> Any:
    r"""The params to evaluate a schedule-free model at: x = (y - (1 - b1) z) / b1.

    ``state`` is the optimizer state (of ``schedule_free_adamw``, or any chain holding a
    ``scale_by_schedule_free``); ``params`` are the params y the training loop holds. The
    result has the params' tree and dtypes. Use it for validation, for the final model, and
    for checkpoints meant for inference; keep training from y and the state.

    ``b1`` -- the value given to ``scale_by_schedule_free``; by default the live
    hyperparameter ``b1`` of the optimizer that holds it (``schedule_free_adamw``'s). Pass
    it for a chain built by hand, whose state keeps no hyperparameters.
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
    if b1 is None:
        b1 = _live_b1(state)

    def average(y, z):
        c = compute_dtype(jnp.result_type(y), z.dtype)
        b = jnp.asarray(b1, c)
        return ((jnp.asarray(y).astype(c) - (1 - b) * z.astype(c)) / b).astype(jnp.result_type(y))

    return jax.tree.map(average, params, sf.z)


def _live_b1(state: Any) -> jax.Array:
    named = {k: v for k, v in get_hyperparams(state).items() if k.split(".")[-1] == "b1"}
    if len(named) > 1:  # schedule_free(adam(lr, b1=0.0), lr): the wrapper's b1, not adam's
        named = {k: v for k, v in named.items() if k.split(".")[-2:-1] in (["schedule_free"],)}
    found = list(named.values())
    if len(found) != 1:
        raise _checks.GradchainError(
            f"schedule_free_eval_params found {len(found)} live hyperparameters named b1 in "
            "this state; pass the schedule-free b1 as schedule_free_eval_params(state, "
            "params, b1=...)"
        )
    return found[0]
