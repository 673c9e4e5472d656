"""Bounding and cleaning updates: clip each coordinate, clip the global norm, clip by the
parameter's block norm, replace NaNs, keep parameters non-negative. All keep no moment, and
all but ``scale_by_param_block_norm`` and ``keep_params_nonnegative`` (which read the params)
are pre-processing: their output is still a gradient (see ``gradchain.chain``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import (
    EmptyState,
    GradientTransformation,
    describe,
)
from gradchain.transforms.mesh_axes import global_norm_over, refuse_if_sharded
from gradchain.transforms.moment_math import compute_dtype, real_dtype
from gradchain.transforms.scaling import _times

__all__ = [
    "ClipState",
    "ClipByGlobalNormState",
    "ZeroNansState",
    "clip",
    "clip_by_global_norm",
    "global_norm",
    "keep_params_nonnegative",
    "scale_by_param_block_norm",
    "zero_nans",
]


@describe(found_nan="per leaf, True if that leaf of the last update held a NaN (bool scalar)")
class ZeroNansState(NamedTuple):
    found_nan: Any


def zero_nans() -> GradientTransformation:
    r"""Replace NaNs in the updates by 0, and record which leaves had one.

    Update:     u_t = where(isnan(u_t), 0, u_t)
    State:      found_nan -- one bool scalar per leaf (for the last update only).
                Memory: one bool per parameter array.
    Note:       Optax's ``zero_nans``. To skip the whole step instead, see
                ``gradchain.skip_non_finite``.
    """

    def init(params):
        return ZeroNansState(found_nan=jax.tree.map(lambda p: jnp.zeros([], jnp.bool_), params))

    def update(updates, state, params=None, **extra):
        found = jax.tree.map(lambda u: jnp.any(jnp.isnan(u)), updates)
        clean = jax.tree.map(lambda u: jnp.where(jnp.isnan(u), jnp.zeros_like(u), u), updates)
        return clean, ZeroNansState(found_nan=found)

    return GradientTransformation(init, update, name="zero_nans", preprocessing=True)


def keep_params_nonnegative() -> GradientTransformation:
    r"""Stop every parameter at 0: where p + u < 0, the update is -p.

    Update:     u_t = where(p_t + u_t < 0, -p_t, u_t)
    State:      none.   Memory: 0.
    Note:       Place it last in the chain (it reads the final step). Optax's
                ``keep_params_nonnegative``; a negative parameter is moved to 0.
    """

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):
        if params is None:
            _checks.refuse_missing_params("keep_params_nonnegative")
        _checks.check_same_structure("updates", updates, "params", params)

        def stop(u, p):
            p = jnp.asarray(p)
            return jnp.where(p + u < 0, (-p).astype(u.dtype), u)

        return jax.tree.map(stop, updates, params), state

    return GradientTransformation(init, update, name="keep_params_nonnegative", preprocessing=False)


def scale_by_param_block_norm(min_scale: float = 1e-3) -> GradientTransformation:
    r"""Multiply each leaf's update by its parameter's norm (at least ``min_scale``).

    Update:     u_t = u_t * max(||p_t||, min_scale), per leaf
    State:      none.   Memory: 0.
    Note:       Optax's ``scale_by_param_block_norm``; ``scale_by_param_block_rms`` is the
                same with the RMS.
    """
    _checks.check_non_negative("min_scale", min_scale)

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):
        if params is None:
            _checks.refuse_missing_params("scale_by_param_block_norm")

        def scale_leaf(u, p):
            refuse_if_sharded(jnp.asarray(p), "scale_by_param_block_norm (a norm per leaf)")
            c = compute_dtype(u.dtype, jnp.result_type(p))
            norm = jnp.sqrt(jnp.sum(jnp.abs(jnp.asarray(p).astype(c)) ** 2))
            return (u.astype(c) * jnp.maximum(norm, jnp.asarray(min_scale, c))).astype(u.dtype)

        return jax.tree.map(scale_leaf, updates, params), state

    return GradientTransformation(init, update, name="scale_by_param_block_norm", preprocessing=False)


def clip(max_delta: float) -> GradientTransformation:
    r"""Clip every coordinate to [-max_delta, max_delta].

    Update:     u_t = clip(u_t, -max_delta, max_delta)
    State:      none.   Memory: 0.
    """
    _checks.check_non_negative("max_delta", max_delta, allow_inf=True)

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):
        def clip_leaf(u):
            m = jnp.asarray(max_delta, u.dtype)
            return jnp.clip(u, -m, m)

        return jax.tree.map(clip_leaf, updates), state

    return GradientTransformation(init, update, name="clip", preprocessing=True)


def global_norm(tree: Any) -> jax.Array:
    """The L2 norm of all leaves together, accumulated in float32 (at least).

    Inside ``shard_map``, a leaf that is one device's shard of a parameter (it varies over a
    mesh axis) is refused: its norm would be the shard's. Use ``clip_by_global_norm``'s
    ``axis_name``, which sums the shards' parts over the mesh axis."""
    _checks.check_float_leaves("tree", tree)
    leaves = [jnp.asarray(x) for x in jax.tree.leaves(tree)]
    for x in leaves:
        refuse_if_sharded(
            x,
            "global_norm (and clip_by_global_norm without axis_name)",
            "pass clip_by_global_norm(..., axis_name=<those axes>) to sum the shards' parts, "
            "or average the gradient over them (jax.lax.pmean) before the optimizer",
        )
    c = compute_dtype(*(real_dtype(x.dtype) for x in leaves))
    total = jnp.zeros([], c)
    for x in leaves:
        total = total + jnp.sum(jnp.abs(x.astype(compute_dtype(x.dtype))).astype(c) ** 2)
    return jnp.sqrt(total)


def clip_by_global_norm(max_norm: float, *, axis_name: Any = None) -> GradientTransformation:
    r"""Rescale the whole update so that its global L2 norm is at most max_norm.

    Update:     n = sqrt(sum_i ||u_i||**2) ;  u_t = u_t * min(1, max_norm / n)
    State:      none.   Memory: 0.
    Args:       max_norm -- > 0.  axis_name -- under ``shard_map`` with leaves sharded over
                that mesh axis, the partial sums of the leaves that vary over it are
                ``psum``-ed (replicated leaves counted once), so every shard sees the true
                global norm. Without it, a leaf sharded over a mesh axis is refused at trace
                time (each shard would clip by its own norm).
    Note:       A NaN or infinite norm makes every entry NaN (0 / inf included), as in
                Optax: a non-finite gradient shows instead of being scaled like the rest.
    Reference:  Pascanu, Mikolov & Bengio, 2013.
    """
    _checks.check_positive("max_norm", max_norm, allow_inf=True)

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):
        norm = global_norm(updates) if axis_name is None else global_norm_over(updates, axis_name)
        m = jnp.asarray(max_norm, norm.dtype)
        factor = jnp.where(norm < m, 1.0, m / jnp.where(norm == 0, 1.0, norm))
        return jax.tree.map(lambda u: _times(u, factor), updates), state

    return GradientTransformation(init, update, name="clip_by_global_norm", preprocessing=True)

ClipState = EmptyState  # Optax's name: clip keeps no state
ClipByGlobalNormState = EmptyState  # Optax's name: clip_by_global_norm keeps no state
