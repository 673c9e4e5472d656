"""Tree utilities under Optax's names (``optax.tree_utils`` / ``optax.tree``), for optimizer
states and updates.

The arithmetic (``tree_add``, ``tree_vdot``, ``tree_norm``...) is Optax's, leaf by leaf.
``tree_get`` and ``tree_set`` find a value by key as Optax's do -- a dict key, a NamedTuple
field, or a NamedTuple's class name -- and, in a gradchain state, also by gradchain's own
slot paths (``"BiasCorrectState.count"``, ``"backbone.nu"``, ``"adam.learning_rate"``; see
``gradchain.slots``), so that a key that occurs twice can be named. Hyperparameters of a live
optimizer are found under their argument names (``tree_get(state, "learning_rate")``).

The short names of ``optax.tree`` work too: ``gradchain.tree.get``, ``gradchain.tree.add``...
"""

from __future__ import annotations

import builtins
import functools
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain.base import (  # one function: base's, each leaf its own buffer
    ParamsMark,
    tree_zeros_like,
)
from gradchain.state import slots
from gradchain.tree_random import (
    tree_random_like,
    tree_split_key_like,
    tree_unwrap_random_key_data,
)

__all__ = [
    "NamedTupleKey",
    "tree_add",
    "tree_allclose",
    "tree_dtype",
    "tree_map_params",
    "tree_random_like",
    "tree_split_key_like",
    "tree_unwrap_random_key_data",
    "tree_add_scale",
    "tree_batch_shape",
    "tree_bias_correction",
    "tree_cast",
    "tree_cast_like",
    "tree_clip",
    "tree_conj",
    "tree_div",
    "tree_full_like",
    "tree_get",
    "tree_get_all_with_path",
    "tree_l2_norm",
    "tree_max",
    "tree_min",
    "tree_mul",
    "tree_norm",
    "tree_ones_like",
    "tree_real",
    "tree_scale",
    "tree_set",
    "tree_size",
    "tree_sub",
    "tree_sum",
    "tree_update_infinity_moment",
    "tree_update_moment",
    "tree_update_moment_per_elem_norm",
    "tree_vdot",
    "tree_where",
    "tree_zeros_like",
]


# --- arithmetic, leaf by leaf ------------------------------------------------------------------


def tree_add(tree_x: Any, tree_y: Any, *other_trees: Any) -> Any:
    """x + y (+ ...), leaf by leaf."""
    return jax.tree.map(
        lambda *leaves: builtins.sum(leaves[1:], leaves[0]), tree_x, tree_y, *other_trees
    )


def tree_sub(tree_x: Any, tree_y: Any) -> Any:
    """x - y, leaf by leaf."""
    return jax.tree.map(operator.sub, tree_x, tree_y)


def tree_mul(tree_x: Any, tree_y: Any) -> Any:
    """x * y, leaf by leaf."""
    return jax.tree.map(operator.mul, tree_x, tree_y)


def tree_div(tree_x: Any, tree_y: Any) -> Any:
    """x / y, leaf by leaf."""
    return jax.tree.map(operator.truediv, tree_x, tree_y)


def tree_scale(scalar: Any, tree: Any) -> Any:
    """scalar * tree."""
    return jax.tree.map(lambda x: scalar * x, tree)


def tree_add_scale(tree_x: Any, scalar: Any, tree_y: Any) -> Any:
    """x + scalar * y (``None`` leaves of x stay ``None``)."""
    scalar = jnp.asarray(scalar)
    return jax.tree.map(
        lambda x, y: None if x is None else x + scalar * y,
        tree_x,
        tree_y,
        is_leaf=lambda x: x is None,
    )


def tree_vdot(tree_x: Any, tree_y: Any) -> jax.Array:
    """The inner product sum_i <x_i, y_i> (x conjugated when complex), at highest precision."""
    dots = jax.tree.map(
        lambda a, b: jnp.vdot(jnp.asarray(a), jnp.asarray(b), precision=jax.lax.Precision.HIGHEST),
        tree_x,
        tree_y,
    )
    return jax.tree.reduce(operator.add, dots, initializer=0)


def tree_sum(tree: Any, associative_reduction: bool = False) -> jax.Array:
    """The sum of every element of every leaf. ``associative_reduction=True`` adds the leaf
    sums as a balanced tree (``jax.tree.reduce_associative``: faster to compile for many
    leaves; the order of the additions, so the last bits, may differ)."""
    sums = jax.tree.map(jnp.sum, tree)
    if associative_reduction:
        return jax.tree.reduce_associative(operator.add, sums, identity=0)
    return jax.tree.reduce(operator.add, sums, initializer=0)


