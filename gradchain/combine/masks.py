"""Masks and parameter groups: which transform sees which leaves (see ``gradchain.combine``).
Optax's ``multi_transform`` is ``partition`` under Optax's name and argument order."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from gradchain import _checks
from gradchain.base import (
    EmptyState,
    GradientTransformation,
    ParamsMark,
    _as_transform,
    describe,
    updater,
)
from gradchain.combine.wrapping import (
    MaskedNode,
    check_inputs,
    hide,
    hide_gradient,
    merge,
    wrapper,
    zero_updates,
)

__all__ = [
    "MaskedState",
    "MultiTransformState",
    "PartitionState",
    "freeze",
    "masked",
    "multi_transform",
    "partition",
    "selective_transform",
    "set_to_zero",
]


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


def _is_function(spec: Any) -> bool:
    """Whether ``spec`` is a function to call on the params rather than a tree of values: a
    tree whose leaves are all callable (a plain function is its own one leaf). A pytree that
    is also callable (an Equinox module of bools) is a tree of values, as in Optax."""
    leaves = jax.tree.leaves(spec)
    return bool(leaves) and all(callable(leaf) for leaf in leaves)


def _per_leaf(name: str, spec: Any, tree: Any) -> list[tuple[str, Any]]:
    """``spec`` (a tree of values whose structure is a prefix of ``tree``'s, or a function of
    ``tree`` returning one) broadcast to one ``(path, value)`` per leaf of ``tree``."""
    if _is_function(spec):
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


# --- masks and groups ---------------------------------------------------------------------


@describe(inner="the wrapped transform's state, over the unmasked leaves only")
class MaskedState(NamedTuple):
    inner: Any

    @property
    def inner_state(self) -> Any:
        """Optax's name for ``inner``."""
        return self.inner


def masked(
    transform: GradientTransformation | None = None,
    mask: Any = None,
    *,
    inner: GradientTransformation | None = None,
    mask_compatible_extra_args: bool = False,
) -> GradientTransformation:
    r"""Apply ``transform`` to the leaves where ``mask`` is True; pass the others through.

    Update:     u_i = transform(u)_i where mask_i, else u_i unchanged
    State:      inner -- the transform's state over the masked-in leaves only: a masked-out
                leaf is a ``MaskedNode()`` (no array) in every per-parameter slot.
                Memory: the transform's, on the masked-in leaves.
    Args:       transform -- any transform (gradchain's or Optax's); ``inner=`` is Optax's
                name for it.
                mask -- a tree of Python bools shaped like the params, or a prefix of them
                (one bool for a whole subtree), or a function of the params returning one
                (called at init with the params, at each update with the params if given,
                else the updates).
    Note:       A mask that does not fit the params raises ``GradchainError`` naming the
                first path where they differ. Optax: ``optax.masked`` (same semantics);
                ``mask_compatible_extra_args`` is accepted and changes nothing: keyword
                arguments reach the inner transform unchanged here.

    >>> import jax.numpy as jnp, gradchain
    >>> params = {"w": jnp.ones(2), "b": jnp.ones(1)}
    >>> decay = gradchain.masked(gradchain.add_decayed_weights(0.5), {"w": True, "b": False})
    >>> zeros = {"w": jnp.zeros(2), "b": jnp.zeros(1)}
    >>> updates, _ = decay.update(zeros, decay.init(params), params)
    >>> updates["w"].tolist(), updates["b"].tolist()
    ([0.5, 0.5], [0.0])
    """
    if (transform is None) == (inner is None):
        raise _checks.GradchainError(
            "masked takes the transform once: masked(transform, mask) or "
            "masked(inner=..., mask=...)"
        )
    if mask is None:
        raise _checks.GradchainError(
            "masked needs a mask: a tree of bools, or a function of the params"
        )
    inner = _as_transform(transform if inner is None else inner)
    call = updater(inner)

    def init(params):
        if isinstance(params, ParamsMark):  # tree_map_params: the inner slots are the params'
            return MaskedState(inner=inner.init(params))
        return MaskedState(inner=inner.init(hide(params, _mask_flags(mask, params))))

    def update(updates, state, params=None, *, gradient=None, **extra):
        check_inputs("masked", state, MaskedState, updates, params, gradient)
        keep = _mask_flags(mask, updates if params is None else params)
        sub = hide(updates, keep)
        out, new_inner = call(
            sub,
            state.inner,
            None if params is None else hide(params, keep),
            hide_gradient(gradient, updates, sub, keep),
            extra,
        )
        return merge(updates, [(out, keep)]), MaskedState(inner=new_inner)

    return wrapper(init, update, "masked", {"inner": inner})


