"""Optax's wrappers under Optax's names and keywords: ``multi_transform``, ``MultiSteps``,
``apply_if_finite``. Each is built on gradchain's own wrapper (``partition``, ``accumulate``,
``skip_non_finite``), which stays the name to read in gradchain code."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import Child, GradientTransformation, _as_transform, describe
from gradchain.combine.masks import partition
from gradchain.combine.steps import AccumulateState, SkipState, accumulate, skip_non_finite
from gradchain.combine.wrapping import check_inputs, zero_updates
from gradchain.transforms.moment_math import increment

__all__ = [
    "ApplyIfFiniteState",
    "MultiSteps",
    "MultiStepsState",
    "apply_if_finite",
    "multi_transform",
]


def multi_transform(
    transforms: Mapping[Hashable, GradientTransformation],
    param_labels: Any,
    *,
    mask_compatible_extra_args: bool = False,
) -> GradientTransformation:
    """Optax's ``multi_transform``: ``gradchain.partition(transforms, param_labels)``.

    Note: the state is ``PartitionState(groups={label: state})``; Optax's is
    ``MultiTransformState(inner_states={label: MaskedState(inner_state)})``.
    """
    return partition(transforms, param_labels=param_labels)


# --- apply_if_finite -------------------------------------------------------------------------


@describe(
    notfinite_count="steps skipped in a row up to now for a non-finite update (int32 scalar)",
    last_finite="whether the last update was finite (bool scalar)",
    total_notfinite="steps skipped so far for a non-finite update, in total (int32 scalar)",
    inner_state="the wrapped transform's state, untouched by a skipped step",
)
class ApplyIfFiniteState(NamedTuple):
    notfinite_count: jax.Array
    last_finite: jax.Array
    total_notfinite: jax.Array
    inner_state: Any


def apply_if_finite(
    inner: GradientTransformation, max_consecutive_errors: int
) -> GradientTransformation:
    """Optax's ``apply_if_finite``: ``gradchain.skip_non_finite(inner, max_consecutive_errors)``
    with Optax's state fields (``notfinite_count``, ``last_finite``, ``total_notfinite``,
    ``inner_state``).

    Update:  a non-finite update is skipped (zero update, inner state kept), as in Optax.
    Note:    after more than ``max_consecutive_errors`` non-finite updates in a row, Optax
             applies the non-finite update (the params become NaN); here the step fails
             loudly instead (see ``skip_non_finite``: ``GradchainError`` eagerly, a
             ``JaxRuntimeError`` carrying the same message under ``jit``).
    """
    inner = _as_transform(inner)
    skip = skip_non_finite(inner, max_consecutive_errors)

    def as_optax(s: SkipState) -> ApplyIfFiniteState:
        return ApplyIfFiniteState(s.consecutive, s.consecutive == 0, s.skipped, s.inner)

    def init(params):
        return as_optax(skip.init(params))

    def update(updates, state, params=None, **extra):
        check_inputs("apply_if_finite", state, ApplyIfFiniteState, updates, params, None)
        ours = SkipState(state.total_notfinite, state.notfinite_count, state.inner_state)
        updates, ours = skip.update(updates, ours, params, **extra)
        return updates, as_optax(ours)

    return GradientTransformation(
        init,
        update,
        name="apply_if_finite",
        preprocessing=getattr(inner, "preprocessing", True),
        children=(Child(None, inner, ("inner_state",)),),
    )


# --- MultiSteps ------------------------------------------------------------------------------


@describe(
    mini_step="micro-steps accumulated in this cycle (int32 scalar)",
    gradient_step="updates the inner optimizer has made so far (int32 scalar)",
    inner_opt_state="the inner optimizer's state; it changes when the cycle completes",
    acc_grads="running mean (or sum) of this cycle's gradients, one array per parameter",
    skip_state="what should_skip_update_fn last returned besides its verdict",
)
class MultiStepsState(NamedTuple):
    mini_step: jax.Array
    gradient_step: jax.Array
    inner_opt_state: Any
    acc_grads: Any
    skip_state: Any = ()


def _never_skip(updates, gradient_step, params):
    return jnp.asarray(False), ()


class MultiSteps:
    """Optax's ``MultiSteps``: gradient accumulation over ``every_k_schedule`` micro-steps,
    built on ``gradchain.accumulate``.

    Args:   opt -- the optimizer to run on the accumulated gradient.
            every_k_schedule -- an integer, or a function of the number of inner updates
            made so far (``gradient_step``) returning one.
            use_grad_mean -- the mean (True, default) or the sum of the micro-gradients.
            should_skip_update_fn -- Optax's ``(updates, gradient_step, params) ->
            (should_skip, skip_state)``; a skipped micro-step changes nothing.
            accumulator_dtype -- the accumulator's dtype (float32 as in Optax; None: the
            params').
    Use ``.init`` / ``.update`` directly, or ``.gradient_transformation()``; ``has_updated``
    tells whether the last call updated the params. Memory: +1x params (the accumulator).
    Note:   Optax computes the inner update at every micro-step and discards it; here it runs
            only when the cycle completes (a ``lax.cond``). The numbers are the same.
    """

    def __init__(
        self,
        opt: GradientTransformation,
        every_k_schedule: int | Callable[[jax.Array], Any],
        use_grad_mean: bool = True,
        should_skip_update_fn: Callable[..., Any] | None = None,
        accumulator_dtype: Any = jnp.float32,
    ):
        self._opt = _as_transform(opt)
        if not callable(every_k_schedule):
            _checks.check_int("every_k_schedule", every_k_schedule, 1, _checks.INT32_MAX)
        self._every_k = every_k_schedule
        self._use_grad_mean = use_grad_mean
        self._should_skip = should_skip_update_fn or _never_skip
        _checks.check_dtype("accumulator_dtype", accumulator_dtype)
        self._acc_dtype = accumulator_dtype

    @property
    def inner_opt(self) -> GradientTransformation:
        return self._opt

    def _accumulate(self, every_k: Any) -> GradientTransformation:
        if not isinstance(every_k, jax.core.Tracer):
            _checks.check_int("every_k_schedule's value", int(every_k), 1, _checks.INT32_MAX)
            every_k = int(every_k)  # a schedule's value, called eagerly
        return accumulate(
            self._opt, every_k, acc_dtype=self._acc_dtype, use_grad_mean=self._use_grad_mean
        )

    def init(self, params: Any) -> MultiStepsState:
        step = jnp.zeros([], jnp.int32)
        _, skip_state = self._should_skip(jax.tree.map(jnp.zeros_like, params), step, params)
        inner = self._accumulate(1).init(params)
        return MultiStepsState(inner.count, step, inner.inner, inner.acc, skip_state)

    def update(self, updates: Any, state: MultiStepsState, params: Any = None, **extra: Any):
        every_k = self._every_k(state.gradient_step) if callable(self._every_k) else self._every_k
        skip, skip_state = self._should_skip(updates, state.gradient_step, params)
        if (jnp.result_type(skip), jnp.shape(skip)) != (jnp.bool_, ()):
            raise _checks.GradchainError(
                "should_skip_update_fn must return a bool scalar as its verdict, got "
                f"{jnp.result_type(skip)} of shape {jnp.shape(skip)}"
            )
        acc = self._accumulate(every_k)

        def run(s):
            ours = AccumulateState(s.mini_step, s.acc_grads, s.inner_opt_state)
            out, ours = acc.update(updates, ours, params, **extra)
            emitted = ours.count == 0
            step = jnp.where(emitted, increment(s.gradient_step), s.gradient_step)
            return out, MultiStepsState(ours.count, step, ours.inner, ours.acc, s.skip_state)

        def hold(s):
            return zero_updates(updates), s

        out, new = jax.lax.cond(skip, hold, run, state)
        return out, new._replace(skip_state=skip_state)

    def has_updated(self, state: MultiStepsState) -> jax.Array:
        """True when the last ``update`` ran the inner optimizer."""
        return jnp.logical_and(state.mini_step == 0, state.gradient_step > 0)

    def gradient_transformation(self) -> GradientTransformation:
        return GradientTransformation(
            self.init,
            self.update,
            name="MultiSteps",
            children=(Child(None, self._opt, ("inner_opt_state",)),),
        )