def tree_max(tree: Any) -> jax.Array:
    """The largest element of the tree (-inf for an empty tree)."""
    maxes = [jnp.max(x) for x in jax.tree.leaves(tree) if jnp.size(x)]
    return jax.tree.reduce(jnp.maximum, maxes, initializer=-float("inf"))


def tree_min(tree: Any) -> jax.Array:
    """The smallest element of the tree (+inf for an empty tree)."""
    mins = [jnp.min(x) for x in jax.tree.leaves(tree) if jnp.size(x)]
    return jax.tree.reduce(jnp.minimum, mins, initializer=float("inf"))


def tree_size(tree: Any) -> int:
    """The number of elements in the tree."""
    return builtins.sum(jnp.size(x) for x in jax.tree.leaves(tree))


def tree_conj(tree: Any) -> Any:
    """The complex conjugate, leaf by leaf."""
    return jax.tree.map(jnp.conj, tree)


def tree_real(tree: Any) -> Any:
    """The real part, leaf by leaf."""
    return jax.tree.map(jnp.real, tree)


def tree_norm(tree: Any, ord: Any = None, squared: bool = False) -> jax.Array:  # noqa: A002
    """The vector norm of the whole tree: ord None or 2 (Euclidean), 1, or inf."""
    if ord is None or ord == 2:
        sq = tree_sum(
            jax.tree.map(lambda x: jnp.square(jnp.real(x)) + jnp.square(jnp.imag(x)), tree)
        )
        return jnp.asarray(sq if squared else jnp.sqrt(sq))
    if ord == 1:
        value = tree_sum(jax.tree.map(jnp.abs, tree))
    elif ord == jnp.inf or ord in ("inf", "infinity"):
        value = tree_max(jax.tree.map(jnp.abs, tree))
    else:
        raise ValueError(f"tree_norm: ord must be None, 1, 2 or inf, got {ord!r}")
    return jnp.asarray(jnp.square(value) if squared else value)


def tree_l2_norm(tree: Any, squared: bool = False) -> jax.Array:
    """The Euclidean norm of the whole tree (Optax's older name for ``tree_norm``)."""
    return tree_norm(tree, squared=squared)


def tree_ones_like(tree: Any, dtype: Any = None) -> Any:
    """Ones shaped like the tree (in ``dtype`` if given)."""
    return jax.tree.map(lambda x: jnp.ones_like(x, dtype=dtype), tree)


def tree_full_like(tree: Any, fill_value: Any, dtype: Any = None) -> Any:
    """``fill_value`` everywhere, shaped like the tree."""
    return jax.tree.map(lambda x: jnp.full_like(x, fill_value, dtype=dtype), tree)


def tree_batch_shape(tree: Any, shape: tuple[int, ...] = ()) -> Any:
    """Every leaf broadcast to ``shape + leaf.shape``: leading batch axes, the values
    repeated along them (``jnp.broadcast_to``; under ``jit`` no copy is made).

    >>> import jax.numpy as jnp, gradchain
    >>> gradchain.tree_batch_shape({"w": jnp.ones(2)}, (3,))["w"].shape
    (3, 2)
    """
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (*shape, *jnp.shape(x))), tree)


def tree_clip(tree: Any, min_value: Any = None, max_value: Any = None) -> Any:
    """Every element clipped to [min_value, max_value]."""
    return jax.tree.map(lambda x: jnp.clip(x, min_value, max_value), tree)


def tree_where(condition: Any, tree_x: Any, tree_y: Any) -> Any:
    """x where ``condition`` (a scalar), else y, leaf by leaf."""
    return jax.tree.map(lambda x, y: jnp.where(condition, x, y), tree_x, tree_y)


def tree_cast(tree: Any, dtype: Any) -> Any:
    """Every floating leaf cast to ``dtype`` (None: unchanged)."""
    if dtype is None:
        return tree
    return jax.tree.map(
        lambda x: (
            jnp.asarray(x).astype(dtype) if jnp.issubdtype(jnp.result_type(x), jnp.floating) else x
        ),
        tree,
    )


def tree_cast_like(tree: Any, other_tree: Any) -> Any:
    """Every leaf cast to the dtype of the matching leaf of ``other_tree``."""
    return jax.tree.map(lambda x, y: jnp.asarray(x).astype(jnp.result_type(y)), tree, other_tree)


