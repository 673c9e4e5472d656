"""Many small leaves, one buffer: an opt-in wrapper that runs an optimizer on grouped leaves.

On XLA:CPU each elementwise kernel costs a fixed overhead (tens of microseconds), and Adam
launches three per leaf: a model of 1000 leaves of 1000 parameters spends most of its step
launching kernels. ``group_leaves(opt)`` keeps the optimizer's state as one contiguous buffer
per dtype (built once, by ``init``), so each step only gathers the *gradients* into a buffer
(one concatenate), runs the optimizer's few kernels over it, and hands back per-leaf
updates (slices). Measured on a 2-core CPU VM: see ``docs/performance.md``.

The trade: the step is faster for many small leaves, the first call (trace + compile) slower,
and leaves larger than ``max_leaf_size`` gain nothing, so they are left alone (their state is
per leaf, as without the wrapper).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain import _checks
from gradchain.base import Child, GradientTransformation, describe, updater

__all__ = ["GroupedState", "group_leaves"]


@describe(inner="the wrapped optimizer's state, over {dtype name: flat buffer, 'large': [leaves]}")
class GroupedState(NamedTuple):
    inner: Any


class _Layout(NamedTuple):
    treedef: Any
    groups: tuple[tuple[str, tuple[int, ...]], ...]  # (dtype name, leaf indices)
    large: tuple[int, ...]  # indices of leaves kept as they are
    shapes: tuple[tuple[int, ...], ...]


def _layout(tree: Any, max_leaf_size: int) -> _Layout:
    leaves, treedef = jax.tree.flatten(tree)
    groups: dict[str, list[int]] = {}
    large = []
    for i, x in enumerate(leaves):
        if math.prod(np.shape(x)) <= max_leaf_size:
            groups.setdefault(jnp.result_type(x).name, []).append(i)
        else:
            large.append(i)
    return _Layout(
        treedef,
        tuple((k, tuple(v)) for k, v in sorted(groups.items())),
        tuple(large),
        tuple(tuple(np.shape(x)) for x in leaves),
    )


def _gather(leaves: list[Any], indices: tuple[int, ...], dtype: str) -> jax.Array:
    """The leaves at ``indices``, raveled into one buffer by one ``concatenate``: one kernel.
    (In-place updates of a zero buffer at constant offsets make one distinct kernel per leaf,
    each compiled on its own: measured at 1000 leaves of 32x32, first call 28.6 s against
    11.7 s, step 9.8 against 5.9 ms.)"""
    return jnp.concatenate([jnp.ravel(leaves[i]).astype(dtype) for i in indices])


def _group(tree: Any, layout: _Layout) -> dict[str, Any]:
    leaves = layout.treedef.flatten_up_to(tree)
    grouped: dict[str, Any] = {k: _gather(leaves, idx, k) for k, idx in layout.groups}
    grouped["large"] = [leaves[i] for i in layout.large]
    return grouped


def _ungroup(grouped: dict[str, Any], layout: _Layout) -> Any:
    leaves: list[Any] = [None] * len(layout.shapes)
    for k, indices in layout.groups:
        offset = 0
        for i in indices:
            n = math.prod(layout.shapes[i])
            piece = jax.lax.slice(grouped[k], (offset,), (offset + n,))
            leaves[i] = piece.reshape(layout.shapes[i])
            offset += n
    for i, x in zip(layout.large, grouped["large"]):
        leaves[i] = x
    return layout.treedef.unflatten(leaves)


def group_leaves(optimizer: Any, *, max_leaf_size: int = 4096) -> GradientTransformation:
    r"""Run ``optimizer`` on the small leaves grouped into one flat buffer per dtype.

    Update:     g_flat = gather(small leaves of g)  (per dtype, one concatenate)
                u_flat, state = optimizer.update(g_flat, state, p_flat) ;  u = slices of u_flat
                Leaves with more than ``max_leaf_size`` elements pass through as leaves.
    State:      ``GroupedState(inner)``: the optimizer's state for the tree
                ``{dtype name: flat buffer, "large": [large leaves]}`` -- the same bytes as
                without the wrapper, laid out contiguously.   Memory: as ``optimizer``.
    Args:       optimizer -- a transform that treats every leaf alike (any named optimizer;
                not one with per-leaf masks, labels or shapes: ``mask=``, ``partition``,
                factored or orthogonalised updates, which need each leaf's own shape).
                max_leaf_size -- leaves up to this many elements are grouped. Measured: the
                step gains for leaves of ~1e3 elements and loses from ~1e4.
    Note:       Opt-in, for single-device training with many small leaves: the first call
                compiles slower (the gathers and slices), every later step runs faster. The
                state is not laid out like the params, so ``gradchain.state_shardings`` puts
                it replicated: do not use it with sharded params (grouping leaves of different
                shardings makes the compiler move data every step).

    >>> import jax.numpy as jnp, gradchain
    >>> opt = gradchain.group_leaves(gradchain.adam(0.1))
    >>> params = {"a": jnp.ones(3), "b": jnp.ones((2, 2))}
    >>> updates, _ = opt.update(params, opt.init(params), params)
    >>> [round(float(u), 4) for u in updates["a"]]
    [-0.1, -0.1, -0.1]
    """
    _checks.check_positive("max_leaf_size", max_leaf_size)
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise _checks.GradchainError(
            f"group_leaves() wraps a gradient transformation, got {optimizer!r}"
        )

    def init(params):
        return GroupedState(inner=optimizer.init(_group(params, _layout(params, max_leaf_size))))

    call = updater(optimizer)

    def update(updates, state, params=None, *, gradient=None, **extra):
        # Group by the params' dtypes (as init did) when they are given.
        layout = _layout(updates if params is None else params, max_leaf_size)
        grouped = _group(updates, layout)
        grouped_params = None if params is None else _group(params, layout)
        grouped_gradient = None if gradient is None else _group(gradient, layout)
        out, inner = call(grouped, state.inner, grouped_params, grouped_gradient, extra)
        out = _ungroup(out, layout)
        leaves = layout.treedef.flatten_up_to(updates)  # each update keeps its incoming dtype
        out = layout.treedef.unflatten(
            [
                u.astype(jnp.result_type(x))
                for u, x in zip(layout.treedef.flatten_up_to(out), leaves)
            ]
        )
        return out, GroupedState(inner=inner)

    return GradientTransformation(
        init, update, name="group_leaves", preprocessing=getattr(optimizer, "preprocessing", None),
        children=(Child(None, optimizer, ("inner",)),)
    )
