"""torch.optim.lr_scheduler's common schedulers as gradchain schedules (functions of the step
count), with torch's step semantics."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import hyperparam_dtype as hyper_dtype

__all__ = ["CosineAnnealingLR", "ExponentialLR", "LinearLR", "MultiStepLR", "OneCycleLR",
           "SequentialLR", "StepLR"]  # fmt: skip

# Each returns a function of the int32 step count t (0 at the first step) whose value is
# torch's lr after t calls of scheduler.step(). They are closed forms (torch mostly updates
# recursively, lr <- lr * factor); the two agree to rounding (measured: at most 1.4e-14
# relative over 1,000 steps).


def _steps(count: Any) -> jax.Array:
    return jnp.asarray(count).astype(hyper_dtype())


def _const(x: float) -> jax.Array:
    return jnp.asarray(x, hyper_dtype())


def StepLR(lr: float, step_size: int, gamma: float = 0.1) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.StepLR: ``lr * gamma ** (t // step_size)``.

    Args:  lr -- the optimizer's initial lr.  step_size -- steps between decays, >= 1.
    """
    if step_size < 1:
        raise _checks.GradchainError(f"step_size must be >= 1, got {step_size}")

    def schedule(count):
        return _const(lr) * _const(gamma) ** jnp.floor(_steps(count) / step_size)

    return schedule


def MultiStepLR(
    lr: float, milestones: Sequence[int], gamma: float = 0.1
) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.MultiStepLR: ``lr * gamma ** (milestones reached so far)``.

    A milestone listed twice decays twice, as in torch.
    """
    marks = sorted(int(m) for m in milestones)

    def schedule(count):
        t = _steps(count)
        reached = sum((t >= m).astype(t.dtype) for m in marks) if marks else _const(0.0)
        return _const(lr) * _const(gamma) ** reached

    return schedule


def ExponentialLR(lr: float, gamma: float) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.ExponentialLR: ``lr * gamma ** t``."""

    def schedule(count):
        return _const(lr) * _const(gamma) ** _steps(count)

    return schedule


def CosineAnnealingLR(lr: float, T_max: int, eta_min: float = 0.0) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.CosineAnnealingLR: half a cosine from lr to eta_min in T_max
    steps, ``eta_min + (lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``.

    Past T_max it climbs back, as torch's does (the cosine is periodic with period 2 T_max);
    for warm restarts use ``SequentialLR`` or torch's ``CosineAnnealingWarmRestarts`` form.
    """
    if T_max < 1:
        raise _checks.GradchainError(f"T_max must be >= 1, got {T_max}")

    def schedule(count):
        cosine = jnp.cos(math.pi * _steps(count) / T_max)
        return _const(eta_min) + (_const(lr) - eta_min) * (1 + cosine) / 2

    return schedule


def LinearLR(
    lr: float, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5
) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.LinearLR: the factor moves linearly from start_factor to
    end_factor over total_iters steps, then stays: ``lr * (s + (e - s) * min(t, T) / T)``."""
    if not 0 < start_factor <= 1 or not 0 <= end_factor <= 1:
        raise _checks.GradchainError(
            f"LinearLR needs 0 < start_factor <= 1 and 0 <= end_factor <= 1, got "
            f"{start_factor} and {end_factor}"
        )

    def schedule(count):
        done = jnp.minimum(_steps(count), total_iters) / max(total_iters, 1)
        return _const(lr) * (start_factor + (end_factor - start_factor) * done)

    return schedule


def OneCycleLR(
    max_lr: float,
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.OneCycleLR's learning rate: up from max_lr / div_factor to
    max_lr over pct_start of the steps, then down to max_lr / div_factor / final_div_factor
    (three_phase: down to the start first, then to the minimum).

    Note: torch's ``cycle_momentum=True`` (its default) also cycles SGD's momentum or Adam's
    beta1 between 0.85 and 0.95; this schedule is the learning rate only, so a run matches
    torch's with ``cycle_momentum=False``. Past total_steps torch raises; this schedule
    continues the last phase's formula.
    """
    _checks.check_choice("anneal_strategy", anneal_strategy, ("cos", "linear"))
    if total_steps is None:
        if epochs is None or steps_per_epoch is None:
            raise _checks.GradchainError(
                "OneCycleLR needs total_steps, or both epochs and steps_per_epoch"
            )
        total_steps = epochs * steps_per_epoch
    initial = max_lr / div_factor
    minimum = initial / final_div_factor
    if three_phase:
        phases = [
            (pct_start * total_steps - 1, initial, max_lr),
            (2 * pct_start * total_steps - 2, max_lr, initial),
            (total_steps - 1, initial, minimum),
        ]
    else:
        phases = [
            (pct_start * total_steps - 1, initial, max_lr),
            (total_steps - 1, max_lr, minimum),
        ]

    def anneal(start, end, pct):
        if anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (jnp.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    pieces, begin = [], 0.0
    for end, lo, hi in phases:  # torch: each phase starts where the one before it ended
        pieces.append((begin, end, lo, hi))
        begin = end

    def schedule(count):
        t = _steps(count)
        begin, end, lo, hi = pieces[-1]  # the last phase also covers any step past its end
        lr = anneal(lo, hi, (t - begin) / (end - begin))
        for begin, end, lo, hi in reversed(pieces[:-1]):
            lr = jnp.where(t <= end, anneal(lo, hi, (t - begin) / (end - begin)), lr)
        return lr

    return schedule


def SequentialLR(
    schedules: Sequence[Callable[[Any], Any]], milestones: Sequence[int]
) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.SequentialLR: ``schedules[i]`` from milestone ``i - 1`` on,
    restarted at its own step 0 there (torch calls ``scheduler.step(0)`` at a milestone).

    Warmup then cosine, as in torch::

        SequentialLR([LinearLR(lr, 0.01, 1.0, total_iters=100),
                      CosineAnnealingLR(lr, T_max=900)], milestones=[100])
    """
    if len(milestones) != len(schedules) - 1:
        raise _checks.GradchainError(
            f"SequentialLR needs one milestone fewer than schedules: got {len(schedules)} "
            f"schedules and {len(milestones)} milestones"
        )
    marks = [int(m) for m in milestones]

    def schedule(count):
        count = jnp.asarray(count)
        lr = jnp.asarray(schedules[0](count)).astype(hyper_dtype())
        for mark, sched in zip(marks, schedules[1:]):
            later = jnp.asarray(sched(jnp.maximum(count - mark, 0))).astype(hyper_dtype())
            lr = jnp.where(count >= mark, later, lr)
        return lr

    return schedule
