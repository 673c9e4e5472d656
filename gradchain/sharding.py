"""Where optimizer state lives on a mesh: shardings from the params', ZeRO-1, bytes per device.

JAX's ``jax.sharding`` is the engine; this module only says where each state leaf should go.
The problem it solves: ``jnp.zeros_like(p)`` needs only a shape, so inside ``jax.jit`` on a
mesh nothing tells the compiler where a moment belongs, and ``jax.jit(opt.init)(params)``
puts every moment on one device (or replicates it). The fix is one line::

    shardings = gradchain.state_shardings(opt, params)
    state = jax.jit(opt.init, out_shardings=shardings)(params)

Each state leaf gets its layout from the parameter it belongs to (the per-parameter slot
convention of ``gradchain.memory_report``):

- same shape as its parameter (``mu``, ``nu``, quantized codes): the parameter's sharding;
- reduced (a factored row or column statistic, which says ``reduced_axis``): the parameter's
  spec with that dimension dropped;
- the parameter's shape with the last axis cut into blocks (quantized scales): the
  parameter's spec, the last axis kept sharded only where the block count divides evenly;
- 0-d (step counts, live hyperparameters) and anything not laid out like the params:
  replicated over the mesh.

``zero1_shardings`` adds the data axis to every param-shaped slot (ZeRO stage 1: each
data-parallel replica keeps 1/|data| of the moments) and ``bytes_per_device`` counts what one
device holds for a layout, from ``NamedSharding.shard_shape``, without allocating anything.
See ``docs/sharding.md`` for recipes (``jit`` with ``out_shardings``, ZeRO-1, ``shard_map``).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from gradchain import _checks
from gradchain import state as state_lib
from gradchain.memory import abstract_params

__all__ = [
    "bytes_per_device",
    "param_shardings",
    "state_bytes_per_device",
    "state_shardings",
    "zero1_shardings",
]


def param_shardings(params: Any) -> Any:
    """The sharding of every parameter: a placed array's ``.sharding``, or the ``sharding``
    of a ``jax.ShapeDtypeStruct``. Refuses (naming the leaf) a leaf that has none."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    out = []
    for path, x in flat:
        sharding = getattr(x, "sharding", None)
        if sharding is None:
            raise _checks.GradchainError(
                f"params leaf {jax.tree_util.keystr(path)} has no sharding: pass placed arrays "
                "(jax.device_put(x, NamedSharding(mesh, spec))), ShapeDtypeStructs with "
                "sharding=..., or shardings=<a tree of shardings like params>"
            )
        out.append(sharding)
    return jax.tree.unflatten(treedef, out)


def _replicated_like(shardings: list[Any]) -> Any:
    """A sharding that puts a copy on every device the params use."""
    for s in shardings:
        if isinstance(s, NamedSharding):
            return NamedSharding(s.mesh, PartitionSpec())
    for s in shardings:
        if s.is_fully_replicated:
            return s
    raise _checks.GradchainError(
        "cannot build a replicated sharding for the state's scalars: give the params "
        "NamedShardings (a mesh and a PartitionSpec)"
    )


def _full_spec(sharding: NamedSharding, ndim: int) -> list[Any]:
    spec = list(sharding.spec)
    return spec + [None] * (ndim - len(spec))


def _axis_size(mesh: Any, entry: Any) -> int:
    names = entry if isinstance(entry, tuple) else (entry,)
    return math.prod(mesh.shape[n] for n in names if n is not None)


def _leaf_sharding(leaf: Any, param: Any, sharding: Any, replicated: Any, dropped: Any) -> Any:
    """The sharding of one state leaf under one parameter (see the module docstring)."""
    shape, pshape = tuple(leaf.shape), tuple(param.shape)
    if shape == pshape:
        return sharding
    if shape == () or not isinstance(sharding, NamedSharding):
        return replicated
    spec = _full_spec(sharding, len(pshape))
    if dropped is not None:  # a reduced slot that says which axis it was reduced over
        k = dropped % len(pshape)
        kept = spec[:k] + spec[k + 1 :]
        if len(kept) == len(shape):
            return NamedSharding(sharding.mesh, PartitionSpec(*kept))
        return replicated
    if len(shape) == len(pshape) and shape[:-1] == pshape[:-1]:
        last = spec[-1]  # blocks along the last axis: keep its sharding where it divides
        if last is not None and shape[-1] % _axis_size(sharding.mesh, last):
            last = None
        return NamedSharding(sharding.mesh, PartitionSpec(*spec[:-1], last))
    if len(shape) == len(pshape) - 1:  # reduced over an axis it does not name
        candidates = {
            tuple(spec[:k] + spec[k + 1 :])
            for k in range(len(pshape))
            if pshape[:k] + pshape[k + 1 :] == shape
        }
        if len(candidates) == 1:
            return NamedSharding(sharding.mesh, PartitionSpec(*candidates.pop()))
    return replicated