@describe(groups="each group's state by label, over that group's leaves only")
class PartitionState(NamedTuple):
    groups: dict[Hashable, Any]

    @property
    def inner_states(self) -> Any:
        """Optax's name for ``groups``."""
        return self.groups


MultiTransformState = PartitionState  # Optax's name; field `groups` (`.inner_states` reads it)


def partition(
    transforms: Mapping[Hashable, GradientTransformation],
    labels: Any = None,
    *,
    param_labels: Any = None,
    mask_compatible_extra_args: bool = False,
) -> GradientTransformation:
    r"""Parameter groups: every leaf gets the transform of its label, and only that one.

    Update:     u_i = transforms[label_i](u restricted to the leaves labelled label_i)_i
    State:      groups -- ``{label: that transform's state over its own leaves}``; a leaf of
                another group is a ``MaskedNode()`` there.   Memory: the sum of the groups';
                a frozen group (``set_to_zero()``) keeps none.
    Args:       transforms -- ``{label: transform}``.
                labels -- a tree of labels shaped like the params (or a prefix of them), or
                a function of the params returning one. Every label must be a key of
                ``transforms``. ``param_labels=`` is Optax's name for it.
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
    if (labels is None) == (param_labels is None):
        raise _checks.GradchainError(
            "partition takes the labels once: partition(transforms, labels) or "
            "partition(transforms, param_labels=...)"
        )
    labels = param_labels if labels is None else labels
    groups = {label: _as_transform(t) for label, t in transforms.items()}
    calls = {label: updater(t) for label, t in groups.items()}

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
        if isinstance(params, ParamsMark):  # tree_map_params: each group's slots are the params'
            return PartitionState(groups={label: t.init(params) for label, t in groups.items()})
        keep = flags(params)
        return PartitionState(
            groups={label: t.init(hide(params, keep[label])) for label, t in groups.items()}
        )

    def update(updates, state, params=None, *, gradient=None, **extra):
        check_inputs("partition", state, PartitionState, updates, params, gradient)
        if not isinstance(state.groups, dict) or set(state.groups) != set(groups):
            found = sorted(state.groups) if isinstance(state.groups, dict) else state.groups
            raise _checks.GradchainError(
                f"this state does not belong to this optimizer: partition has the groups "
                f"{sorted(groups)}, the state {found}"
            )
        keep = flags(updates if params is None else params)
        parts, new_states = [], {}
        for label in groups:
            k = keep[label]
            sub = hide(updates, k)
            out, new_states[label] = calls[label](
                sub,
                state.groups[label],
                None if params is None else hide(params, k),
                hide_gradient(gradient, updates, sub, k),
                extra,
            )
            parts.append((out, k))
        return merge(updates, parts), PartitionState(groups=new_states)

    return wrapper(init, update, "partition", groups)


def set_to_zero() -> GradientTransformation:
    r"""Updates that change nothing: freeze the leaves it is given.

    Update:     u_t = 0  (as -0.0, so that p + u is p bit for bit)
    State:      none.   Memory: 0.
    Note:       The frozen group of ``partition``. Optax: ``optax.set_to_zero``.
    """

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):
        return zero_updates(updates), state

    return GradientTransformation(init, update, name="set_to_zero", preprocessing=True)


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


def freeze(mask: Any) -> GradientTransformation:
    r"""Zero the updates of the leaves where ``mask`` is True (frozen); pass the others.

    Update:     u_i = 0 where mask_i, else u_i
    State:      none.   Memory: 0.
    Args:       mask -- True (all frozen), or a tree of bools like ``masked``'s.
    Reference:  Optax, ``optax.transforms.freeze``.
    """
    return masked(set_to_zero(), mask)


def selective_transform(optimizer: Any, *, freeze_mask: Any) -> GradientTransformation:
    r"""Run ``optimizer`` on the leaves where ``freeze_mask`` is False; zero the others, which
    keep no optimizer state.

    Update:     u_i = optimizer(u on the trained leaves)_i, or 0 where freeze_mask_i
    State:      groups -- ``{"train": optimizer's state over the trained leaves, "freeze":
                empty}``.   Memory: the optimizer's, on the trained leaves only.
    Reference:  Optax, ``optax.transforms.selective_transform``.
    """

    def labels(params):
        del params
        return jax.tree.map(lambda frozen: "freeze" if frozen else "train", freeze_mask)

    return partition({"train": optimizer, "freeze": set_to_zero()}, labels)
