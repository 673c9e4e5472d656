"""Normalizations that keep no memory: centre each unit of a gradient on zero, or scale the
whole update to unit norm. Family: normalization. Both are pre-processing (their output is
still a gradient: see ``gradchain.chain``). SAM's adversary ``normalize`` is with SAM in
``combine/sharpness.py``; per-unit clipping is in ``clipping.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import EmptyState, GradientTransformation
from gradchain.transforms.clipping import global_norm
from gradchain.transforms.mesh_axes import refuse_if_sharded
from gradchain.transforms.moment_math import cast, compute_dtype

__all__ = [
    "centralize",
    "normalize_by_update_norm",
]


def centralize() -> GradientTransformation:
    r"""Gradient centralization: subtract from each output unit its mean over the other axes.

    Update:     for a leaf of rank >= 2, u[i, ...] <- u[i, ...] - mean(u[i, ...]) (the mean over
                every axis but the leading one); vectors and scalars pass unchanged.
    State:      none.   Memory: 0.
    Note:       Optax's ``centralize``: the leading axis is the unit (the paper's output
                channel, axis 0 of a torch weight; a JAX ``x @ W`` kernel's fan-in axis).
    Reference:  Yong et al., "Gradient Centralization: A New Optimization Technique for Deep
                Neural Networks", ECCV 2020.
    """

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):
        def centre(u):
            if u.ndim <= 1:
                return u
            refuse_if_sharded(u, "centralize (a mean over each unit)")
            c = compute_dtype(u.dtype)
            x = cast(u, c)
            return cast(x - jnp.mean(x, axis=tuple(range(1, u.ndim)), keepdims=True), u.dtype)

        return jax.tree.map(centre, updates), state

    return GradientTransformation(init, update, name="centralize", preprocessing=True)


def normalize_by_update_norm(
    scale_factor: float = 1.0, eps: float = 1e-6
) -> GradientTransformation:
    r"""Scale the whole update to norm ``scale_factor`` (about): u / ((||u|| + eps) / scale_factor).

    Update:     u_t = scale_factor * u_t / (||u_t|| + eps),  ||.|| the L2 norm of all leaves
    State:      none.   Memory: 0.
    Args:       scale_factor -- any nonzero number (-1: a normalized descent step, as Optax's
                example).  eps -- >= 0, keeps a zero update finite.
    Note:       Optax's ``normalize_by_update_norm``.
    """
    _checks.check_hyperparam("scale_factor", scale_factor)
    _checks.check_non_negative("eps", eps)

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):
        norm = global_norm(updates)
        divisor = (norm + jnp.asarray(eps, norm.dtype)) / jnp.asarray(scale_factor, norm.dtype)

        def scaled(u):
            c = compute_dtype(u.dtype, divisor.dtype)
            return cast(cast(u, c) / cast(divisor, c), u.dtype)

        return jax.tree.map(scaled, updates), state

    return GradientTransformation(init, update, name="normalize_by_update_norm", preprocessing=True)
