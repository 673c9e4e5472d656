"""Masks and parameter groups: which transform sees which leaves (see ``gradchain.combine``)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain import _checks
from gradchain.base import (
    EmptyState,
    GradientTransformation,
    _accepts_extra_args,
    _as_transform,
    describe,
)

__all__ = ["MaskedNode", "MaskedState", "PartitionState", "masked", "partition", "set_to_zero"]


class MaskedNode(NamedTuple):
    """Stands where a leaf is hidden from an inner transform: a pytree node with no leaves."""


# --- trees of flags and labels -----------------------------------------------------------


def _first_difference(name: str, spec: Any, tree: Any) -> str:
    """Where ``spec`` (meant to be a prefix of ``tree``) and ``tree`` part ways."""
    spec_paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(spec)[0]]
    hidden = lambda x: isinstance(x, MaskedNode)  # noqa: E731
    tree_items = jax.tree_util.tree_flatten_with_path(tree, is_leaf=hidden)[0]
    tree_paths = [p for p, _ in tree_items]
    found = []
    for path, leaf in tree_items:
        if not any(path[: len(s)] == s for s in spec_paths):
            where = _checks.path_str(path)
            if hidden(leaf):
                found.append(
                    f"the leaf at {where} is hidden from this transform (another group's, or "
                    f"masked out) but {name} must still cover it: give {name} for the whole "
                    "params tree, or as a function of the params"
                )
            else:
                found.append(f"the params have a leaf at {where} that {name} misses")
            break
    for s in spec_paths:
        if not any(path[: len(s)] == s for path in tree_paths):
            found.append(f"{name} has an entry at {_checks.path_str(s)} where the params have none")
            break
    if found:
        return "; ".join(found)
    return f"{name} is {jax.tree.structure(spec)}, the params are {jax.tree.structure(tree)}"


def _per_leaf(name: str, spec: Any, tree: Any) -> list[tuple[str, Any]]:
    """``spec`` (a tree of values whose structure is a prefix of ``tree``'s, or a function of
    ``tree`` returning one) broadcast to one ``(path, value)`` per leaf of ``tree``."""
    if callable(spec):
        spec = spec(tree)
    spec_leaves, spec_def = jax.tree_util.tree_flatten_with_path(spec)
    try:
        subtrees = spec_def.flatten_up_to(tree)
    except (ValueError, TypeError):
        raise _checks.GradchainError(
            f"{name} does not fit the params: {_first_difference(name, spec, tree)}"
        ) from None
    out = []
    for (path, value), sub in zip(spec_leaves, subtrees):
        out.extend([(_checks.path_str(path), value)] * len(jax.tree.leaves(sub)))
    return out


def _mask_flags(mask: Any, tree: Any) -> list[bool]:
    flags = []
    for path, value in _per_leaf("the mask", mask, tree):
        if isinstance(value, jax.core.Tracer) or np.shape(value) != ():
            raise _checks.GradchainError(
                f"at {path}: a mask holds one Python bool per leaf (known when the step is "
                f"traced), got {value!r}"
            )
        if np.asarray(value).dtype != np.bool_:
            raise _checks.GradchainError(f"at {path}: a mask holds bools, got {value!r}")
        flags.append(bool(value))
    return flags


def _hide(tree: Any, keep: list[bool]) -> Any:
    """``tree`` with every leaf whose flag is False replaced by ``MaskedNode()``."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef.unflatten([x if k else MaskedNode() for x, k in zip(leaves, keep)])


def _hide_gradient(gradient: Any, updates: Any, hidden_updates: Any, keep: list[bool]) -> Any:
    """The gradient keyword, hidden like the updates. When it *is* the updates, the hidden
    updates are passed as it, so that the inner transform can tell (``accumulate`` does)."""
    if gradient is None:
        return None
    return hidden_updates if gradient is updates else _hide(gradient, keep)