def _is_reduced_node(x: Any) -> bool:
    return hasattr(x, "reduced_axis") and hasattr(x, "tree_flatten")


def _subtree_shardings(sub: Any, param: Any, sharding: Any, replicated: Any) -> Any:
    """Shardings for everything a state slot keeps under one parameter."""

    def place(node):
        if not _is_reduced_node(node):
            return _leaf_sharding(node, param, sharding, replicated, None)
        axis_of = {id(getattr(node, name)): ax for name, ax in node.reduced_axis.items()}
        children, aux = node.tree_flatten()
        placed = []
        for child in children:
            axis = axis_of.get(id(child))
            placed.append(
                jax.tree.map(
                    lambda x, axis=axis: _leaf_sharding(x, param, sharding, replicated, axis),
                    child,
                )
            )
        return type(node).tree_unflatten(aux, placed)

    return jax.tree.map(place, sub, is_leaf=_is_reduced_node)


def state_shardings(optimizer: Any, params: Any, *, shardings: Any = None) -> Any:
    """The shardings of ``optimizer``'s state for ``params``, built from the params'.

    Use:      ``jax.jit(opt.init, out_shardings=state_shardings(opt, params))(params)``,
              and the same tree as the state's ``in_shardings``/``out_shardings`` of a step.
    Args:     optimizer -- any ``(init, update)`` pair (gradchain or Optax).
              params -- placed arrays, or ``jax.ShapeDtypeStruct`` leaves with ``sharding=``.
              shardings -- optional tree of shardings like ``params`` (overrides theirs).
    Returns:  a tree shaped like the state (``None`` where the state has ``None``) whose
              leaves are shardings: the parameter's for a param-shaped leaf, its spec minus
              the reduced dimension for a reduced one, replicated for scalars and for
              anything not laid out like the params. Nothing is allocated
              (``jax.eval_shape`` of ``init``).
    """
    if shardings is None:
        shardings = param_shardings(params)
    param_leaves, param_def = jax.tree.flatten(abstract_params(params))
    sharding_leaves = param_def.flatten_up_to(shardings)
    replicated = _replicated_like(sharding_leaves)
    state = jax.eval_shape(optimizer.init, abstract_params(params))

    def for_slot(slot: state_lib.Slot) -> Any:
        value = slot.value
        if all(np.shape(x) == () for x in jax.tree.leaves(value)):
            return jax.tree.map(lambda _: replicated, value)
        try:
            subtrees = param_def.flatten_up_to(value)
        except (ValueError, TypeError):
            return jax.tree.map(lambda _: replicated, value)
        placed = [
            _subtree_shardings(sub, p, s, replicated)
            for sub, p, s in zip(subtrees, param_leaves, sharding_leaves)
        ]
        return param_def.unflatten(placed)

    return state_lib._map_slots(state, for_slot)


def _add_axis(sharding: Any, shape: tuple[int, ...], axis: str) -> Any:
    if not isinstance(sharding, NamedSharding) or axis not in sharding.mesh.shape:
        return sharding
    spec = _full_spec(sharding, len(shape))
    used = {n for e in spec for n in (e if isinstance(e, tuple) else (e,))}
    if axis in used:
        return sharding
    size = sharding.mesh.shape[axis]
    for k, (entry, n) in enumerate(zip(spec, shape)):
        if n % (_axis_size(sharding.mesh, entry) * size) == 0:
            names = () if entry is None else entry if isinstance(entry, tuple) else (entry,)
            spec[k] = (*names, axis) if names else axis
            return NamedSharding(sharding.mesh, PartitionSpec(*spec))
    return sharding  # no dimension divides: this leaf stays as it was