def _none_kept(fn: Callable) -> Callable:
    """``fn(g, t)``, except that a ``None`` update stays ``None`` (a subtree with no update)."""
    return lambda g, t: None if g is None else fn(g, t)


def _is_none(x: Any) -> bool:
    return x is None


def _ordered(d1: Any, d2: Any, lower: bool) -> Any:
    """The lower (or higher) of two dtypes, where ``d1 <= d2`` means d1 promotes to d2."""
    both = jnp.promote_types(d1, d2)
    if both not in (jnp.dtype(d1), jnp.dtype(d2)):
        raise ValueError(f"dtypes {d1} and {d2} are not ordered: neither promotes to the other")
    return (d1 if both == d2 else d2) if lower else both


def tree_dtype(tree: Any, mixed_dtype_handler: str | None = None) -> Any:
    """The dtype of the tree's leaves (JAX's default float dtype for an empty tree).

    mixed_dtype_handler: None -- all leaves must share one dtype (ValueError naming the leaf
    that differs); "promote" -- their promoted dtype; "highest" / "lowest" -- the highest or
    lowest by promotion order (ValueError when two dtypes are not ordered, e.g. int32, uint32).
    """
    dtypes = [jnp.result_type(x) for x in jax.tree.leaves(tree)]
    if not dtypes:
        return jnp.asarray([]).dtype
    if mixed_dtype_handler is None:
        for path, x in jax.tree_util.tree_leaves_with_path(tree):
            if jnp.result_type(x) != dtypes[0]:
                raise ValueError(
                    f"leaf {jax.tree_util.keystr(path)} has dtype {jnp.result_type(x)}, the "
                    f"first leaf {dtypes[0]}; pass mixed_dtype_handler='promote', 'highest' "
                    "or 'lowest'"
                )
        return dtypes[0]
    if mixed_dtype_handler == "promote":
        return functools.reduce(jnp.promote_types, dtypes)
    if mixed_dtype_handler in ("highest", "lowest"):
        lower = mixed_dtype_handler == "lowest"
        return functools.reduce(lambda a, b: _ordered(a, b, lower), dtypes)
    raise ValueError(
        f"mixed_dtype_handler must be None, 'promote', 'highest' or 'lowest', got "
        f"{mixed_dtype_handler!r}"
    )


def tree_allclose(a: Any, b: Any, rtol: Any = 1e-05, atol: Any = 1e-08, equal_nan: bool = False):
    """Whether every leaf of ``a`` is close to the matching leaf of ``b`` (``jnp.allclose``)."""
    close = jax.tree.map(
        lambda x, y: jnp.allclose(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan), a, b
    )
    return functools.reduce(operator.and_, jax.tree.leaves(close), True)


def tree_update_moment(updates: Any, moments: Any, decay: Any, order: int) -> Any:
    """decay * moment + (1 - decay) * u**order; a ``None`` update stays ``None``."""
    step = _none_kept(lambda g, t: (1 - decay) * (g**order) + decay * t)
    return jax.tree.map(step, updates, moments, is_leaf=_is_none)


def tree_update_moment_per_elem_norm(updates: Any, moments: Any, decay: Any, order: int) -> Any:
    """decay * moment + (1 - decay) * |u|**order (|u|**2 = u conj(u) for complex u); a ``None``
    update stays ``None``."""

    def power(g):
        if not jnp.iscomplexobj(g):
            return g**order
        half = order / 2
        return (g * jnp.conj(g)).real ** (int(half) if float(half).is_integer() else half)

    step = _none_kept(lambda g, t: (1 - decay) * power(g) + decay * t)
    return jax.tree.map(step, updates, moments, is_leaf=_is_none)


def tree_update_infinity_moment(updates: Any, moments: Any, decay: Any, eps: Any) -> Any:
    """max(|u| + eps, decay * moment); a ``None`` update stays ``None``."""
    step = _none_kept(lambda g, t: jnp.maximum(jnp.abs(g) + eps, decay * t))
    return jax.tree.map(step, updates, moments, is_leaf=_is_none)


def tree_bias_correction(moment: Any, decay: Any, count: Any) -> Any:
    """moment / (1 - decay**count), the correction computed before the cast to each leaf's dtype."""
    correction = 1 - jnp.asarray(decay) ** count
    return jax.tree.map(lambda t: t / correction.astype(jnp.result_type(t)), moment)


