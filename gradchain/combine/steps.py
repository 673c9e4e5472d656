"""Accumulation and skipping: when the inner transform runs (see ``gradchain.combine``).
Optax's forms are here under Optax's names: ``MultiSteps`` and ``apply_if_finite``."""

from __future__ import annotations

import functools
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
    tree_zeros_like,
    updater,
)
from gradchain.combine.wrapping import cast_like, check_inputs, wrapper, zero_updates
from gradchain.transforms.moment_math import compute_dtype, increment

__all__ = [
    "AccumulateState",
    "ApplyIfFiniteState",
    "MultiSteps",
    "MultiStepsState",
    "SkipState",
    "accumulate",
    "apply_if_finite",
    "skip_non_finite",
]


@describe(
    count="micro-steps accumulated in this cycle (int32 scalar, 0 to every_k - 1)",
    acc="running mean of this cycle's updates, one array per parameter",
    inner="the wrapped transform's state; it changes on every every_k-th call only",
)
class AccumulateState(NamedTuple):
    count: jax.Array
    acc: Any
    inner: Any


def accumulate(
    transform: GradientTransformation,
    every_k: int,
    *,
    acc_dtype: Any = None,
    use_grad_mean: bool = True,
) -> GradientTransformation:
    r"""Gradient accumulation: apply ``transform`` once every ``every_k`` calls, to the mean.

    Update:     acc <- acc + (u_t - acc) / (n + 1)        (n: micro-steps so far, this cycle)
                n + 1 < every_k:  emit 0; the inner state is untouched
                n + 1 = every_k:  emit transform(acc); reset acc to 0 and n to 0
    State:      count -- int32 scalar.  acc -- like the params, dtype ``acc_dtype`` (default:
                the params').  inner -- the transform's state.   Memory: +1x params.
    Args:       transform -- the optimizer to run on the mean.  every_k -- integer >= 1.
                acc_dtype -- e.g. jnp.float32 to accumulate bfloat16 gradients in float32.
                use_grad_mean -- False: the inner transform gets the sum, not the mean.
                every_k may be a traced integer (``gradchain.MultiSteps`` passes its
                ``every_k_schedule``'s value this way).
    Note:       Wrap the whole optimizer, or put it first in a chain: the inner transform
                reads the accumulated mean as its gradient, so a chain that hands it a
                different gradient (it follows a non-pre-processing transform) is refused.
                jit-safe: the choice is a ``lax.cond``, and the inner transform runs only on
                the every_k-th call. Optax: ``optax.MultiSteps(opt, every_k)`` (same mean;
                Optax computes the inner update on every call and keeps a second counter).
    """
    inner = _as_transform(transform)
    call = updater(inner)
    if not isinstance(every_k, jax.core.Tracer):
        _checks.check_int("every_k", every_k, minimum=1, maximum=_checks.INT32_MAX)
    _checks.check_dtype("acc_dtype", acc_dtype)

    def init(params):
        return AccumulateState(
            count=jnp.zeros([], jnp.int32),
            acc=tree_zeros_like(params, acc_dtype),
            inner=inner.init(params),
        )

    def update(updates, state, params=None, *, gradient=None, **extra):
        check_inputs("accumulate", state, AccumulateState, updates, params, gradient)
        _checks.check_same_structure("updates", updates, "the state's accumulator", state.acc)
        if gradient is not None and gradient is not updates:
            raise _checks.GradchainError(
                "accumulate must see the gradient itself: wrap the whole optimizer in it, or "
                "put it before every transform that is not pre-processing in the chain"
            )
        n = state.count

        def running_mean(a, u):
            c = compute_dtype(a.dtype, u.dtype)
            a_c = a.astype(c)
            if not use_grad_mean:
                return (a_c + u.astype(c)).astype(a.dtype)
            return (a_c + (u.astype(c) - a_c) / (n + 1).astype(c)).astype(a.dtype)

        acc = jax.tree.map(running_mean, state.acc, updates)

        def apply(operands):
            acc, inner_state = operands
            out, inner_state = call(cast_like(acc, updates), inner_state, params, None, extra)
            return cast_like(out, updates), inner_state, jax.tree.map(jnp.zeros_like, acc), n * 0

        def wait(operands):
            acc, inner_state = operands
            return zero_updates(updates), inner_state, acc, n + 1

        out, inner_state, acc, count = jax.lax.cond(
            n + 1 >= every_k, apply, wait, (acc, state.inner)
        )
        return out, AccumulateState(count=count, acc=acc, inner=inner_state)

    return wrapper(init, update, "accumulate", {"inner": inner})


