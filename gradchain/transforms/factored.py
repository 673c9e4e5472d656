"""Adafactor's pieces: a factored second moment, update clipping by block RMS, and the
parameter-scale (relative) step size.

A factored second moment keeps, for a matrix, one statistic per row and one per column
instead of one per entry: a 4096 x 4096 weight keeps 4096 + 4096 numbers, not 16.7 M.
Its per-parameter node, ``FactoredMoment``, says which axis each of its two arrays was
reduced over (``FactoredMoment.reduced_axis``), so the memory report can count it and the
sharding helper can give it its parameter's layout minus that axis.

Every reduction here is within one leaf. Under ``shard_map`` a leaf may be only a shard of
its parameter. The whole-leaf RMS (clipping, parameter scale) takes ``axis_name`` (the mesh
axis the leaves are sharded over) and ``psum``s its partial sums; the factored statistics
reduce over one axis of a leaf: they ``psum`` over ``axis_name`` when that axis is the split
one. A sharded leaf without ``axis_name`` is refused at trace time. Never silently wrong.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain import _checks
from gradchain.base import EmptyState, GradientTransformation, describe, tree_map_split
from gradchain.transforms.mesh_axes import (
    leaf_mean,
    refuse_if_sharded,
    split_axes,
    zeros_without_axis,
)
from gradchain.transforms.moment_math import (
    abs_sq,
    compute_dtype,
    increment,
    moment_dtype,
    real_dtype,
)

__all__ = [
    "FactoredState",
    "FactoredMoment",
    "FactoredRmsState",
    "clip_by_block_rms",
    "factored_axes",
    "scale_by_factored_rms",
    "scale_by_param_block_rms",
]

# --- the factored second moment -------------------------------------------------------------


@jax.tree_util.register_pytree_node_class
class FactoredMoment:
    """Adafactor's second moment of one parameter, factored into two reduced arrays.

    ``row``: mean of g**2 over axis ``row_axis`` (the parameter's largest axis);
    ``col``: mean of g**2 over axis ``col_axis`` (its second largest). Each has the
    parameter's shape with that one axis removed. For a wide matrix (rows <= columns) they
    are the paper's per-row and per-column statistics. The axes and the parameter's (global)
    shape are static (part of the tree structure), so the state is jit-safe, the layout is
    known without arrays, and under ``shard_map`` a shard can tell which axis was split.
    """

    def __init__(
        self, row: Any, col: Any, row_axis: int, col_axis: int, param_shape: tuple[int, ...]
    ):
        self.row, self.col = row, col
        self.row_axis, self.col_axis = row_axis, col_axis
        self.param_shape = tuple(param_shape)

    @property
    def reduced_axis(self) -> dict[str, int]:
        """For each array, the axis of the parameter it was reduced over."""
        return {"row": self.row_axis, "col": self.col_axis}

    def tree_flatten(self):
        return (self.row, self.col), (self.row_axis, self.col_axis, self.param_shape)

    @classmethod
    def tree_unflatten(cls, axes, children):
        return cls(*children, *axes)

    def __repr__(self) -> str:
        return (
            f"FactoredMoment(row={self.row!r} (over axis {self.row_axis}), "
            f"col={self.col!r} (over axis {self.col_axis}))"
        )


def factored_axes(shape: tuple[int, ...], min_dim_size_to_factor: int) -> tuple[int, int] | None:
    """(largest axis, second largest axis) when both are >= min_dim_size_to_factor, else None.

    Ties go to the later axis for the largest, as Optax's ``argsort`` does."""
    if len(shape) < 2:
        return None
    order = np.argsort(shape)
    if shape[order[-2]] < min_dim_size_to_factor:
        return None
    return int(order[-1]), int(order[-2])


@describe(
    nu="second moment per parameter: a FactoredMoment for matrices (row: mean of g**2 over the "
    "largest axis, col: over the second largest), else an array like the param",
    count="steps taken so far (int32 scalar); drives the decay schedule",
)
class FactoredRmsState(NamedTuple):
    nu: Any
    count: jax.Array


def scale_by_factored_rms(
    factored: bool = True,
    decay_rate: float = 0.8,
    decay_offset: int = 0,
    min_dim_size_to_factor: int = 128,
    eps: float = 1e-30,
    decay_rate_fn: Any = None,
    *,
    nu_dtype: Any = None,
    axis_name: Any = None,
    step_offset: Any = None,
    epsilon: float | None = None,
) -> GradientTransformation:
    r"""Divide by a factored estimate of the root mean square gradient (Adafactor).

    Update:     beta_t = 1 - (t - decay_offset)**(-decay_rate), t = 1, 2, ...
                s = |g|**2 + eps
                factored leaf (two axes a, b >= min_dim_size_to_factor, a the largest):
                  R_t = beta_t R + (1 - beta_t) mean_a(s) ;  C_t = beta_t C + (1 - beta_t) mean_b(s)
                  u_t = u_t / sqrt( (R_t / mean(R_t)) outer C_t )
                other leaves: nu_t = beta_t nu + (1 - beta_t) s ;  u_t = u_t / sqrt(nu_t)
    State:      nu -- per parameter, a ``FactoredMoment`` (row, col) of reduced arrays, or a
                full array like the param; dtype ``nu_dtype`` (default the params' real
                dtype), starts at 0.  count -- one int32 scalar.
                Memory: m + n per m x n matrix (about 0x params); 1x for vectors and small
                matrices.
    Args:       factored -- False keeps a full nu for every leaf.  decay_rate -- >= 0.
                decay_offset -- the step a fine-tuning phase starts at (an integer; an
                array, traced or not, also works: it is only subtracted from the count).
                min_dim_size_to_factor -- factor only when two axes are at least this long.
                eps -- >= 0.  nu_dtype -- storage dtype of the statistics.
                decay_rate_fn -- a function (t - decay_offset, decay_rate) -> beta_t of the
                0-based int32 step, replacing the power schedule above (Optax's keyword, e.g.
                to cap beta as Zhai et al., 2021).
                Optax's keyword names are accepted as aliases, beside ours (the primary, in
                the same positions): ``step_offset`` for ``decay_offset``, ``epsilon`` for
                ``eps``; giving both spellings of one argument is refused.
    Sharding:   inside ``shard_map`` a leaf may be a shard of its parameter, split along one
                axis over the mesh axis ``axis_name``: a mean over that axis is then
                ``psum``-ed (the statistic that lost it is the same on every shard, the
                other keeps the split). Give the state the layout of
                ``gradchain.sharding.state_shardings``. A sharded leaf without ``axis_name``
                (or split over another mesh axis) is refused at trace time. Under ``jit`` over
                sharded arrays GSPMD inserts the collectives itself.
    Note:       Optax's ``scale_by_factored_rms`` evaluates beta_t in float32 even for
                float64 params; here it is computed in the moment's dtype.
    Reference:  Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory
                Cost", 2018.
    """
    if step_offset is not None:
        if isinstance(step_offset, (bool, int, np.integer)):
            _checks.check_int("step_offset", step_offset)
        else:
            _checks.check_non_negative("step_offset", step_offset)
        if decay_offset != 0:
            raise _checks.GradchainError(
                "scale_by_factored_rms: give decay_offset or step_offset (Optax's name), not both"
            )
        decay_offset = step_offset
    if epsilon is not None:
        _checks.check_non_negative("epsilon", epsilon)
        if eps != 1e-30:
            raise _checks.GradchainError(
                "scale_by_factored_rms: give eps or epsilon (Optax's name), not both"
            )
        eps = epsilon
    if decay_rate_fn is not None and not callable(decay_rate_fn):
        raise _checks.GradchainError(
            "decay_rate_fn must be a function (step, decay_rate) -> beta, got "
            f"{_checks._kind(decay_rate_fn)}"
        )
    _checks.check_non_negative("decay_rate", decay_rate)
    _checks.check_non_negative("eps", eps)
    if isinstance(decay_offset, (bool, int, np.integer)):
        _checks.check_int("decay_offset", decay_offset)
    else:  # an array (live under inject_hyperparams): arithmetic only, never a shape
        _checks.check_non_negative("decay_offset", decay_offset)
    _checks.check_int("min_dim_size_to_factor", min_dim_size_to_factor)
    _checks.check_dtype("nu_dtype", nu_dtype)

    def init_leaf(p):
        abstract = isinstance(p, jax.ShapeDtypeStruct)  # Optax's abstract init: shapes only
        if not abstract:
            refuse_if_sharded(
                jnp.asarray(p),
                "scale_by_factored_rms's init (which axes to factor depends on the whole shape)",
                "make the state outside shard_map from the whole params, and pass it in",
            )
        shape, dtype = jnp.shape(p), moment_dtype(p.dtype if abstract else p, nu_dtype)
        axes = factored_axes(shape, min_dim_size_to_factor) if factored else None
        if abstract:  # zeros of the statistics' shapes, unplaced
            if axes is None:
                return jnp.zeros(shape, dtype)
            a, b = axes
            drop = lambda axis: tuple(n for i, n in enumerate(shape) if i != axis)  # noqa: E731
            row, col = jnp.zeros(drop(a), dtype), jnp.zeros(drop(b), dtype)
            return FactoredMoment(row, col, a, b, shape)
        if axes is None:
            return jnp.zeros_like(p, dtype)  # follows p's sharding when p is placed
        a, b = axes
        # typed as update's means over a and b will be, so the state keeps its type
        row, col = zeros_without_axis(p, a, dtype), zeros_without_axis(p, b, dtype)
        return FactoredMoment(row, col, a, b, shape)

    def init(params):
        nu = jax.tree.map(init_leaf, params)
        return FactoredRmsState(nu=nu, count=jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, *, gradient=None, **extra):
        grads = updates if gradient is None else gradient

        def step(u, g, nu):
            store = nu.row.dtype if isinstance(nu, FactoredMoment) else nu.dtype
            c = compute_dtype(store)
            if decay_rate_fn is None:
                t = state.count.astype(c) - jnp.asarray(decay_offset, c) + 1
                beta = 1 - t ** (-jnp.asarray(decay_rate, c))
            else:  # the user's schedule, of the 0-based step
                step_now = state.count - decay_offset
                beta = jnp.asarray(decay_rate_fn(step_now, decay_rate)).astype(c)
            s = abs_sq(g, c) + jnp.asarray(eps, c)
            if not isinstance(nu, FactoredMoment):
                nu_new = beta * nu.astype(c) + (1 - beta) * s
                cu = compute_dtype(u.dtype, c)  # complex u stays complex
                out = u.astype(cu) * jax.lax.rsqrt(nu_new).astype(cu)
                return out.astype(u.dtype), nu_new.astype(store)
            a, b, full = nu.row_axis, nu.col_axis, nu.param_shape
            split = split_axes(g, full, axis_name, "scale_by_factored_rms")

            def mean(x, axis, param_axis):  # over a whole axis of the parameter
                if param_axis not in split:
                    return jnp.mean(x, axis=axis)
                return jax.lax.psum(jnp.sum(x, axis=axis), axis_name) / full[param_axis]

            row = beta * nu.row.astype(c) + (1 - beta) * mean(s, a, a)
            col = beta * nu.col.astype(c) + (1 - beta) * mean(s, b, b)
            b_in_row = b - 1 if b > a else b  # where axis b sits once axis a is removed
            row_mean = jnp.expand_dims(mean(row, b_in_row, b), b_in_row)
            factor = jnp.expand_dims(jax.lax.rsqrt(row / row_mean), a) * jnp.expand_dims(
                jax.lax.rsqrt(col), b
            )
            cu = compute_dtype(u.dtype, c)  # complex u stays complex
            out = (u.astype(cu) * factor.astype(cu)).astype(u.dtype)
            return out, FactoredMoment(row.astype(store), col.astype(store), a, b, full)

        # nu has the params' tree as a prefix: each FactoredMoment arrives whole.
        out, nu = tree_map_split(step, 2, updates, grads, state.nu)
        return out, FactoredRmsState(nu=nu, count=increment(state.count))

    return GradientTransformation(init, update, name="scale_by_factored_rms", preprocessing=False)


# --- update clipping and the relative step size ---------------------------------------------


def _rms(x: jax.Array, axis_name: Any, who: str) -> jax.Array:
    c = real_dtype(compute_dtype(x.dtype))
    return jnp.sqrt(leaf_mean(abs_sq(x, c), axis_name, who))


def clip_by_block_rms(threshold: float = 1.0, *, axis_name: Any = None) -> GradientTransformation:
    r"""Shrink each leaf whose root mean square exceeds ``threshold`` (Adafactor's clipping).

    Update:     u_t = u_t / max(1, RMS(u_t) / threshold),  RMS(x) = sqrt(mean |x|**2), per leaf
    State:      none.   Memory: 0.
    Args:       threshold -- > 0 (Adafactor: 1).  axis_name -- see the module docstring.
    Reference:  Shazeer & Stern, 2018, section 6.
    """
    _checks.check_positive("threshold", threshold)

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):
        def clip_leaf(u):
            rms = _rms(u, axis_name, "clip_by_block_rms")
            denom = jnp.maximum(1, rms / jnp.asarray(threshold, rms.dtype))
            cu = compute_dtype(u.dtype, rms.dtype)  # complex u stays complex
            return (u.astype(cu) / denom.astype(cu)).astype(u.dtype)

        return jax.tree.map(clip_leaf, updates), state

    return GradientTransformation(init, update, name="clip_by_block_rms", preprocessing=False)


