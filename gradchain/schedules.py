"""Schedules: a hyperparameter as a function of the step count.

A schedule is a function ``schedule(count) -> value`` of the int32 step count (0 at the first
step) that returns a 0-d array. It is pure and jit-safe, and computes in the hyperparameter
dtype (float32, or float64 under x64) whatever dtype the params have. Any ``learning_rate``
in gradchain accepts one; ``scale_by_learning_rate`` calls it with its own ``count``.

The names and the meaning of every argument follow ``optax.schedules``, so a schedule ports
by changing the import. Unlike Optax, an argument Optax would quietly accept and turn into a
constant (a negative ``transition_steps``, ``decay_rate = 0``...) is refused at construction.

>>> import gradchain
>>> lr = gradchain.warmup_cosine_decay_schedule(0.0, 1e-3, warmup_steps=100, decay_steps=1000)
>>> [round(float(lr(t)), 6) for t in (0, 50, 100, 550, 1000)]
[0.0, 0.0005, 0.001, 0.0005, 0.0]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import Schedule, hyperparam_dtype

__all__ = [
    "constant_schedule",
    "cosine_decay_schedule",
    "cosine_onecycle_schedule",
    "exponential_decay",
    "join_schedules",
    "linear_onecycle_schedule",
    "linear_schedule",
    "piecewise_constant_schedule",
    "piecewise_interpolate_schedule",
    "polynomial_schedule",
    "sgdr_schedule",
    "warmup_constant_schedule",
    "warmup_cosine_decay_schedule",
    "warmup_exponential_decay_schedule",
    "WrappedSchedule",
]


def _float(x: Any) -> jax.Array:
    return jnp.asarray(x).astype(hyperparam_dtype())


def constant_schedule(value: float) -> Schedule:
    """The same value at every step.

    Value:      v(t) = value
    Args:       value -- a finite number.
    """
    _checks.check_hyperparam("value", value)

    def schedule(count):
        del count
        return _float(value)

    return schedule


def linear_schedule(
    init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    """Go linearly from init_value to end_value over transition_steps, then stay.

    Value:      s = clip(t - transition_begin, 0, transition_steps) / transition_steps
                v(t) = init_value + s * (end_value - init_value)
    Args:       init_value, end_value -- finite numbers.  transition_steps -- integer >= 0.
                transition_begin -- integer >= 0: v is init_value before it.
    Note:       transition_steps = 0 jumps to end_value at transition_begin; Optax's
                ``linear_schedule`` instead stays at init_value forever.
    """
    _checks.check_hyperparam("init_value", init_value)
    _checks.check_hyperparam("end_value", end_value)
    _checks.check_int("transition_steps", transition_steps)
    _checks.check_int("transition_begin", transition_begin)

    def schedule(count):
        t = _float(count) - transition_begin
        if transition_steps == 0:
            s = jnp.where(t >= 0, 1.0, 0.0).astype(t.dtype)
        else:
            s = jnp.clip(t, 0, transition_steps) / transition_steps
        return _float(init_value) + s * (_float(end_value) - _float(init_value))

    return schedule


def cosine_decay_schedule(
    init_value: float,
    decay_steps: int,
    alpha: float = 0.0,
    exponent: float = 1.0,
    *,
    end_value: float | None = None,
) -> Schedule:
    """Half a cosine from init_value down to end_value = alpha * init_value, then stay.

    Value:      c = (1 + cos(pi * min(t, decay_steps) / decay_steps)) / 2
                v(t) = end_value + (init_value - end_value) * c**exponent
    Args:       init_value -- finite.  decay_steps -- integer > 0.
                alpha -- the final value as a fraction of init_value (Optax's keyword).
                exponent -- > 0; shapes the curve.  end_value -- the final value itself,
                instead of alpha (give one or the other).
    Reference:  Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts",
                2017.
    """
    _checks.check_hyperparam("init_value", init_value)
    _checks.check_int("decay_steps", decay_steps, minimum=1)
    _checks.check_hyperparam("alpha", alpha)
    _checks.check_positive("exponent", exponent)
    if end_value is not None:
        _checks.check_hyperparam("end_value", end_value)
        if alpha != 0.0:
            raise _checks.GradchainError(
                f"give cosine_decay_schedule alpha or end_value, not both (alpha={alpha}, "
                f"end_value={end_value})"
            )

    def schedule(count):
        start = _float(init_value)
        end = _float(end_value) if end_value is not None else _float(alpha) * start
        steps = float(decay_steps)  # a float: 1e10 steps would overflow int32 under jit
        t = jnp.minimum(_float(count), steps)
        c = 0.5 * (1 + jnp.cos(jnp.pi * t / steps))
        return end + (start - end) * c ** _float(exponent)

    return schedule


def exponential_decay(
    init_value: float,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    """Multiply by decay_rate every transition_steps, smoothly or in stairs.

    Value:      s = max(t - transition_begin, 0) / transition_steps   (floor(s) if staircase)
                v(t) = init_value * decay_rate**s, then bounded by end_value: from below when
                decay_rate < 1, from above when decay_rate > 1.
    Args:       init_value -- finite.  transition_steps -- integer > 0.  decay_rate -- > 0.
                transition_begin -- integer >= 0: v is init_value before it.
                staircase -- decay at whole multiples of transition_steps only.
                end_value -- the bound, or None for none.
    Note:       Optax turns transition_steps <= 0 or decay_rate = 0 into a constant
                schedule; here they are errors.
    """
    _checks.check_hyperparam("init_value", init_value)
    _checks.check_int("transition_steps", transition_steps, minimum=1)
    _checks.check_positive("decay_rate", decay_rate)
    _checks.check_int("transition_begin", transition_begin)
    if end_value is not None:
        _checks.check_hyperparam("end_value", end_value)
    bound = jnp.maximum if decay_rate < 1 else jnp.minimum

    def schedule(count):
        s = jnp.maximum(_float(count) - transition_begin, 0) / transition_steps
        if staircase:
            s = jnp.floor(s)
        value = _float(init_value) * _float(decay_rate) ** s
        return value if end_value is None else bound(value, _float(end_value))

    return schedule


def piecewise_constant_schedule(
    init_value: float, boundaries_and_scales: Mapping[int, float] | None = None
) -> Schedule:
    """Start at init_value; from each boundary step on, multiply by its scale.

    Value:      v(t) = init_value * prod(scale_b for every boundary b <= t)
    Args:       init_value -- finite.  boundaries_and_scales -- ``{step: scale}``, steps
                integers >= 0, scales >= 0 (Optax's form: ``{1000: 0.1, 2000: 0.1}`` divides
                by 10 at step 1000 and again at step 2000).
    """
    _checks.check_hyperparam("init_value", init_value)
    pieces = sorted((boundaries_and_scales or {}).items())
    for boundary, factor in pieces:
        _checks.check_int("a boundary of boundaries_and_scales", boundary)
        _checks.check_non_negative(f"the scale at boundary {boundary}", factor)

    def schedule(count):
        t = jnp.asarray(count)
        value = _float(init_value)
        for boundary, factor in pieces:
            value = jnp.where(t >= boundary, value * _float(factor), value)
        return value

    return schedule


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Run schedules one after another; each restarts its count at its boundary.

    Value:      v(t) = schedules[i](t - boundaries[i-1]) for boundaries[i-1] <= t < boundaries[i]
                (schedules[0](t) before the first boundary).
    Args:       schedules -- n schedules.  boundaries -- n - 1 non-decreasing integers >= 0.
    """
    schedules, boundaries = list(schedules), list(boundaries)
    if not schedules or len(boundaries) != len(schedules) - 1:
        raise _checks.GradchainError(
            "join_schedules takes n schedules and n - 1 boundaries, got "
            f"{len(schedules)} schedules and {len(boundaries)} boundaries"
        )
    for i, s in enumerate(schedules):
        if not callable(s):
            raise _checks.GradchainError(
                f"schedules[{i}] must be a function of the step, got {s!r}"
            )
    for b in boundaries:
        _checks.check_int("a boundary of join_schedules", b)
    if boundaries != sorted(boundaries):
        raise _checks.GradchainError(f"boundaries must be non-decreasing, got {boundaries}")

    def schedule(count):
        t = jnp.asarray(count)
        value = _float(schedules[0](t))
        for boundary, later in zip(boundaries, schedules[1:]):
            value = jnp.where(t < boundary, value, _float(later(t - boundary)))
        return value

    return schedule


@_checks.names_arguments
def warmup_cosine_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
    exponent: float = 1.0,
) -> Schedule:
    """Warm up linearly to peak_value, then decay along a half cosine to end_value.

    Value:      t < warmup_steps:  linear from init_value to peak_value
                after:             cosine from peak_value to end_value over
                                   decay_steps - warmup_steps steps, then end_value
    Args:       init_value, peak_value, end_value -- finite.  warmup_steps -- integer >= 0.
                decay_steps -- integer > warmup_steps: the whole schedule's length, warmup
                included (Optax's meaning).  exponent -- > 0, as in cosine_decay_schedule.
    Note:       peak_value = 0 stays at 0 after the warmup, as Optax's does (it decays by a
                fraction of the peak, end_value / peak_value, taken as 0 there).
    Reference:  Goyal et al., "Accurate, Large Minibatch SGD", 2017 (warmup);
                Loshchilov & Hutter, 2017 (cosine).
    """
    _checks.check_int("warmup_steps", warmup_steps)
    _checks.check_int("decay_steps", decay_steps, minimum=1)
    _checks.check_hyperparam("end_value", end_value)
    if not decay_steps > warmup_steps:
        raise _checks.GradchainError(
            f"decay_steps counts the warmup too and must exceed warmup_steps, got "
            f"decay_steps={decay_steps}, warmup_steps={warmup_steps}"
        )
    warmup = linear_schedule(init_value, peak_value, warmup_steps)
    # A peak of 0 stays at 0 after the warmup, whatever end_value (as Optax: alpha is 0 there).
    end = 0.0 if _concrete_zero(peak_value) else end_value
    decay = cosine_decay_schedule(
        peak_value, decay_steps - warmup_steps, exponent=exponent, end_value=end
    )
    return join_schedules([warmup, decay], [warmup_steps])


