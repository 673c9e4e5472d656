"""Bounding and cleaning updates: clip each coordinate, clip the global norm, clip each unit
relative to its parameter's (adaptive gradient clipping), scale by the parameter's block norm,
replace NaNs, keep parameters non-negative. All keep no moment, and
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
    "NonNegativeParamsState",
    "ZeroNansState",
    "adaptive_grad_clip",
    "clip",
    "clip_by_global_norm",
    "global_norm",
    "keep_params_nonnegative",
    "scale_by_param_block_norm",
    "unitwise_clip",
    "unitwise_norm",
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


NonNegativeParamsState = EmptyState  # Optax's name: keep_params_nonnegative keeps no state


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
    Args:       max_norm -- >= 0 (0 zeroes the update: where a schedule of it decays to 0,
                as in Optax's getting-started notebook).  axis_name -- under ``shard_map``
                with leaves sharded over that mesh axis, the partial sums of the leaves that
                vary over it are ``psum``-ed (replicated leaves counted once), so every shard
                sees the true global norm. Without it, a leaf sharded over a mesh axis is
                refused at trace time (each shard would clip by its own norm).
    Note:       A NaN or infinite norm makes every entry NaN (0 / inf included), as in
                Optax: a non-finite gradient shows instead of being scaled like the rest.
    Reference:  Pascanu, Mikolov & Bengio, 2013.
    """
    _checks.check_non_negative("max_norm", max_norm, allow_inf=True)

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


# --- adaptive gradient clipping: per unit, relative to the parameter -------------------------

_UNIT_AXES = {1: None, 2: (0,), 3: (0,), 4: (0, 1, 2), 5: (0, 1, 2, 3)}  # rank -> reduced axes


def unitwise_norm(x: jax.Array, axis: Any = None) -> jax.Array:
    r"""The L2 norm of each unit of ``x``, broadcast back to ``x``'s shape.

    A unit is what remains when ``axis`` is summed over. ``axis=None`` picks it by rank, as
    Optax: a vector or scalar is one unit; a matrix ``(in, out)`` and a multi-head kernel
    ``(in, heads, out)`` sum over axis 0; a conv kernel HWIO over (0, 1, 2), DHWIO over
    (0, 1, 2, 3). Other ranks need ``axis``. Complex entries count ``|x|**2``.
    """
    x = jnp.asarray(x)
    c = real_dtype(compute_dtype(x.dtype))
    if axis is None:
        if jnp.squeeze(x).ndim <= 1:
            axis = tuple(range(x.ndim))
        elif x.ndim in _UNIT_AXES:
            axis = _UNIT_AXES[x.ndim]
        else:
            raise _checks.GradchainError(
                f"unitwise_norm: a leaf of shape {x.shape} has no default unit (ranks 1 to 5 "
                "do); give axis, the axes to sum over"
            )
    sq = jnp.sum(jnp.abs(x.astype(compute_dtype(x.dtype))).astype(c) ** 2, axis=axis, keepdims=True)
    return jnp.broadcast_to(jnp.sqrt(sq), x.shape)


def unitwise_clip(g_norm: jax.Array, max_norm: jax.Array, grad: jax.Array, div_eps: float = 1e-6):
    """``grad`` where its unit norm ``g_norm`` is below ``max_norm``, else rescaled to it
    (``g_norm`` floored at ``div_eps``). All three of one shape."""
    for name, x in (("g_norm", g_norm), ("max_norm", max_norm), ("grad", grad)):
        _checks.check_array(name, x)
    for name, x in (("g_norm", g_norm), ("max_norm", max_norm)):
        if jnp.shape(x) != jnp.shape(grad):
            raise _checks.GradchainError(
                f"unitwise_clip: {name} has shape {jnp.shape(x)}, grad {jnp.shape(grad)}"
            )
    c = compute_dtype(grad.dtype)
    factor = max_norm / jnp.maximum(g_norm, jnp.asarray(div_eps, g_norm.dtype))
    clipped = (grad.astype(c) * factor.astype(c)).astype(grad.dtype)
    return jnp.where(g_norm < max_norm, grad, clipped)


def adaptive_grad_clip(
    clipping: float, eps: float = 1e-3, axis: Any = None
) -> GradientTransformation:
    r"""Adaptive gradient clipping: each unit's update at most ``clipping`` times its weight's norm.

    Update:     per unit (see ``unitwise_norm``; ``axis`` as there):
                u <- u                               if ||u|| < clipping * max(||p||, eps)
                u <- u * clipping * max(||p||, eps) / max(||u||, 1e-6)   otherwise
    State:      none.   Memory: 0.
    Args:       clipping -- >= 0, the largest ratio of update norm to parameter norm.
                eps -- >= 0, the parameter norm assumed for zero-initialised units.
                axis -- the axes to sum over for every leaf, or None (by rank).
    Note:       Optax's ``adaptive_grad_clip``. A gradient filter that reads the params: it is
                pre-processing (its output is still a gradient).
    Reference:  Brock et al., "High-Performance Large-Scale Image Recognition Without
                Normalization", 2021.
    """
    _checks.check_non_negative("clipping", clipping)
    _checks.check_non_negative("eps", eps)

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):
        if params is None:
            _checks.refuse_missing_params("adaptive_grad_clip")
        _checks.check_same_structure("updates", updates, "params", params)

        def clip_leaf(u, p):
            refuse_if_sharded(u, "adaptive_grad_clip (a norm per unit)")
            g_norm, p_norm = unitwise_norm(u, axis), unitwise_norm(p, axis)
            d = p_norm.dtype
            max_norm = jnp.asarray(clipping, d) * jnp.maximum(p_norm, jnp.asarray(eps, d))
            return unitwise_clip(g_norm.astype(d), max_norm, u)

        return jax.tree.map(clip_leaf, updates, params), state

    return GradientTransformation(init, update, name="adaptive_grad_clip", preprocessing=True)