def scale_by_param_block_rms(
    min_scale: float = 1e-3, *, axis_name: Any = None
) -> GradientTransformation:
    r"""Multiply each leaf's update by its parameter's RMS (Adafactor's relative step size).

    Update:     u_t = u_t * max(RMS(p_t), min_scale), per leaf
    State:      none.   Memory: 0.
    Args:       min_scale -- >= 0 (Adafactor's eps2 = 1e-3), so zero-initialised weights move.
                axis_name -- see the module docstring.
    Reference:  Shazeer & Stern, 2018, section 8.
    """
    _checks.check_non_negative("min_scale", min_scale)

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):
        if params is None:
            _checks.refuse_missing_params("scale_by_param_block_rms")

        def scale_leaf(u, p):
            rms = _rms(jnp.asarray(p), axis_name, "scale_by_param_block_rms")
            factor = jnp.maximum(rms, jnp.asarray(min_scale, rms.dtype))
            c = compute_dtype(u.dtype, rms.dtype)
            return (u.astype(c) * factor.astype(c)).astype(u.dtype)

        return jax.tree.map(scale_leaf, updates, params), state

    return GradientTransformation(init, update, name="scale_by_param_block_rms", preprocessing=False)

FactoredState = FactoredRmsState  # Optax's name (adafactor's state); fields nu, count (Optax: v_row, v_col, v, count)
