"""torch.optim.lr_scheduler's common schedulers as gradchain schedules (functions of the step
count), with torch's step semantics."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import hyperparam_dtype

__all__ = ["ChainedScheduler", "ConstantLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts",
           "CyclicLR", "ExponentialLR", "LambdaLR", "LinearLR", "MultiStepLR", "MultiplicativeLR",
           "OneCycleLR", "PolynomialLR", "ReduceLROnPlateau", "SWALR", "SequentialLR",
           "StepLR"]  # fmt: skip

# Each returns a function of the int32 step count t (0 at the first step) whose value is
# torch's lr after t calls of scheduler.step(). They are closed forms (torch mostly updates
# recursively, lr <- lr * factor); the two agree to rounding (measured: at most 1.4e-14
# relative over 1,000 steps).
#
# ``last_epoch`` (torch's resume argument, -1 for a fresh start) continues the fresh run: the
# step numbered t takes the fresh run's value at epoch last_epoch + t (the lr at last_epoch is
# the one the optimizer was saved with). ``lr`` stays the initial lr (torch's
# ``param_group["initial_lr"]``). torch's own resumes agree for ExponentialLR and
# MultiplicativeLR only: StepLR, MultiStepLR, ConstantLR and LambdaLR skip one epoch, and the
# recursive cosine, linear, polynomial, cyclic and warm-restart forms restart their recursion
# from a different count (tests/test_torch_schedulers.py measures each).


def _resumed(schedule: Callable[[Any], jax.Array], last_epoch: int) -> Callable[[Any], jax.Array]:
    """``schedule`` continued from torch's ``last_epoch``: t -> schedule(t + last_epoch)."""
    _checks.check_int("last_epoch", last_epoch, minimum=-1)
    if last_epoch <= 0:
        return schedule

    def resumed(count):
        return schedule(jnp.asarray(count) + last_epoch)

    resumed.__dict__.update(schedule.__dict__)  # base_lr: still multiplicative
    resumed.last_epoch = last_epoch
    return resumed


def _steps(count: Any) -> jax.Array:
    return jnp.asarray(count).astype(hyperparam_dtype())


def _const(x: float) -> jax.Array:
    return jnp.asarray(x, hyperparam_dtype())


