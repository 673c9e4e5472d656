"""Conditions on the step: run an inner transform only when a condition holds, emit every k-th
step, and the skip rules ``MultiSteps`` takes (``should_skip_update_fn``).

The states keep Optax's field names (``inner_state``, ``step``), which users read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import (
    Child,
    GradientTransformation,
    _as_transform,
    all_preprocessing,
    describe,
    tree_zeros_like,
    updater,
)

__all__ = [
    "ApplyEvery",
    "ConditionFn",
    "ConditionallyMaskState",
    "ConditionallyTransformState",
    "ShouldSkipUpdateFunction",
    "apply_every",
    "conditionally_mask",
    "conditionally_transform",
    "skip_large_updates",
    "skip_not_finite",
]


class ConditionFn(Protocol):
    """The type of ``conditionally_transform``'s ``should_transform_fn`` (Optax's name):
    ``fn(step, **extra_args) -> bool scalar``, ``step`` the int32 count of calls so far; the
    inner transform runs where it is True."""

    def __call__(self, step: jax.Array, **extra_args: Any) -> jax.Array: ...


class ShouldSkipUpdateFunction(Protocol):
    """The type of ``MultiSteps``' ``should_skip_update_fn`` (Optax's name), as
    ``skip_not_finite`` and ``skip_large_updates``: ``fn(updates, gradient_step, params) ->
    (should_skip, info)``, a bool scalar and a tree of diagnostics kept in the state."""

    def __call__(
        self, updates: Any, gradient_step: jax.Array, params: Any
    ) -> tuple[jax.Array, Any]: ...


def _next(step: jax.Array) -> jax.Array:
    """step + 1, saturating at the int32 maximum instead of wrapping."""
    return jnp.where(step < jnp.iinfo(jnp.int32).max, step + 1, step)


@describe(
    inner_state="the inner transform's state (unchanged on a step it does not run)",
    step="how many updates this wrapper has seen",
)
class ConditionallyTransformState(NamedTuple):
    inner_state: Any
    step: jax.Array


@describe(
    step="how many updates this wrapper has seen",
    inner_state="the inner transform's state (unchanged on a step it does not run)",
)
class ConditionallyMaskState(NamedTuple):
    step: jax.Array
    inner_state: Any


def _conditional(inner, should_transform_fn, forward_extra_args, state_class, otherwise, name):
    if not callable(should_transform_fn):
        raise _checks.GradchainError(
            f"{name}: should_transform_fn must be a function of the step count, got "
            f"{should_transform_fn!r}"
        )
    inner = _as_transform(inner)
    call = updater(inner)

    def init(params):
        return state_class(inner_state=inner.init(params), step=jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, *, gradient=None, **extra):
        run = should_transform_fn(state.step, **(extra if forward_extra_args else {}))
        updates, inner_state = jax.lax.cond(
            run,
            lambda: call(updates, state.inner_state, params, gradient, extra),
            lambda: (otherwise(updates), state.inner_state),
        )
        return updates, state_class(inner_state=inner_state, step=_next(state.step))

    return GradientTransformation(
        init,
        update,
        name=name,
        preprocessing=all_preprocessing([inner]),
        children=(Child(None, inner, ("inner_state",)),),
    )


def conditionally_transform(
    inner: Any, should_transform_fn: Callable[..., Any], forward_extra_args: bool = False
) -> GradientTransformation:
    r"""Run ``inner`` on the steps where ``should_transform_fn(step)`` is True; on the others
    pass the updates through and keep its state.

    Update:     u <- inner(u) if cond(t) else u ;  t <- t + 1
    State:      inner_state -- inner's.  step -- int32 count.   Memory: inner's.
    Args:       should_transform_fn -- step -> bool array (traced); forward_extra_args --
                also pass the update's keyword arguments to it.
    Reference:  Optax, ``optax.transforms.conditionally_transform``.
    """
    return _conditional(
        inner, should_transform_fn, forward_extra_args, ConditionallyTransformState,
        lambda u: u, "conditionally_transform",
    )  # fmt: skip


def conditionally_mask(
    inner: Any, should_transform_fn: Callable[..., Any], forward_extra_args: bool = False
) -> GradientTransformation:
    r"""Run ``inner`` on the steps where ``should_transform_fn(step)`` is True; on the others
    emit zeros and keep its state.

    Update:     u <- inner(u) if cond(t) else 0 ;  t <- t + 1
    State:      step -- int32 count.  inner_state -- inner's.   Memory: inner's.
    Reference:  Optax, ``optax.transforms.conditionally_mask``.
    """
    return _conditional(
        inner, should_transform_fn, forward_extra_args, ConditionallyMaskState,
        lambda u: jax.tree.map(jnp.zeros_like, u), "conditionally_mask",
    )  # fmt: skip


@describe(count="steps into the current period of k (0 .. k-1)", grad_acc="the sum so far")
class ApplyEvery(NamedTuple):
    count: jax.Array
    grad_acc: Any


def apply_every(k: int = 1) -> GradientTransformation:
    r"""Sum the updates over ``k`` steps; emit the sum on every k-th step and zeros between.

    Update:     a <- u + (a if t mod k != 0 else 0) ;  out = a if t mod k == k - 1 else 0
    State:      count -- int32 position in the period.  grad_acc -- like params.
                Memory: +1x params.
    Reference:  Optax, ``optax.apply_every``.
    """
    _checks.check_positive("k", k)

    def init(params):
        return ApplyEvery(count=jnp.zeros([], jnp.int32), grad_acc=tree_zeros_like(params))

    def update(updates, state, params=None, **extra):
        del params, extra
        c = state.count % k
        keep = c != 0
        acc = jax.tree.map(lambda u, a: jnp.where(keep, a, 0).astype(a.dtype) + u, updates,
                           state.grad_acc)  # fmt: skip
        emit = c == k - 1
        out = jax.tree.map(lambda a: jnp.where(emit, a, jnp.zeros_like(a)), acc)
        return out, ApplyEvery(count=_next(state.count) % k, grad_acc=acc)

    return GradientTransformation(init, update, name="apply_every", preprocessing=True)


def skip_not_finite(updates: Any, gradient_step: Any, params: Any) -> tuple[jax.Array, dict]:
    """``MultiSteps``' skip rule: skip when any update element is NaN or infinite.

    Returns ``(should_skip, {"should_skip": ..., "num_not_finite": ...})``.
    """
    del gradient_step, params
    bad = sum(jnp.sum(~jnp.isfinite(u)) for u in jax.tree.leaves(updates))
    bad = jnp.asarray(bad, jnp.int32)
    return bad > 0, {"should_skip": bad > 0, "num_not_finite": bad}


def skip_large_updates(
    updates: Any, gradient_step: Any, params: Any, max_squared_norm: Any
) -> tuple[jax.Array, dict]:
    """``MultiSteps``' skip rule: skip when the squared global norm of the updates is not
    below ``max_squared_norm`` (a NaN norm is skipped too). Bind ``max_squared_norm`` with
    ``functools.partial``.

    Returns ``(should_skip, {"should_skip": ..., "norm_squared": ...})``.
    """
    del gradient_step, params
    norm_sq = sum(jnp.sum(u**2) for u in jax.tree.leaves(updates))
    skip = ~(norm_sq < max_squared_norm)
    return skip, {"should_skip": skip, "norm_squared": norm_sq}