# --- finding values by key ---------------------------------------------------------------------


class NamedTupleKey(NamedTuple):
    """A path entry for a NamedTuple's field: its class name and the field (Optax's)."""

    tuple_name: str
    name: str


def _children(node: Any) -> list[tuple[Any, Any]]:
    """(path entry, child) for a dict, a NamedTuple, a list or tuple; [] for a leaf."""
    if isinstance(node, tuple) and hasattr(type(node), "_fields"):
        return [(NamedTupleKey(type(node).__name__, f), v) for f, v in zip(node._fields, node)]
    if isinstance(node, dict):
        return [(jax.tree_util.DictKey(k), v) for k, v in node.items()]
    if isinstance(node, (list, tuple)):
        return [(jax.tree_util.SequenceKey(i), v) for i, v in enumerate(node)]
    return []


def _key_of(entry: Any) -> Any:
    if isinstance(entry, NamedTupleKey):
        return entry.name
    if isinstance(entry, jax.tree_util.DictKey):
        return entry.key
    return entry.idx


def _found(tree: Any, key: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """Every (path, node) whose last key is ``key``, or that is a NamedTuple named ``key``."""
    out = []
    if isinstance(tree, tuple) and type(tree).__name__ == key and hasattr(type(tree), "_fields"):
        out.append((path, tree))
    for entry, child in _children(tree):
        here = (*path, entry)
        if child is None:  # an unused slot is no value (Optax's trees have no None leaves)
            continue
        if _key_of(entry) == key and not isinstance(entry, jax.tree_util.SequenceKey):
            out.append((here, child))
        out.extend(_found(child, key, here))
    return out


def _slot_matches(tree: Any, key: Any) -> list[tuple[tuple, Any]]:
    """gradchain's slot paths: (route, value) for every slot whose path is or ends with key."""
    if not isinstance(key, str):
        return []
    try:
        every = slots(tree)
    except Exception:  # noqa: BLE001 - not a state gradchain can read: no slot paths
        return []
    return [(s.route, s.value) for s in every if key == s.path or s.path.endswith("." + key)]


def tree_get_all_with_path(
    tree: Any, key: Any, filtering: Callable[[tuple, Any], bool] | None = None
) -> list[tuple[tuple, Any]]:
    """Every ``(path, value)`` in ``tree`` under ``key`` (Optax's rule: a dict key, a NamedTuple
    field, or a NamedTuple's class name), kept where ``filtering(path, value)`` is True. Path
    entries are ``NamedTupleKey``, ``jax.tree_util.DictKey`` and ``SequenceKey``."""
    found = _found(tree, key)
    return [(p, v) for p, v in found if filtering is None or filtering(p, v)]


def tree_get(
    tree: Any, key: Any, default: Any = None, filtering: Callable[[tuple, Any], bool] | None = None
) -> Any:
    """The one value in ``tree`` under ``key``, or ``default`` if there is none.

    ``key`` is found as in Optax (a dict key, a NamedTuple field, a NamedTuple's class name:
    ``tree_get(adam_state, "mu")``, ``tree_get(state, "learning_rate")``); in a gradchain
    state, a key found more than once may be named by its slot path instead
    (``"BiasCorrectState.count"``, ``"backbone.nu"``, ``"adam.learning_rate"``).
    Raises:  KeyError when more than one value matches, naming the slot paths that tell them
             apart.
    """
    found = tree_get_all_with_path(tree, key, filtering)
    if len(found) == 1:
        return found[0][1]
    by_slot = [(r, v) for r, v in _slot_matches(tree, key) if filtering is None or filtering(r, v)]
    # a slot path settles the key only when Optax's lookup finds nothing, or names a path
    if len(by_slot) == 1 and (not found or "." in str(key)):
        return by_slot[0][1]
    if not found and not by_slot:
        return default
    paths = [s.path for s in _safe_slots(tree) if s.name == key or s.path.endswith("." + str(key))]
    hint = f"; name one of: {', '.join(paths)}" if paths else ""
    raise KeyError(
        f"found {builtins.max(len(found), len(by_slot))} values for {key!r} in this tree{hint}"
    )


def _safe_slots(tree: Any) -> list[Any]:
    try:
        return slots(tree)
    except Exception:  # noqa: BLE001
        return []


def _replace(node: Any, path: tuple, value: Any) -> Any:
    """``node`` with the subtree at ``path`` (keys, indices, field names, or path entries)
    replaced by ``value``; an array is kept in the old array's dtype."""
    if not path:
        old = node
        if hasattr(old, "dtype") and hasattr(old, "shape") and jnp.shape(value) == old.shape:
            return jnp.asarray(value, dtype=old.dtype)
        return value
    entry, rest = path[0], path[1:]
    key = (
        _key_of(entry)
        if isinstance(entry, (NamedTupleKey, jax.tree_util.DictKey, jax.tree_util.SequenceKey))
        else entry
    )
    if isinstance(node, tuple) and hasattr(type(node), "_fields"):
        field = key if isinstance(key, str) else node._fields[key]
        return node._replace(**{field: _replace(getattr(node, field), rest, value)})
    if isinstance(node, dict):
        return type(node)(
            {k: (_replace(v, rest, value) if k == key else v) for k, v in node.items()}
        )
    return type(node)(_replace(v, rest, value) if i == key else v for i, v in enumerate(node))


def tree_set(
    tree: Any, filtering: Callable[[tuple, Any], bool] | None = None, /, **kwargs: Any
) -> Any:
    """A copy of ``tree`` with the values under each keyword's key replaced (Optax's rule, as
    ``tree_get``; every match is replaced). In a gradchain state a key may be a slot path
    (``tree_set(state, **{"BiasCorrectState.count": 3})``), and a hyperparameter's name sets
    it (``tree_set(state, learning_rate=0.1)``). A new value for an array is stored in that
    array's dtype, so a jitted step is reused; use ``gradchain.set_hyperparam`` to have the
    optimizer's own checks run on a hyperparameter.
    Raises:  KeyError for a key found nowhere.
    """
    for key, value in kwargs.items():
        found = tree_get_all_with_path(tree, key, filtering)
        if not found:
            found = [
                (r, v) for r, v in _slot_matches(tree, key) if filtering is None or filtering(r, v)
            ]
        if not found:
            raise KeyError(f"found no value for {key!r} in this tree")
        for path, _ in found:
            tree = _replace(tree, path, value)
    return tree


def tree_map_params(
    initable: Any,
    f: Callable[..., Any],
    state: Any,
    /,
    *rest: Any,
    transform_non_params: Callable[[Any], Any] | None = None,
    is_leaf: Callable[[Any], bool] | None = None,
) -> Any:
    """``f`` applied leaf by leaf to every params-shaped tree in an optimizer's ``state``.

    ``initable`` is the optimizer (anything with ``init``) or its ``init`` function: it is run
    once on a mark standing for the params, and the state subtrees that come out as the mark
    are the params-shaped ones (velocities, moments...). Each such subtree ``t`` becomes
    ``jax.tree.map(f, t, *rest, is_leaf=is_leaf)`` (``rest``: trees shaped like the params,
    e.g. their partition specs). Every other part of the state (counts, hyperparameters)
    becomes ``transform_non_params(value)``, or is kept when that is None.
    """
    init = initable.init if hasattr(initable, "init") else initable
    marked = init(ParamsMark())

    def one(mark, value):
        if isinstance(mark, ParamsMark):
            return jax.tree.map(f, value, *rest, is_leaf=is_leaf)
        return value if transform_non_params is None else transform_non_params(value)

    return jax.tree.map(one, marked, state, is_leaf=lambda x: isinstance(x, ParamsMark))


# optax.tree's short names: gradchain.tree.get, gradchain.tree.add, ...
add, sub, mul, div = tree_add, tree_sub, tree_mul, tree_div
scale, add_scale, vdot, size, norm = tree_scale, tree_add_scale, tree_vdot, tree_size, tree_norm
sum, max, min = tree_sum, tree_max, tree_min  # noqa: A001 -- optax.tree's names
conj, real, where, clip = tree_conj, tree_real, tree_where, tree_clip
cast, cast_like = tree_cast, tree_cast_like
zeros_like, ones_like, full_like = tree_zeros_like, tree_ones_like, tree_full_like
get, set, get_all_with_path = tree_get, tree_set, tree_get_all_with_path  # noqa: A001
map_params, allclose, dtype = tree_map_params, tree_allclose, tree_dtype
random_like, split_key_like = tree_random_like, tree_split_key_like
unwrap_random_key_data = tree_unwrap_random_key_data
update_moment, update_moment_per_elem_norm = tree_update_moment, tree_update_moment_per_elem_norm
update_infinity_moment, bias_correction = tree_update_infinity_moment, tree_bias_correction
batch_shape = tree_batch_shape