def StepLR(
    lr: float, step_size: int, gamma: float = 0.1, last_epoch: int = -1
) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.StepLR: ``lr * gamma ** (t // step_size)``.

    Args:  lr -- the optimizer's initial lr.  step_size -- steps between decays, >= 1.
    """
    if step_size < 1:
        raise _checks.GradchainError(f"step_size must be >= 1, got {step_size}")

    def schedule(count):
        return _const(lr) * _const(gamma) ** jnp.floor(_steps(count) / step_size)

    return _resumed(_multiplicative(schedule, lr), last_epoch)


def MultiStepLR(
    lr: float, milestones: Sequence[int], gamma: float = 0.1, last_epoch: int = -1
) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.MultiStepLR: ``lr * gamma ** (milestones reached so far)``.

    A milestone listed twice decays twice, as in torch.
    """
    marks = sorted(int(m) for m in milestones)

    def schedule(count):
        t = _steps(count)
        reached = sum((t >= m).astype(t.dtype) for m in marks) if marks else _const(0.0)
        return _const(lr) * _const(gamma) ** reached

    return _resumed(_multiplicative(schedule, lr), last_epoch)


def ExponentialLR(lr: float, gamma: float, last_epoch: int = -1) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.ExponentialLR: ``lr * gamma ** t``."""

    def schedule(count):
        return _const(lr) * _const(gamma) ** _steps(count)

    return _resumed(_multiplicative(schedule, lr), last_epoch)


def CosineAnnealingLR(
    lr: float, T_max: int, eta_min: float = 0.0, last_epoch: int = -1
) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.CosineAnnealingLR: half a cosine from lr to eta_min in T_max
    steps, ``eta_min + (lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``.

    Past T_max it climbs back, as torch's does (the cosine is periodic with period 2 T_max);
    for warm restarts use ``SequentialLR`` or torch's ``CosineAnnealingWarmRestarts`` form.
    In a ``ChainedScheduler`` it takes torch's recursive form, which differs (see there).
    """
    if T_max < 1:
        raise _checks.GradchainError(f"T_max must be >= 1, got {T_max}")

    def schedule(count):
        cosine = jnp.cos(math.pi * _steps(count) / T_max)
        return _const(eta_min) + (_const(lr) - eta_min) * (1 + cosine) / 2

    if eta_min == 0:
        _multiplicative(schedule, lr).cosine_T_max = T_max  # for ChainedScheduler
    return _resumed(schedule, last_epoch)


def LinearLR(
    lr: float,
    start_factor: float = 1.0 / 3,
    end_factor: float = 1.0,
    total_iters: int = 5,
    last_epoch: int = -1,
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

    return _resumed(_multiplicative(schedule, lr), last_epoch)


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
    last_epoch: int = -1,
    cycle_momentum: bool = True,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.OneCycleLR's learning rate: up from max_lr / div_factor to
    max_lr over pct_start of the steps, then down to max_lr / div_factor / final_div_factor
    (three_phase: down to the start first, then to the minimum).

    Cycled momentum: with ``cycle_momentum`` (torch's default) the schedule has a second one,
    ``.momentum``, going the other way (max_momentum down to base_momentum while the lr rises,
    and back). A ``gradchain.torch`` optimizer given the schedule as ``lr`` takes it where
    torch's scheduler sets it: ``momentum`` (SGD, RMSprop, Muon) or ``betas[0]`` (Adam, AdamW,
    NAdam, RAdam, Adamax); the others refuse it, as torch does ("optimizer must support
    momentum or beta1 with `cycle_momentum` option enabled"). ``cycle_momentum=False`` keeps
    the optimizer's own number.

    Past the end: torch raises when stepped more than total_steps times; this schedule holds
    its final value, ``max_lr / div_factor / final_div_factor``, from step total_steps - 1 on
    (the cosine continued would climb back: 0.41 of a 0.5 peak by step 150 of 100). At
    t = total_steps, the one value past the end that torch still computes (after the
    total_steps-th ``scheduler.step()``, used only by a step torch's own loop never takes),
    torch continues the cosine: 2.5e-4 where this holds 2e-6 (max_lr 0.5, 100 steps).
    Refused at construction: a phase of no steps (``pct_start * total_steps <= 1``, or
    ``pct_start = 1``), where torch raises ZeroDivisionError.
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

    up, down = (max_momentum, base_momentum), (base_momentum, max_momentum)
    momenta = [up, down, (max_momentum, max_momentum)] if three_phase else [up, down]
    pieces, begin = [], 0.0
    for i, (end, lo, hi) in enumerate(phases):  # torch: each starts where the last one ended
        if end <= begin:  # torch divides by end - begin: ZeroDivisionError, or a NaN here
            raise _checks.GradchainError(
                f"OneCycleLR: phase {i + 1} of {len(phases)} has no steps (it would end at step "
                f"{end:g}, where it starts): with total_steps={total_steps} and "
                f"pct_start={pct_start}, pct_start * total_steps must be > 1"
                + (" and < total_steps / 2 + 1 (three_phase)" if three_phase else "")
                + " and pct_start < 1"
            )
        pieces.append((begin, end, lo, hi))
        begin = end

    def phased(values):
        def schedule(count):
            t = jnp.minimum(_steps(count), total_steps - 1)  # past the end: the final value
            (begin, end, _, _), (lo, hi) = pieces[-1], values[-1]  # the last phase: any later t
            lr = anneal(lo, hi, (t - begin) / (end - begin))
            for (begin, end, _, _), (lo, hi) in reversed(list(zip(pieces[:-1], values[:-1]))):
                lr = jnp.where(t <= end, anneal(lo, hi, (t - begin) / (end - begin)), lr)
            return lr

        return _resumed(schedule, last_epoch)

    schedule = phased([(lo, hi) for _, _, lo, hi in pieces])
    if cycle_momentum:
        schedule.momentum = phased(momenta)
    return schedule


def SequentialLR(
    schedules: Sequence[Callable[[Any], Any]], milestones: Sequence[int], last_epoch: int = -1
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
        lr = jnp.asarray(schedules[0](count)).astype(hyperparam_dtype())
        for mark, sched in zip(marks, schedules[1:]):
            later = jnp.asarray(sched(jnp.maximum(count - mark, 0))).astype(hyperparam_dtype())
            lr = jnp.where(count >= mark, later, lr)
        return lr

    return _resumed(schedule, last_epoch)


# --- the rest of torch.optim.lr_scheduler --------------------------------------------------


def _multiplicative(schedule: Callable[[Any], jax.Array], lr: float) -> Callable[[Any], jax.Array]:
    """Mark a schedule whose torch scheduler multiplies the current lr by a factor each step,
    so that ``ChainedScheduler`` may multiply it with others."""
    schedule.base_lr = lr
    return schedule


def ConstantLR(
    lr: float, factor: float = 1.0 / 3, total_iters: int = 5, last_epoch: int = -1
) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.ConstantLR: ``lr * factor`` before step total_iters, then lr."""
    if not 0 <= factor <= 1:
        raise _checks.GradchainError(f"ConstantLR needs 0 <= factor <= 1, got {factor}")

    def schedule(count):
        return jnp.where(_steps(count) < total_iters, _const(lr) * factor, _const(lr))

    return _resumed(_multiplicative(schedule, lr), last_epoch)


def PolynomialLR(
    lr: float, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1
) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.PolynomialLR: ``lr * (1 - min(t, T) / T) ** power``: 0 from T on.

    The fraction left is computed as (T - min(t, T)) / T, exactly 0 from T on (1 - t / T, which
    XLA compiles as 1 - t * (1/T), gave NaN at power 0.5 under jit). power < 0 is refused: torch
    divides by zero at step T (power 0 is a constant lr, as in torch).
    """
    _checks.check_int("total_iters", total_iters, minimum=1)
    _checks.check_non_negative("power", power)

    def schedule(count):
        left = (total_iters - jnp.minimum(_steps(count), total_iters)) / total_iters
        return _const(lr) * left ** _const(power)

    return _resumed(_multiplicative(schedule, lr), last_epoch)


def LambdaLR(
    lr: float, lr_lambda: Callable[[Any], Any], last_epoch: int = -1
) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.LambdaLR: ``lr * lr_lambda(t)``.

    ``lr_lambda`` receives the step count as a traced float array of whole numbers (torch: an
    int): write it with ``jnp``, not ``math``, and no Python ``if`` on it. torch's list of
    lambdas (one per param group) is one schedule per ``gradchain.partition`` group here.
    """

    def schedule(count):
        return _const(lr) * jnp.asarray(lr_lambda(_steps(count))).astype(hyperparam_dtype())

    return _resumed(schedule, last_epoch)


def MultiplicativeLR(
    lr: float, lr_lambda: Callable[[Any], Any], last_epoch: int = -1
) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.MultiplicativeLR: ``lr * lr_lambda(1) * ... * lr_lambda(t)``.

    ``lr_lambda`` as for ``LambdaLR`` (a traced step count). The product is a loop of t
    iterations (``fori_loop``): fine for the scalar a step needs, slow for millions of steps.
    """

    def schedule(count):
        t = jnp.asarray(count).astype(jnp.int32)

        def times(k, acc):
            return acc * jnp.asarray(lr_lambda(_steps(k))).astype(acc.dtype)

        return jax.lax.fori_loop(1, t + 1, times, _const(lr))

    return _resumed(_multiplicative(schedule, lr), last_epoch)


def CosineAnnealingWarmRestarts(
    lr: float, T_0: int, T_mult: int = 1, eta_min: float = 0.0, last_epoch: int = -1
) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.CosineAnnealingWarmRestarts, stepped once per optimizer step:
    ``eta_min + (lr - eta_min) (1 + cos(pi T_cur / T_i)) / 2``, T_cur the steps since the last
    restart, T_i = T_0 T_mult**i the length of the current cycle.

    The restarts are found in integer arithmetic (torch's ``step()`` counts T_cur up; its
    ``step(epoch)`` form takes a float log, which can miss a restart by rounding).
    """
    if not isinstance(T_0, int) or T_0 < 1:
        raise _checks.GradchainError(f"T_0 must be a positive int, got {T_0!r}")
    if not isinstance(T_mult, int) or T_mult < 1:
        raise _checks.GradchainError(f"T_mult must be an int >= 1, got {T_mult!r}")
    # Every restart an int32 count reaches: the last cycle's length may pass int32 (T_0 = 20,
    # T_mult = 3: 2.6e9), so the lengths are kept as floats.
    starts, lengths = [0], [float(T_0)]
    while T_mult > 1 and starts[-1] + lengths[-1] <= 2**31 - 1:
        starts.append(starts[-1] + int(lengths[-1]))
        lengths.append(lengths[-1] * T_mult)
    starts_a = jnp.asarray(starts, jnp.int32)

    def schedule(count):
        t = jnp.asarray(count).astype(jnp.int32)
        c = hyperparam_dtype()
        if T_mult == 1:
            t_cur, t_i = t % T_0, jnp.asarray(T_0, c)
        else:
            cycle = jnp.sum(t >= starts_a) - 1
            t_cur, t_i = t - starts_a[cycle], jnp.asarray(lengths, c)[cycle]
        cosine = jnp.cos(math.pi * t_cur.astype(c) / t_i)
        return _const(eta_min) + (_const(lr) - eta_min) * (1 + cosine) / 2

    return _resumed(schedule, last_epoch)


def CyclicLR(
    base_lr: float,
    max_lr: float,
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
    scale_fn: Callable[[Any], Any] | None = None,
    scale_mode: str = "cycle",
    cycle_momentum: bool = True,
    base_momentum: float = 0.8,
    max_momentum: float = 0.9,
    last_epoch: int = -1,
) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.CyclicLR's learning rate: from base_lr up to max_lr in
    step_size_up steps and down in step_size_down, the height scaled by ``mode``
    ("triangular": 1, "triangular2": halved each cycle, "exp_range": gamma**t) or ``scale_fn``
    (of the cycle number, or of t with ``scale_mode="iterations"``; a jnp function).

    With ``cycle_momentum`` (torch's default), ``.momentum`` is the momentum torch sets,
    ``max_momentum - (max_momentum - base_momentum) * factor * scale``: the optimizer given the
    schedule as ``lr`` takes it, as in ``OneCycleLR``. torch sets the optimizer's lr to
    base_lr: the optimizer's own ``lr`` is ignored here too.
    """
    if scale_fn is None:
        _checks.check_choice("mode", mode, ("triangular", "triangular2", "exp_range"))
        scale_mode = "iterations" if mode == "exp_range" else "cycle"
    _checks.check_choice("scale_mode", scale_mode, ("cycle", "iterations"))
    up = float(step_size_up)
    down = up if step_size_down is None else float(step_size_down)
    total, ratio = up + down, up / (up + down)

    def scale(x):
        if scale_fn is not None:
            return jnp.asarray(scale_fn(x)).astype(hyperparam_dtype())
        if mode == "triangular":
            return _const(1.0)
        if mode == "triangular2":
            return 1 / 2.0 ** (x - 1)
        return _const(gamma) ** x

    def cyclic(low, high, rising):
        def schedule(count):
            t = _steps(count)
            cycle = jnp.floor(1 + t / total)
            x = 1.0 + t / total - cycle
            factor = jnp.where(x <= ratio, x / ratio, (x - 1) / (ratio - 1))
            height = (_const(high) - low) * factor * scale(cycle if scale_mode == "cycle" else t)
            return low + height if rising else high - height

        return _resumed(schedule, last_epoch)

    schedule = cyclic(base_lr, max_lr, rising=True)
    if cycle_momentum:
        schedule.momentum = cyclic(base_momentum, max_momentum, rising=False)
    return schedule


def ChainedScheduler(schedules: Sequence[Callable[[Any], Any]]) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.ChainedScheduler: every scheduler stepped each step, each
    multiplying the lr by its own factor: ``lr * prod_i (s_i(t) / lr)``.

    The schedules must be built on the same ``lr`` and be of the multiplicative kind torch
    chains: StepLR, MultiStepLR, ExponentialLR, ConstantLR, LinearLR, PolynomialLR,
    MultiplicativeLR, CosineAnnealingLR with eta_min = 0. The others set the lr outright
    (LambdaLR, OneCycleLR, CyclicLR, CosineAnnealingWarmRestarts, ...): in torch the last of
    those wins over the ones before it, which is rarely what a chain means; they are refused.

    A CosineAnnealingLR in a chain follows torch's recursive form, not the cosine times the
    others: it multiplies the lr by c(t) / c(t - 1), c(t) = (1 + cos(pi t / T_max)) / 2, which
    reaches exactly 0 at t = T_max, 3 T_max, ...; the step after, torch *adds*
    lr * c(t) (``base_lr * (1 - cos(pi / T_max)) / 2``) to that 0, so every factor the other
    schedules had accumulated is lost there, and they start again from 1. So the chain is
    lr * c(t) * P(t) / P(r), r the last such restart (P(t) the others' product; the restart
    step's own factors count for schedules after the cosine in the list). One cosine per chain
    (a fresh one: no ``last_epoch``).
    """
    bases = [getattr(s, "base_lr", None) for s in schedules]
    if not schedules or None in bases:
        raise _checks.GradchainError(
            "ChainedScheduler multiplies gradchain.torch's multiplicative schedules (StepLR, "
            "MultiStepLR, ExponentialLR, ConstantLR, LinearLR, PolynomialLR, MultiplicativeLR, "
            f"CosineAnnealingLR with eta_min=0); schedule {bases.index(None) if schedules else 0}"
            " is not one of them"
        )
    if len(set(bases)) != 1 or bases[0] == 0:
        raise _checks.GradchainError(
            f"ChainedScheduler needs its schedules built on one non-zero lr, got {bases}"
        )
    lr = bases[0]
    cosines = [i for i, s in enumerate(schedules) if hasattr(s, "cosine_T_max")]
    if len(cosines) > 1 or any(hasattr(schedules[i], "last_epoch") for i in cosines):
        raise _checks.GradchainError(
            "ChainedScheduler takes at most one CosineAnnealingLR, not resumed (last_epoch=-1): "
            f"got one at positions {cosines}"
        )

    def factor(members, count):
        out = _const(1.0)
        for s in members:
            out = out * (jnp.asarray(s(count)).astype(out.dtype) / lr)
        return out

    if not cosines:
        return lambda count: _const(lr) * factor(schedules, count)
    k = cosines[0]
    T, before, after = schedules[k].cosine_T_max, schedules[:k], schedules[k + 1 :]

    def schedule(count):
        t = jnp.asarray(count).astype(jnp.int32)
        cosine = schedules[k](t) / lr  # c(t)
        # the last restart r: T + 1 + 2 T j <= t, or none (r = 0) before T + 1
        r = t - jnp.maximum(t - (T + 1), 0) % (2 * T)
        restarted = t >= T + 1
        since_before = factor(before, t) / jnp.where(restarted, factor(before, r), 1)
        since_after = factor(after, t) / jnp.where(restarted, factor(after, r - 1), 1)
        return _const(lr) * cosine * since_before * since_after

    schedule.base_lr = lr
    return schedule


def SWALR(
    lr: float,
    swa_lr: float,
    anneal_epochs: int = 10,
    anneal_strategy: str = "cos",
    last_epoch: int = -1,
) -> Callable[[Any], jax.Array]:
    """torch.optim.swa_utils.SWALR: from lr to swa_lr in anneal_epochs steps, then swa_lr.

    Value:  a = clip(t / max(1, anneal_epochs), 0, 1) ;  "cos": a <- (1 - cos(pi a)) / 2
            lr_t = swa_lr * a + lr * (1 - a)   (anneal_epochs = 0: swa_lr from the start)
    Args:   lr -- the optimizer's lr when SWALR takes over.  ``last_epoch`` is accepted and,
            as in torch (which counts its own steps here), changes no value.
    Note:   torch recovers lr from the current one at each step; the closed form agrees to
            rounding. Switch to it at the SWA start with ``SequentialLR([..., SWALR(...)],
            milestones=[swa_start])``.
    Reference: Izmailov et al., "Averaging Weights Leads to Wider Optima", 2018.
    """
    _checks.check_choice("anneal_strategy", anneal_strategy, ("cos", "linear"))
    _checks.check_int("anneal_epochs", anneal_epochs)
    _checks.check_int("last_epoch", last_epoch, minimum=-1)

    def schedule(count):
        t = _steps(count)
        if anneal_epochs == 0:
            return _const(swa_lr) + 0 * t
        a = jnp.clip(t / anneal_epochs, 0, 1)
        if anneal_strategy == "cos":
            a = (1 - jnp.cos(math.pi * a)) / 2
        return _const(swa_lr) * a + _const(lr) * (1 - a)

    return schedule


class PlateauState(NamedTuple):
    """ReduceLROnPlateau's memory: 0-d arrays, a pytree (jit, checkpoint it)."""

    lr: jax.Array  # the learning rate to set
    best: jax.Array  # the best metric so far (inf or -inf before the first)
    num_bad_epochs: jax.Array  # int32: calls since the best, cooldown excluded
    cooldown_counter: jax.Array  # int32: calls left in the cooldown
    last_epoch: jax.Array  # int32: calls of update so far


class ReduceLROnPlateau:
    """torch.optim.lr_scheduler.ReduceLROnPlateau: multiply the lr by ``factor`` when the
    metric has not improved for more than ``patience`` calls.

    It needs the metric, so it is not a function of the step count. It is a pair of pure
    functions over a small state, ``init()`` and ``update(state, metric)`` (jit-safe: no
    Python branching on the metric), and the lr it returns is set on the optimizer's state
    with ``gradchain.set_hyperparam`` -- torch's ``param_group["lr"] = ...``, which is what
    torch's scheduler does. The optimizer's ``lr`` must be a number (live), not a schedule::

        plateau = gradchain.torch.ReduceLROnPlateau(lr=0.1, patience=5)
        p_state = plateau.init()
        for epoch in range(epochs):
            ...  # train: opt_state from opt = gradchain.torch.SGD(lr=0.1, ...)
            p_state = plateau.update(p_state, val_loss)           # scheduler.step(val_loss)
            opt_state = gradchain.set_hyperparam(opt_state, "lr", p_state.lr)

    Or host-side, as torch: ``lr = plateau.step(val_loss)`` keeps the state in the object.

    Args:   torch's, same defaults; ``lr`` is the optimizer's initial lr (torch reads it from
            the optimizer). ``min_lr`` is one number (one group: use one scheduler per
            ``gradchain.partition`` group).
    Note:   the comparisons run in the hyperparameter dtype (float32 without x64), torch's in
            Python floats: a metric within float32 rounding of the threshold may be judged
            differently without x64.
    """

    def __init__(
        self,
        lr: float,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        if factor >= 1.0:
            raise _checks.GradchainError(f"factor must be < 1.0, got {factor}")
        _checks.check_choice("mode", mode, ("min", "max"))
        _checks.check_choice("threshold_mode", threshold_mode, ("rel", "abs"))
        _checks.check_int("patience", patience)
        _checks.check_int("cooldown", cooldown)
        self.lr, self.mode, self.factor, self.patience = lr, mode, factor, patience
        self.threshold, self.threshold_mode, self.cooldown = threshold, threshold_mode, cooldown
        self.min_lr, self.eps = min_lr, eps
        self.state = self.init()

    def init(self) -> PlateauState:
        worst = math.inf if self.mode == "min" else -math.inf
        zero = jnp.zeros([], jnp.int32)
        return PlateauState(_const(self.lr), _const(worst), zero, zero, zero)

    def _is_better(self, metric: jax.Array, best: jax.Array) -> jax.Array:
        if self.threshold_mode == "rel":
            scale = 1.0 - self.threshold if self.mode == "min" else self.threshold + 1.0
            target = best * scale
        else:
            target = best - self.threshold if self.mode == "min" else best + self.threshold
        return metric < target if self.mode == "min" else metric > target

    def update(self, state: PlateauState, metric: Any) -> PlateauState:
        """torch's ``scheduler.step(metric)``: the next state, whose ``lr`` is the one to set."""
        metric = jnp.asarray(metric).astype(hyperparam_dtype())
        better = self._is_better(metric, state.best)
        best = jnp.where(better, metric, state.best)
        bad = jnp.where(better, 0, state.num_bad_epochs + 1)
        cooling = state.cooldown_counter > 0
        cooldown = jnp.where(cooling, state.cooldown_counter - 1, state.cooldown_counter)
        bad = jnp.where(cooling, 0, bad)
        reduce = bad > self.patience
        new_lr = jnp.maximum(state.lr * self.factor, _const(self.min_lr))
        lr = jnp.where(reduce & (state.lr - new_lr > self.eps), new_lr, state.lr)
        cooldown = jnp.where(reduce, self.cooldown, cooldown)
        bad = jnp.where(reduce, 0, bad)
        return PlateauState(lr, best, bad.astype(jnp.int32), cooldown.astype(jnp.int32),
                            state.last_epoch + 1)  # fmt: skip

    def step(self, metric: Any) -> jax.Array:
        """Host-side form, as torch's: update the state kept in the object, return the lr."""
        self.state = self.update(self.state, metric)
        return self.state.lr