def _merge(updates: Any, parts: list[tuple[Any, list[bool]]]) -> Any:
    """Each leaf from the part that kept it (its output), else the incoming update."""
    leaves, treedef = jax.tree.flatten(updates)
    merged = list(leaves)
    for out, keep in parts:
        for i, (x, k) in enumerate(zip(treedef.flatten_up_to(out), keep)):
            if k:
                merged[i] = x
    return treedef.unflatten(merged)


def _check_inputs(who: str, state: Any, state_type: type, updates, params, gradient) -> None:
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


def _call(transform, takes_extra, updates, state, params, gradient, extra):
    if takes_extra:
        return transform.update(updates, state, params, gradient=gradient, **extra)
    return transform.update(updates, state, params)


def _zero_updates(updates: Any) -> Any:
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


def _cast_like(tree: Any, like: Any) -> Any:
    return jax.tree.map(lambda x, y: jnp.asarray(x).astype(jnp.result_type(y)), tree, like)


def _wrapper(init, update, name: str, inner: dict[Hashable, Any]) -> GradientTransformation:
    preprocessing = all(getattr(t, "preprocessing", True) for t in inner.values())
    result = GradientTransformation(init, update, name=name, preprocessing=preprocessing)
    result.inner = dict(inner)
    return result


# --- masks and groups ---------------------------------------------------------------------


@describe(inner="the wrapped transform's state, over the unmasked leaves only")
class MaskedState(NamedTuple):
    inner: Any


def masked(transform: GradientTransformation, mask: Any) -> GradientTransformation:
    r"""Apply ``transform`` to the leaves where ``mask`` is True; pass the others through.

    Update:     u_i = transform(u)_i where mask_i, else u_i unchanged
    State:      inner -- the transform's state over the masked-in leaves only: a masked-out
                leaf is a ``MaskedNode()`` (no array) in every per-parameter slot.
                Memory: the transform's, on the masked-in leaves.
    Args:       transform -- any transform (gradchain's or Optax's).
                mask -- a tree of Python bools shaped like the params, or a prefix of them
                (one bool for a whole subtree), or a function of the params returning one
                (called at init with the params, at each update with the params if given,
                else the updates).
    Note:       A mask that does not fit the params raises ``GradchainError`` naming the
                first path where they differ. Optax: ``optax.masked`` (same semantics).

    >>> import jax.numpy as jnp, gradchain
    >>> params = {"w": jnp.ones(2), "b": jnp.ones(1)}
    >>> decay = gradchain.masked(gradchain.add_decayed_weights(0.5), {"w": True, "b": False})
    >>> zeros = {"w": jnp.zeros(2), "b": jnp.zeros(1)}
    >>> updates, _ = decay.update(zeros, decay.init(params), params)
    >>> updates["w"].tolist(), updates["b"].tolist()
    ([0.5, 0.5], [0.0])
    """
    inner = _as_transform(transform)
    takes_extra = _accepts_extra_args(inner.update)

    def init(params):
        return MaskedState(inner=inner.init(_hide(params, _mask_flags(mask, params))))

    def update(updates, state, params=None, *, gradient=None, **extra):
        _check_inputs("masked", state, MaskedState, updates, params, gradient)
        keep = _mask_flags(mask, updates if params is None else params)
        sub = _hide(updates, keep)
        out, new_inner = _call(
            inner,
            takes_extra,
            sub,
            state.inner,
            None if params is None else _hide(params, keep),
            _hide_gradient(gradient, updates, sub, keep),
            extra,
        )
        return _merge(updates, [(out, keep)]), MaskedState(inner=new_inner)

    return _wrapper(init, update, "masked", {"inner": inner})


@describe(groups="each group's state by label, over that group's leaves only")
class PartitionState(NamedTuple):
    groups: dict[Hashable, Any]


