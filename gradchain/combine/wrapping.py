"""The plumbing every wrapper shares: hiding leaves from an inner transform, calling it,
merging its output back, and declaring what it holds (see ``gradchain.combine``)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import Child, GradientTransformation, all_preprocessing

__all__ = [
    "MaskedNode",
    "cast_like",
    "check_inputs",
    "hide",
    "hide_gradient",
    "merge",
    "wrapper",
    "zero_updates",
]


class MaskedNode(NamedTuple):
    """Stands where a leaf is hidden from an inner transform: a pytree node with no leaves."""


def hide(tree: Any, keep: list[bool]) -> Any:
    """``tree`` with every leaf whose flag is False replaced by ``MaskedNode()``."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef.unflatten([x if k else MaskedNode() for x, k in zip(leaves, keep)])


def hide_gradient(gradient: Any, updates: Any, hidden_updates: Any, keep: list[bool]) -> Any:
    """The gradient keyword, hidden like the updates. When it *is* the updates, the hidden
    updates are passed as it, so that the inner transform can tell (``accumulate`` does)."""
    if gradient is None:
        return None
    return hidden_updates if gradient is updates else hide(gradient, keep)


def merge(updates: Any, parts: list[tuple[Any, list[bool]]]) -> Any:
    """Each leaf from the part that kept it (its output), else the incoming update."""
    leaves, treedef = jax.tree.flatten(updates)
    merged = list(leaves)
    for out, keep in parts:
        for i, (x, k) in enumerate(zip(treedef.flatten_up_to(out), keep)):
            if k:
                merged[i] = x
    return treedef.unflatten(merged)


def check_inputs(who: str, state: Any, state_type: type, updates, params, gradient) -> None:
    """Trace-time checks of a wrapper's inputs, before any leaf is hidden or grouped (a
    mismatch found afterwards would name the wrong leaf). Integer leaves are allowed here: a
    frozen group may hold them; the inner transforms check their own leaves and states."""
    if not isinstance(state, state_type):
        raise _checks.GradchainError(
            f"this state does not belong to this optimizer: {who} expects a "
            f"{state_type.__name__}, got {type(state).__name__}"
        )
    if params is not None:
        _checks.check_same_structure("updates", updates, "params", params)
        _checks.check_update_dtypes(params, updates)
    if gradient is not None:
        _checks.check_same_structure("gradient", gradient, "updates", updates)


def zero_updates(updates: Any) -> Any:
    """Updates that change nothing. They are -0.0, not +0.0: p + (-0.0) is p bit for bit for
    every p (p = -0.0 included), so a frozen or skipped step leaves params exactly as they
    were."""

    # full_like, not full: under shard_map it keeps the update's varying mesh axes, which
    # lax.cond needs to match the branch that runs the inner transform.
    def zero(u):
        u = jnp.asarray(u)
        if jnp.issubdtype(u.dtype, jnp.complexfloating):
            return jnp.full_like(u, complex(-0.0, -0.0))
        if jnp.issubdtype(u.dtype, jnp.floating):
            return jnp.full_like(u, -0.0)
        return jnp.zeros_like(u)

    return jax.tree.map(zero, updates)


def cast_like(tree: Any, like: Any) -> Any:
    return jax.tree.map(lambda x, y: jnp.asarray(x).astype(jnp.result_type(y)), tree, like)


def wrapper(init, update, name: str, inner: dict[Hashable, Any]) -> GradientTransformation:
    """A wrapper's transform, declaring what it holds: ``{"inner": t}`` for a wrapper the
    user did not name (its state keeps ``t``'s in the field ``inner``), or ``{label: t}`` for
    parameter groups (kept in ``groups[label]``; the label becomes part of every path)."""
    preprocessing = all_preprocessing(inner.values())
    if list(inner) == ["inner"]:
        children = (Child(None, inner["inner"], ("inner",)),)
    else:
        children = tuple(Child(str(label), t, ("groups", label)) for label, t in inner.items())
    return GradientTransformation(
        init, update, name=name, preprocessing=preprocessing, children=children
    )