def polynomial_schedule(
    init_value: float, end_value: float, power: float, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    """Go from init_value to end_value along a polynomial of the remaining fraction, then stay.

    Value:      s = clip(t - transition_begin, 0, transition_steps)
                v(t) = (init_value - end_value) * (1 - s / transition_steps)**power + end_value
    Args:       init_value, end_value -- finite.  power -- finite, > 0 (1 is linear_schedule;
                at power <= 0 the curve never leaves init_value, or is infinite at the end).
                transition_steps -- integer > 0.  transition_begin -- integer >= 0.
    Note:       Optax turns transition_steps <= 0 into a constant and a negative
                transition_begin into 0; here they are errors. The remaining fraction is
                computed as (T - s) / T, exactly 0 at s = T: Optax's 1 - s / T, which XLA
                compiles as 1 - s * (1/T), is -4.7e-8 there in float32 (-2.1e-17 in
                float64), and a power of 0.5 makes it NaN from step T on under jit, in
                both (Optax 0.2.8, measured: ``polynomial_schedule(1.0, 0.0, 0.5, 250)``).
    """
    _checks.check_hyperparam("init_value", init_value)
    _checks.check_hyperparam("end_value", end_value)
    _checks.check_positive("power", power)
    _checks.check_int("transition_steps", transition_steps, minimum=1)
    _checks.check_int("transition_begin", transition_begin)

    def schedule(count):
        s = jnp.clip(_float(count) - transition_begin, 0, transition_steps)
        remaining = (transition_steps - s) / transition_steps  # in [0, 1], exactly 0 at the end
        return (_float(init_value) - _float(end_value)) * remaining ** _float(power) + _float(end_value)

    return schedule


def sgdr_schedule(cosine_kwargs: Iterable[dict[str, Any]]) -> Schedule:
    """SGDR: warm restarts -- warmup-cosine cycles run one after another.

    Value:      cycle i is ``warmup_cosine_decay_schedule(**cosine_kwargs[i])``, restarted at
                the sum of the earlier cycles' decay_steps.
    Args:       cosine_kwargs -- one dict of warmup_cosine_decay_schedule's arguments per cycle
                (init_value, peak_value, warmup_steps, decay_steps, end_value, exponent).
    Reference:  Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts",
                ICLR 2017.
    """
    if isinstance(cosine_kwargs, Mapping) or not isinstance(cosine_kwargs, Iterable):
        raise _checks.GradchainError(
            f"sgdr_schedule takes a list of dicts of warmup_cosine_decay_schedule's "
            f"arguments, one per cycle, got {type(cosine_kwargs).__name__}"
        )
    cycles, boundaries, start = [], [], 0
    for i, kwargs in enumerate(cosine_kwargs):
        if not isinstance(kwargs, Mapping) or "decay_steps" not in kwargs:
            raise _checks.GradchainError(
                f"cosine_kwargs[{i}] must be a dict of warmup_cosine_decay_schedule's arguments "
                f"with decay_steps, got {kwargs!r}"
            )
        cycles.append(warmup_cosine_decay_schedule(**kwargs))
        start += kwargs["decay_steps"]
        boundaries.append(start)
    if not cycles:
        raise _checks.GradchainError("sgdr_schedule needs at least one cycle in cosine_kwargs")
    return join_schedules(cycles, boundaries[:-1])


def _interpolated_pieces(kind: str, init_value: float, boundaries_and_scales: dict) -> Schedule:
    """Start at init_value; reach value * scale at each boundary, interpolating (``"linear"``
    or ``"cosine"``) from the previous boundary; hold the last value."""
    boundaries, scales = zip(*sorted(boundaries_and_scales.items()))

    def between(start, end, pct):
        if kind == "linear":
            return (end - start) * pct + start
        return end + (start - end) / 2.0 * (jnp.cos(jnp.pi * pct) + 1)

    def schedule(count):
        t = _float(count)
        knots = jnp.asarray((0, *boundaries)).astype(t.dtype)
        values = jnp.cumprod(jnp.stack([_float(v) for v in (init_value, *scales)]))
        inside = (knots[:-1] <= t) & (t < knots[1:])
        pct = (t - knots[:-1]) / jnp.maximum(knots[1:] - knots[:-1], 1)
        value = jnp.sum(jnp.where(inside, between(values[:-1], values[1:], pct), 0))
        return value + jnp.where(knots[-1] <= t, values[-1], 0)

    return schedule


def piecewise_interpolate_schedule(
    interpolate_type: str, init_value: float, boundaries_and_scales: dict[int, float] | None = None
) -> Schedule:
    """Multiply the value by a scale at each boundary, gliding there from the previous one.

    Value:      v_0 = init_value, v_k = v_{k-1} * scale_k at boundary b_k (b_0 = 0); between
                b_{k-1} and b_k, v(t) moves from v_{k-1} to v_k linearly, or along a half
                cosine; from the last boundary on, v(t) = the last v_k.
    Args:       interpolate_type -- "linear" or "cosine".  init_value -- finite.
                boundaries_and_scales -- {step (int >= 0): scale (>= 0)}; none: a constant.
    Note:       Optax's semantics (``optax.piecewise_interpolate_schedule``): the scales
                accumulate, and the interpolation runs between the accumulated values.
    """
    _checks.check_choice("interpolate_type", interpolate_type, ("linear", "cosine"))
    _checks.check_hyperparam("init_value", init_value)
    for step, scale in (boundaries_and_scales or {}).items():
        _checks.check_int("boundaries_and_scales (a boundary)", step)
        _checks.check_non_negative(f"boundaries_and_scales[{step}]", scale)
    if not boundaries_and_scales:
        return constant_schedule(init_value)
    return _interpolated_pieces(interpolate_type, init_value, boundaries_and_scales)


class WrappedSchedule:
    """A schedule that keeps its own step count: ``init()``, ``update(state)``, ``state ->
    value`` (Optax's ``optax.schedules.WrappedSchedule``, the form its live hyperparameters
    hold a schedule in).

    >>> import gradchain
    >>> wrapped = gradchain.WrappedSchedule(gradchain.linear_schedule(1.0, 0.0, 4))
    >>> state = wrapped.update(wrapped.init())
    >>> float(wrapped(state))
    0.75
    """

    def __init__(self, schedule_fn: Schedule) -> None:
        if not callable(schedule_fn):
            raise _checks.GradchainError(
                f"schedule_fn must be a schedule (a function of the step count), got "
                f"{type(schedule_fn).__name__}"
            )
        self.schedule_fn = schedule_fn

    def init(self) -> WrappedScheduleState:
        return WrappedScheduleState(count=jnp.zeros([], jnp.int32))

    def update(self, state: WrappedScheduleState, **extra_args: Any) -> WrappedScheduleState:
        """One step: the count goes up by one, and stays at int32's largest value there."""
        count = jnp.asarray(state.count, jnp.int32)
        top = jnp.iinfo(jnp.int32).max
        return WrappedScheduleState(count=jnp.where(count < top, count + 1, top))

    def __call__(self, state: WrappedScheduleState, **extra_args: Any) -> jax.Array:
        return self.schedule_fn(state.count)


class WrappedScheduleState(NamedTuple):
    """WrappedSchedule's memory: the int32 step count."""

    count: jax.Array


def _concrete_zero(value: Any) -> bool:
    return not isinstance(value, jax.core.Tracer) and bool(jnp.all(jnp.asarray(value) == 0))


def _check_onecycle(transition_steps, peak_value, pct_start, div_factor, final_div_factor):
    _checks.check_int("transition_steps", transition_steps, minimum=1)
    _checks.check_hyperparam("peak_value", peak_value)
    _checks.check_closed_unit_interval("pct_start", pct_start)
    _checks.check_positive("div_factor", div_factor)
    _checks.check_positive("final_div_factor", final_div_factor)


def cosine_onecycle_schedule(
    transition_steps: int,
    peak_value: float,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    """One cycle, cosine-shaped: up from peak/div_factor to peak, then down far below.

    Value:      0 .. floor(pct_start T): cosine from peak / div_factor up to peak
                .. T: cosine down to peak / (div_factor * final_div_factor); then hold it
    Args:       transition_steps (T) -- integer > 0.  peak_value -- finite.  pct_start -- in
                [0, 1].  div_factor, final_div_factor -- > 0.
    Note:       Optax's ``cosine_onecycle_schedule``; the boundaries are whole steps, as there.
    Reference:  Smith & Topin, "Super-Convergence", 2017.
    """
    _check_onecycle(transition_steps, peak_value, pct_start, div_factor, final_div_factor)
    return _interpolated_pieces(
        "cosine",
        peak_value / div_factor,
        {int(pct_start * transition_steps): div_factor,
         int(transition_steps): 1.0 / (div_factor * final_div_factor)},
    )


def linear_onecycle_schedule(
    transition_steps: int,
    peak_value: float,
    pct_start: float = 0.3,
    pct_final: float = 0.85,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Schedule:
    """One cycle, piecewise linear: up to peak, back down to the start, then far below.

    Value:      0 .. floor(pct_start T): linear from peak / div_factor up to peak
                .. floor(pct_final T): linear back down to peak / div_factor
                .. T: linear down to peak / (div_factor * final_div_factor); then hold it
    Args:       as cosine_onecycle_schedule; pct_final -- in [pct_start, 1].
    Note:       Optax's ``linear_onecycle_schedule``.
    Reference:  Smith & Topin, "Super-Convergence", 2017.
    """
    _check_onecycle(transition_steps, peak_value, pct_start, div_factor, final_div_factor)
    _checks.check_closed_unit_interval("pct_final", pct_final)
    if pct_final < pct_start:
        raise _checks.GradchainError(
            f"pct_final must be >= pct_start, got pct_final={pct_final}, pct_start={pct_start}"
        )
    return _interpolated_pieces(
        "linear",
        peak_value / div_factor,
        {int(pct_start * transition_steps): div_factor,
         int(pct_final * transition_steps): 1.0 / div_factor,
         transition_steps: 1.0 / final_div_factor},
    )


@_checks.names_arguments
def warmup_constant_schedule(init_value: float, peak_value: float, warmup_steps: int) -> Schedule:
    """Warm up linearly from init_value to peak_value over warmup_steps, then stay.

    Value:      linear_schedule(init_value, peak_value, warmup_steps)
    Args:       init_value, peak_value -- finite.  warmup_steps -- integer >= 0.
    Note:       warmup_steps = 0 starts at peak_value; Optax's stays at init_value forever
                (its linear_schedule with transition_steps = 0).
    """
    return linear_schedule(init_value, peak_value, warmup_steps)


@_checks.names_arguments
def warmup_exponential_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    """Warm up linearly to peak_value, then decay exponentially from it.

    Value:      t < warmup_steps: linear from init_value to peak_value
                after: exponential_decay(peak_value, transition_steps, decay_rate,
                       transition_begin, staircase, end_value) at t - warmup_steps
    Args:       as linear_schedule and exponential_decay.
    Note:       Optax's ``warmup_exponential_decay_schedule``; as in exponential_decay,
                transition_steps <= 0 and decay_rate = 0 are refused where Optax makes a
                constant.
    """
    _checks.check_hyperparam("init_value", init_value)
    _checks.check_hyperparam("peak_value", peak_value)
    _checks.check_int("warmup_steps", warmup_steps)
    warmup = linear_schedule(init_value, peak_value, warmup_steps)
    decay = exponential_decay(
        peak_value, transition_steps, decay_rate, transition_begin, staircase, end_value
    )
    return join_schedules([warmup, decay], [warmup_steps])