def partition(
    transforms: Mapping[Hashable, GradientTransformation], labels: Any
) -> GradientTransformation:
    r"""Parameter groups: every leaf gets the transform of its label, and only that one.

    Update:     u_i = transforms[label_i](u restricted to the leaves labelled label_i)_i
    State:      groups -- ``{label: that transform's state over its own leaves}``; a leaf of
                another group is a ``MaskedNode()`` there.   Memory: the sum of the groups';
                a frozen group (``set_to_zero()``) keeps none.
    Args:       transforms -- ``{label: transform}``.
                labels -- a tree of labels shaped like the params (or a prefix of them), or
                a function of the params returning one. Every label must be a key of
                ``transforms``.
    Note:       Each group's transform runs as if it were the only optimizer of its leaves:
                a global norm, a count or a schedule is per group. Optax:
                ``optax.multi_transform`` (same semantics; the state keeps no per-group
                ``MaskedState`` wrapper here).

    >>> import jax.numpy as jnp, gradchain
    >>> opt = gradchain.partition(
    ...     {"backbone": gradchain.sgd(1e-5), "head": gradchain.adam(1e-3),
    ...      "frozen": gradchain.set_to_zero()},
    ...     {"embed": "frozen", "body": "backbone", "out": "head"})
    >>> params = {"embed": jnp.ones(3), "body": jnp.ones(2), "out": jnp.ones(1)}
    >>> state = opt.init(params)
    >>> sorted(state.groups), state.groups["frozen"]
    (['backbone', 'frozen', 'head'], EmptyState())
    """
    if not isinstance(transforms, Mapping) or not transforms:
        raise _checks.GradchainError(
            f"partition takes a non-empty dict {{label: transform}}, got {transforms!r}"
        )
    groups = {label: _as_transform(t) for label, t in transforms.items()}
    takes_extra = {label: _accepts_extra_args(t.update) for label, t in groups.items()}

    def flags(tree):
        per_leaf = []
        for path, label in _per_leaf("the label tree", labels, tree):
            try:
                known = label in groups
            except TypeError:
                known = False
            if not known:
                raise _checks.GradchainError(
                    f"at {path}: the label {label!r} has no transform; the labels are "
                    f"{', '.join(repr(k) for k in groups)}"
                )
            per_leaf.append(label)
        return {label: [x == label for x in per_leaf] for label in groups}

    def init(params):
        keep = flags(params)
        return PartitionState(
            groups={label: t.init(_hide(params, keep[label])) for label, t in groups.items()}
        )

    def update(updates, state, params=None, *, gradient=None, **extra):
        _check_inputs("partition", state, PartitionState, updates, params, gradient)
        if not isinstance(state.groups, dict) or set(state.groups) != set(groups):
            found = sorted(state.groups) if isinstance(state.groups, dict) else state.groups
            raise _checks.GradchainError(
                f"this state does not belong to this optimizer: partition has the groups "
                f"{sorted(groups)}, the state {found}"
            )
        keep = flags(updates if params is None else params)
        parts, new_states = [], {}
        for label, t in groups.items():
            k = keep[label]
            sub = _hide(updates, k)
            out, new_states[label] = _call(
                t,
                takes_extra[label],
                sub,
                state.groups[label],
                None if params is None else _hide(params, k),
                _hide_gradient(gradient, updates, sub, k),
                extra,
            )
            parts.append((out, k))
        return _merge(updates, parts), PartitionState(groups=new_states)

    return _wrapper(init, update, "partition", groups)


def set_to_zero() -> GradientTransformation:
    r"""Updates that change nothing: freeze the leaves it is given.

    Update:     u_t = 0  (as -0.0, so that p + u is p bit for bit)
    State:      none.   Memory: 0.
    Note:       The frozen group of ``partition``. Optax: ``optax.set_to_zero``.
    """

    def init(params):
        del params
        return EmptyState()

    def update(updates, state, params=None, **extra):
        del params, extra
        return _zero_updates(updates), state

    return GradientTransformation(init, update, name="set_to_zero", preprocessing=True)