def zero1_shardings(
    optimizer: Any, params: Any, axis: str = "data", *, shardings: Any = None
) -> Any:
    """State shardings for ZeRO stage 1: moments split over the data-parallel axis.

    Every leaf laid out like its parameter gets ``axis`` added on the first dimension that it
    divides (after any axis already there); params keep their own layout. So with params
    replicated over ``data``, each device keeps 1/|data| of every such moment: the bytes per
    device of Adam's ``mu`` and ``nu`` drop by |data|. Scalars stay replicated, and a leaf
    no dimension of which divides stays as ``state_shardings`` places it.
    Args:     axis -- the mesh axis to split over; refused (``GradchainError`` naming the
              mesh's axes) if no parameter's mesh has it (params on no mesh at all, as on
              one device, keep their layout).  The rest as ``state_shardings``.
    Note:     under ``jax.jit`` the compiler inserts the gathers (params stay replicated);
              ``docs/sharding.md`` shows the same by hand inside ``shard_map``.
    """
    return _zero1_shardings(optimizer, params, axis, shardings, arg="axis")


def _check_mesh_axis(arg: str, axis: Any, sharding_leaves: list[Any]) -> None:
    """Refuse a ZeRO-1 axis that no parameter's mesh has: it would split nothing, silently.
    Params on no mesh at all (one device) are let through: there is nothing to split."""
    if not isinstance(axis, str):
        raise _checks.GradchainError(f"{arg} must be a mesh axis name (a str), got {axis!r}")
    meshes = {s.mesh.axis_names for s in sharding_leaves if isinstance(s, NamedSharding)}
    if meshes and not any(axis in names for names in meshes):  # no mesh: nothing is split
        axes = " or ".join(str(tuple(names)) for names in meshes)
        raise _checks.GradchainError(
            f"{arg}={axis!r} is not an axis of the params' mesh, whose axes are {axes}; "
            "pass one of those"
        )


def _zero1_shardings(optimizer: Any, params: Any, axis: Any, shardings: Any, arg: str) -> Any:
    if shardings is None:
        shardings = param_shardings(params)
    param_leaves, param_def = jax.tree.flatten(abstract_params(params))
    sharding_leaves = param_def.flatten_up_to(shardings)
    _check_mesh_axis(arg, axis, sharding_leaves)
    base = state_shardings(optimizer, params, shardings=shardings)
    state = jax.eval_shape(optimizer.init, abstract_params(params))
    same = {(tuple(p.shape), id(s)) for p, s in zip(param_leaves, sharding_leaves)}

    def widen(s, leaf):
        if (tuple(leaf.shape), id(s)) in same:  # param-shaped: it carries the param's sharding
            return _add_axis(s, tuple(leaf.shape), axis)
        return s

    return jax.tree.map(widen, base, state)


def bytes_per_device(tree: Any, shardings: Any) -> int:
    """Bytes that one device holds of ``tree`` laid out by ``shardings``: the sum over leaves of
    the shard shape (``Sharding.shard_shape``) times the item size. ``tree`` may be arrays or
    ``jax.ShapeDtypeStruct``s; nothing is allocated or moved. For an even layout every device
    holds the same; an uneven one is counted at its largest shard."""
    leaves, treedef = jax.tree.flatten(tree)
    total = 0
    for x, s in zip(leaves, treedef.flatten_up_to(shardings)):
        shape = s.shard_shape(tuple(np.shape(x))) if s is not None else np.shape(x)
        total += math.prod(shape) * np.dtype(x.dtype).itemsize
    return total


def state_bytes_per_device(
    optimizer: Any, params: Any, *, zero1_axis: str | None = None, shardings: Any = None
) -> int:
    """Bytes of ``optimizer``'s state one device holds when laid out by ``state_shardings``
    (or by ``zero1_shardings`` over ``zero1_axis``), computed from shapes only.

    >>> import jax, jax.numpy as jnp, gradchain
    >>> from jax.sharding import NamedSharding, PartitionSpec as P
    >>> mesh = jax.make_mesh((1,), ("data",))
    >>> w = jax.ShapeDtypeStruct((1000, 1000), jnp.float32, sharding=NamedSharding(mesh, P()))
    >>> gradchain.state_bytes_per_device(gradchain.sgd(0.1, momentum=0.9), {"w": w}) >= 4_000_000
    True
    """
    if zero1_axis is None:
        layout = state_shardings(optimizer, params, shardings=shardings)
    else:
        layout = _zero1_shardings(optimizer, params, zero1_axis, shardings, arg="zero1_axis")
    state = jax.eval_shape(optimizer.init, abstract_params(params))
    return bytes_per_device(state, layout)
