"""Measuring without changing: transforms that pass the updates through unchanged and keep, in
their state, a measurement of them (a norm, a moving average of a norm) for logging."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import (
    Child,
    GradientTransformation,
    _as_transform,
    describe,
    stateless,
    updater,
)
from gradchain.transforms.moment_math import cast, compute_dtype
from gradchain.transforms.momentum import ema

__all__ = ["MonitorState", "SnapshotState", "measure_with_ema", "monitor", "snapshot"]


@describe(measurement="{measure_name: measure(the last updates)}, measure(params) at init")
class SnapshotState(NamedTuple):
    measurement: dict[str, Any]


def snapshot(measure_name: str, measure: Callable[[Any], Any]) -> GradientTransformation:
    r"""Keep ``measure(updates)`` in the state; pass the updates through.

    Update:     u <- u ;  m <- measure(u)
    State:      measurement -- ``{measure_name: m}`` (``measure(params)`` at init).
                Memory: the measurement's.
    Reference:  Optax, ``optax.transforms.snapshot``.
    """

    def init(params):
        return SnapshotState({measure_name: measure(params)})

    def update(updates, state, params=None, **extra):
        del state, params, extra
        return updates, SnapshotState({measure_name: measure(updates)})

    return GradientTransformation(init, update, name="snapshot", preprocessing=True)


@describe(
    measurements="{name: what that measure emitted at the last update} (zeros at init)",
    measure_states="each measure's own state, in the order of the measures",
)
class MonitorState(NamedTuple):
    measurements: dict[str, Any]
    measure_states: tuple[Any, ...]


def monitor(measures: dict[str, Any]) -> GradientTransformation:
    r"""Run several measures on the updates and keep what they emit; pass the updates through.

    Update:     u <- u ;  m_k <- measure_k(u)  (a function of the updates, or a transform
                whose *output* is the measurement, e.g. ``measure_with_ema``)
    State:      measurements -- ``{name: m_k}``, zeros at init (Optax: ``{}``; here the state
                keeps one structure, as ``jax.lax.scan`` needs).  measure_states -- each
                transform's state.   Memory: the measurements' plus the measures' states.
    Reference:  Optax, ``optax.transforms.monitor``.
    """
    if not isinstance(measures, dict):
        raise _checks.GradchainError(
            f"monitor: measures must be a dict from name to a function or transform, got "
            f"{type(measures).__name__}"
        )
    as_transforms = {}
    for name, measure in measures.items():
        if hasattr(measure, "init") and hasattr(measure, "update"):
            as_transforms[name] = _as_transform(measure)
        elif callable(measure):
            as_transforms[name] = stateless(lambda u, _, m=measure: m(u))
        else:
            raise _checks.GradchainError(
                f"monitor: measures[{name!r}] must be a function of the updates or a "
                f"transform, got {measure!r}"
            )
    names = tuple(as_transforms)
    calls = [updater(as_transforms[n]) for n in names]

    def init(params):
        states = tuple(as_transforms[n].init(params) for n in names)
        shapes = {  # what each measure emits, measured on params-shaped updates
            n: jax.eval_shape(lambda s, c=c: c(params, s, params, None, {})[0], st)
            for n, c, st in zip(names, calls, states)
        }
        zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)
        return MonitorState(zeros, states)

    def update(updates, state, params=None, *, gradient=None, **extra):
        measured, states = {}, []
        for name, call, inner in zip(names, calls, state.measure_states):
            measured[name], new = call(updates, inner, params, gradient, extra)
            states.append(new)
        return updates, MonitorState(measured, tuple(states))

    children = tuple(Child(n, as_transforms[n], ("measure_states", i)) for i, n in enumerate(names))
    return GradientTransformation(
        init, update, name="monitor", preprocessing=True, children=children
    )


def _as_floating(measured: Any) -> Any:
    """A measurement an average can hold: boolean and integer leaves as floats (the compute
    dtype: float32, or float64 for a 64-bit integer under x64); floating leaves unchanged."""

    def leaf(v):
        v = jnp.asarray(v)
        return v if jnp.issubdtype(v.dtype, jnp.inexact) else cast(v, compute_dtype(v.dtype))

    return jax.tree.map(leaf, measured)


def measure_with_ema(
    measure: Callable[[Any], Any], decay: float, debias: bool = True, accumulator_dtype: Any = None
) -> GradientTransformation:
    r"""A measure for ``monitor``: a moving average of ``measure(updates)``. Its *output* is
    the average (not the updates), so use it inside ``monitor``, not in a chain of steps.

    Update:     out <- ema_t(measure(u))   (``gradchain.ema``, debiased unless ``debias=False``)
    State:      the EMA's, shaped like ``measure(params)``.   Memory: the measurement's.
                A boolean or integer measurement (``tree.norm(u) > threshold``: how often a
                clip bites) is averaged as floats: its fraction, as Optax's average gives it.
    Reference:  Optax, ``optax.transforms.measure_with_ema``.
    """
    average = ema(decay, debias, accumulator_dtype)
    call = updater(average)

    def init(params):
        return average.init(_as_floating(measure(params)))

    def update(updates, state, params=None, **extra):
        del params, extra
        measured = _as_floating(measure(updates))
        return call(measured, state, None, measured, {})

    return GradientTransformation(init, update, name="measure_with_ema", preprocessing=False)
