"""What a leaf looks like inside ``shard_map``: which mesh axes it varies over, and the
reductions that stay right when a leaf is only this device's shard of a parameter.

Used by every transform that reduces over a leaf's elements (clipping by a norm, factored and
block statistics, trust ratios, orthogonalisation): each either reduces across the named mesh
axes, or refuses at trace time a leaf that varies over an axis it was not told about.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.transforms.moment_math import compute_dtype, real_dtype

__all__ = [
    "explicit_spec",
    "global_norm_over",
    "leaf_mean",
    "refuse_if_sharded",
    "sharded_like",
    "split_axes",
    "varying_axes",
    "vma_is_tracked",
    "whole",
    "zeros_along_axis",
    "zeros_stacked",
    "zeros_without_axis",
]


def varying_axes(x: jax.Array) -> frozenset[str]:
    """The ``shard_map`` mesh axes over which ``x`` differs from device to device (empty
    outside ``shard_map``). Read from the abstract value, so it costs nothing at run time."""
    aval = jax.typeof(x)
    manual = getattr(aval, "manual_axis_type", None)
    if manual is not None:
        return frozenset(getattr(manual, "varying", ()))
    return frozenset(getattr(aval, "vma", ()) or ())


def leaf_mean(x: jax.Array, axis_name: Any, who: str) -> jax.Array:
    """The mean of all entries of a leaf's *whole* parameter, when ``x`` may be a shard.

    Outside ``shard_map`` (or for a leaf that does not vary over any mesh axis) this is
    ``jnp.mean(x)``. With ``axis_name`` and a leaf varying over it, the partial sums and
    counts are ``psum``-ed, so every shard gets the full parameter's mean. A leaf varying over
    a mesh axis that ``axis_name`` does not name is refused at trace time.
    """
    varying = varying_axes(x)
    if not varying:
        return jnp.mean(x)
    names = set(axis_name if isinstance(axis_name, tuple) else (axis_name,)) - {None}
    if not varying <= names:
        _checks.refuse_sharded_reduction(who, sorted(varying), "pass axis_name=")
    total = jax.lax.psum(jnp.sum(x), axis_name)
    return total / jax.lax.psum(jnp.asarray(x.size, x.dtype), axis_name)


def split_axes(x: jax.Array, full_shape: tuple[int, ...], axis_name: Any, who: str) -> set[int]:
    """The axes along which ``x`` is a shard of an array of ``full_shape`` split over the mesh
    axis ``axis_name`` (empty outside ``shard_map``). Refuses, at trace time, a leaf that
    varies over a mesh axis other than ``axis_name``, or over any without ``axis_name``."""
    varying = varying_axes(x)
    if not varying:
        return set()
    names = set(axis_name if isinstance(axis_name, tuple) else (axis_name,)) - {None}
    if not varying <= names:
        _checks.refuse_sharded_reduction(who, sorted(varying), "pass axis_name=")
    split = {i for i, (m, n) in enumerate(zip(x.shape, full_shape)) if m != n}
    if len(split) > 1:
        _checks.refuse_sharded_reduction(who, sorted(varying), "split it along one axis only")
    return split


def refuse_if_sharded(
    x: jax.Array, who: str, remedy: str = "gather the leaf (or run it outside shard_map)"
) -> None:
    """A reduction over a leaf's elements (a norm, a row mean, a matrix product) is right only
    on the whole parameter: refuse, at trace time, a leaf that varies over a mesh axis."""
    varying = varying_axes(x)
    if varying:
        _checks.refuse_sharded_reduction(who, sorted(varying), remedy)


def explicit_spec(x: Any) -> tuple[Any, ...] | None:
    """The mesh axes written in ``x``'s type, one entry per dimension (an axis name, a tuple
    of them, or None), on a mesh with Explicit axes set by ``jax.set_mesh``; None where the
    type names none (Auto axes, no mesh set, numpy input, inside ``shard_map``). On such a
    mesh the sharding is part of the type: an op whose output sharding JAX cannot infer must
    be told it, and a state leaf must be created with the type its update will give it."""
    spec = getattr(getattr(jax.typeof(x), "sharding", None), "spec", None)
    if spec is None or all(e is None for e in spec) or jax.sharding.get_abstract_mesh().empty:
        return None
    return tuple(spec) + (None,) * (jnp.ndim(x) - len(spec))


def whole(x: jax.Array) -> jax.Array:
    """``x`` gathered whole onto every device (replicated: an all-gather) when its type names
    Explicit mesh axes (see ``explicit_spec``); else ``x`` itself. For math that needs the
    whole matrix (matrix products over a sharded axis); ``sharded_like`` cuts the result back."""
    return x if explicit_spec(x) is None else jax.sharding.reshard(x, jax.sharding.PartitionSpec())


def sharded_like(x: jax.Array, like: jax.Array) -> jax.Array:
    """``x`` (of ``like``'s shape) with ``like``'s Explicit sharding: from a replicated ``x``
    every device keeps its own slice, nothing moves. Else ``x`` itself."""
    spec = explicit_spec(like)
    return x if spec is None else jax.sharding.reshard(x, jax.sharding.PartitionSpec(*spec))


def zeros_without_axis(p: jax.Array, axis: int, dtype: Any) -> jax.Array:
    """Zeros of ``p``'s shape with ``axis`` removed, typed as a reduction of ``p`` over that
    axis is: on an Explicit mesh ``p.mean(axis)`` keeps the mesh axes of ``p``'s other
    dimensions (``float32[128@data,256@model]`` -> ``float32[128@data]``), and a state built
    with these keeps its type through an update that stores such a reduction. Elsewhere
    (see ``explicit_spec``) plain zeros."""
    shape = tuple(n for i, n in enumerate(jnp.shape(p)) if i != axis)
    spec = explicit_spec(p)
    kept = None if spec is None else tuple(e for i, e in enumerate(spec) if i != axis)
    if kept is None or all(e is None for e in kept):
        return jnp.zeros(shape, dtype)
    return jnp.zeros(shape, dtype, out_sharding=jax.sharding.PartitionSpec(*kept))


def zeros_along_axis(p: jax.Array, axis: int, dtype: Any) -> jax.Array:
    """Zeros of shape ``(p.shape[axis],)``, typed as a reduction of ``p`` over every other
    axis is: on an Explicit mesh ``p.max((0, 2))`` keeps only the mesh axes of ``p``'s
    dimension ``axis`` (``float32[128@data,256@model]`` gives ``float32[256@model]`` for
    axis 1), and a state built with these keeps its type through an update that stores such a
    reduction (SM3's per-axis statistics). Elsewhere (see ``explicit_spec``) plain zeros."""
    shape = (jnp.shape(p)[axis],)
    spec = explicit_spec(p)
    if spec is None or spec[axis] is None:
        return jnp.zeros(shape, dtype)
    return jnp.zeros(shape, dtype, out_sharding=jax.sharding.PartitionSpec(spec[axis]))


def zeros_stacked(p: jax.Array, n: int, dtype: Any) -> jax.Array:
    """Zeros of shape ``(n, *p.shape)``: ``n`` copies of a leaf like ``p`` stacked on a new
    leading axis (a ring of the last ``n`` differences), typed as ``p`` is on the trailing
    axes and unsharded on the new one: on an Explicit mesh ``float32[128@data,256@model]``
    gives ``float32[n,128@data,256@model]``, so storing a ``p``-typed slice keeps the type and
    each device holds its own shard of every copy. Elsewhere (see ``explicit_spec``) plain
    zeros."""
    spec = explicit_spec(p)
    shape = (n, *jnp.shape(p))
    if spec is None:
        return jnp.zeros(shape, dtype)
    return jnp.zeros(shape, dtype, out_sharding=jax.sharding.PartitionSpec(None, *spec))


def vma_is_tracked() -> bool:
    """Whether shard_map records which values vary over which mesh axes (``check_vma=True``,
    the default). The flag is private in jax 0.10; when it cannot be read, assume it is on."""
    flag = getattr(getattr(getattr(jax, "_src", None), "config", None), "_check_vma", None)
    return True if flag is None else bool(flag.value)


def global_norm_over(tree: Any, axis_name: Any) -> jax.Array:
    """The global norm inside ``shard_map``: a leaf that varies over ``axis_name`` (a shard)
    has its partial sum psum-ed over it; a replicated leaf is counted once. A leaf sharded over
    another mesh axis, or a shard_map without check_vma (which hides what varies), is refused:
    psum-ing everything would count replicated leaves |axis| times, silently."""
    _checks.check_float_leaves("tree", tree)
    names = axis_name if isinstance(axis_name, tuple) else (axis_name,)
    leaves = [jnp.asarray(x) for x in jax.tree.leaves(tree)]
    c = compute_dtype(*(real_dtype(x.dtype) for x in leaves))
    if not vma_is_tracked():
        _checks.refuse_sharded_reduction(
            "clip_by_global_norm(axis_name=...)", list(names), "use shard_map's check_vma=True"
        )
    sums: dict[tuple[str, ...], jax.Array] = {}  # partial sums, by the axes they vary over
    for x in leaves:
        varying = varying_axes(x)
        if not varying <= set(names):
            _checks.refuse_sharded_reduction(
                "clip_by_global_norm", sorted(varying), f"pass axis_name={tuple(varying)}"
            )
        key = tuple(n for n in names if n in varying)
        sq = jnp.sum(jnp.abs(x.astype(compute_dtype(x.dtype))).astype(c) ** 2)
        sums[key] = sums[key] + sq if key in sums else sq
    total = jnp.zeros([], c)
    for key, partial in sums.items():
        total = total + (jax.lax.psum(partial, key) if key else partial)
    return jnp.sqrt(total)
