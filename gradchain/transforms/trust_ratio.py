"""Layer-wise trust ratios: rescale each leaf's update to a fixed fraction of the leaf's norm
(LARS, LAMB). The only reduction is within a leaf, so under ``shard_map`` a sharded leaf
needs its partial norms summed over the mesh axis: the ``axis_name`` argument."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import EmptyState, GradientTransformation
from gradchain.transforms.mesh_axes import varying_axes, vma_is_tracked
from gradchain.transforms.moment_math import compute_dtype, real_dtype

__all__ = ["scale_by_trust_ratio"]


def _leaf_norm(x: jax.Array, axis_name: Any) -> jax.Array:
    """||x||_2 of the whole parameter, when x may be its shard inside ``shard_map``.

    A leaf that varies over mesh axes (a shard) has its squared norm psum-ed over them; they
    must be named in ``axis_name``, or the reduction is refused at trace time."""
    c = compute_dtype(real_dtype(jnp.result_type(x)))
    sq = jnp.sum(jnp.abs(x.astype(compute_dtype(x.dtype))).astype(c) ** 2)
    names = set(axis_name if isinstance(axis_name, tuple) else (axis_name,)) - {None}
    if names and not vma_is_tracked():
        _checks.refuse_sharded_reduction(
            "scale_by_trust_ratio(axis_name=...)", sorted(names), "use shard_map's check_vma=True"
        )
    varying = varying_axes(sq)
    if not varying <= names:
        _checks.refuse_sharded_reduction(
            "scale_by_trust_ratio", sorted(varying), f"pass axis_name={tuple(sorted(varying))}"
        )
    if varying:
        sq = jax.lax.psum(sq, tuple(sorted(varying)))
    return jnp.sqrt(sq)


def scale_by_trust_ratio(
    min_norm: float = 0.0,
    trust_coefficient: float = 1.0,
    eps: float = 0.0,
    *,
    axis_name: Any = None,
) -> GradientTransformation:
    r"""Scale each leaf's update by the ratio of the leaf's norm to the update's norm.

    Update:     for each leaf: pn = max(||p||, min_norm), un = max(||u||, min_norm)
                u = u * trust_coefficient * pn / (un + eps)   (u unchanged where pn or un is 0)
    State:      none.   Memory: 0.
    Args:       min_norm, eps -- >= 0.  trust_coefficient -- > 0.
                axis_name -- a mesh axis (or tuple of axes) of an enclosing ``shard_map``: a
                leaf that varies over it (a shard of a parameter) gets its squared norm
                ``psum``-ed, so every shard scales by the whole leaf's ratio; a replicated leaf
                is left alone. Needs ``check_vma=True`` (the default) and refuses otherwise:
                without it a shard cannot tell its own leaves' layout, and would be wrong.
                A leaf sharded over an axis not named here is refused at trace time.
    Note:       Needs the params: ``update(u, state, params)``. The norm is each leaf's
                Frobenius norm, as Optax's (a "layer" is a leaf: a weight and its bias get
                separate ratios).
    Reference:  You, Gitman & Ginsburg, "Large Batch Training of Convolutional Networks",
                2017 (LARS); You et al., "Large Batch Optimization for Deep Learning: Training
                BERT in 76 minutes", ICLR 2020 (LAMB).
    """
    _checks.check_non_negative("min_norm", min_norm)
    _checks.check_positive("trust_coefficient", trust_coefficient)
    _checks.check_non_negative("eps", eps)

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):
        if params is None:
            raise _checks.GradchainError(
                "scale_by_trust_ratio needs the params: call update(updates, state, params)"
            )
        _checks.check_same_structure("updates", updates, "params", params)

        def scale_leaf(u, p):
            p_norm, u_norm = _leaf_norm(jnp.asarray(p), axis_name), _leaf_norm(u, axis_name)
            c = compute_dtype(p_norm.dtype, u_norm.dtype)
            p_norm, u_norm = p_norm.astype(c), u_norm.astype(c)
            floor = jnp.asarray(min_norm, c)
            p_norm, u_norm = jnp.maximum(p_norm, floor), jnp.maximum(u_norm, floor)
            ratio = jnp.asarray(trust_coefficient, c) * p_norm / (u_norm + jnp.asarray(eps, c))
            ratio = jnp.where((p_norm == 0) | (u_norm == 0), 1, ratio)
            cu = compute_dtype(u.dtype)
            return (u.astype(cu) * ratio.astype(cu)).astype(u.dtype)

        return jax.tree.map(scale_leaf, updates, params), state

    return GradientTransformation(init, update, name="scale_by_trust_ratio")