@describe(
    skipped="steps skipped so far for a non-finite gradient, in total (int32 scalar)",
    consecutive="steps skipped in a row up to now (int32 scalar; 0 after a finite step)",
    inner="the wrapped transform's state, untouched by a skipped step",
)
class SkipState(NamedTuple):
    skipped: jax.Array
    consecutive: jax.Array
    inner: Any


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _raise_too_many(consecutive, limit):
    raise _checks.GradchainError(
        f"skip_non_finite: {int(consecutive)} non-finite gradients in a row, more than "
        f"max_consecutive={limit}; the run has diverged"
    )


def skip_non_finite(
    transform: GradientTransformation,
    max_consecutive: int | None = None,
    *,
    axis_name: Any = None,
) -> GradientTransformation:
    r"""Skip a step whose gradient holds a NaN or an Inf: no change to params or state.

    Update:     finite(u) (and finite(gradient)):  u_t = transform(u)
                otherwise: emit -0.0 everywhere (p + u is p bit for bit), keep the inner
                state bit for bit, count the step in ``skipped`` and ``consecutive``.
    State:      skipped, consecutive -- int32 scalars.  inner -- the transform's state.
                Memory: 0x params.
    Args:       transform -- the optimizer to protect.
                max_consecutive -- None (skip forever), or an integer >= 0: when more than
                that many steps in a row are skipped, the step fails with the message
                ``N non-finite gradients in a row, more than max_consecutive=M``. Called
                eagerly, ``update`` raises ``GradchainError`` (a ``ValueError``) itself.
                Traced (under ``jit``, ``scan``, ``vmap``...), it can only raise from a
                ``jax.debug.callback`` (which runs only on that step: no host round trip
                otherwise), and JAX hands it to the caller as a
                ``jax.errors.JaxRuntimeError`` (a ``RuntimeError``, not a ``ValueError``:
                ``except ValueError`` misses it) whose message contains ours; it is raised
                by the jitted call itself, or, where JAX dispatches asynchronously, when
                the step's results are first waited for (``jax.block_until_ready``).
                axis_name -- under ``shard_map`` with sharded leaves, the verdict is agreed
                over that mesh axis, so that every shard skips the same steps.
    Note:       Optax's ``apply_if_finite`` applies the update anyway after too many
                non-finite steps; here the loop is stopped instead (or never, with None).
    """
    inner = _as_transform(transform)
    call = updater(inner)
    if max_consecutive is not None:
        _checks.check_int("max_consecutive", max_consecutive)
    limit = max_consecutive

    def init(params):
        return SkipState(
            skipped=jnp.zeros([], jnp.int32),
            consecutive=jnp.zeros([], jnp.int32),
            inner=inner.init(params),
        )

    def update(updates, state, params=None, *, gradient=None, **extra):
        check_inputs("skip_non_finite", state, SkipState, updates, params, gradient)
        finite = _all_finite(updates if gradient is None else (updates, gradient))
        if axis_name is not None:
            bad = jax.lax.psum((~finite).astype(jnp.int32), axis_name)
            finite = bad == 0

        def step(inner_state):
            out, inner_state = call(updates, inner_state, params, gradient, extra)
            return cast_like(out, updates), inner_state

        def skip(inner_state):
            return zero_updates(updates), inner_state

        out, inner_state = jax.lax.cond(finite, step, skip, state.inner)
        skipped = jnp.where(finite, state.skipped, increment(state.skipped))
        consecutive = jnp.where(
            finite, jnp.zeros_like(state.consecutive), increment(state.consecutive)
        )
        if max_consecutive is not None and not isinstance(consecutive, jax.core.Tracer):
            if int(consecutive) > max_consecutive:  # eager: our own error, raised here
                _raise_too_many(consecutive, limit)
        elif max_consecutive is not None:  # traced: only a host callback can raise
            jax.lax.cond(
                consecutive > max_consecutive,
                lambda c: jax.debug.callback(functools.partial(_raise_too_many, limit=limit), c),
                lambda c: None,
                consecutive,
            )
        return out, SkipState(skipped=skipped, consecutive=consecutive, inner=inner_state)

    return wrapper(init, update, "skip_non_finite", {"inner": inner})


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
            preprocessing=False,
            children=(Child(None, self._opt, ("inner_opt_state",)),),
        )
