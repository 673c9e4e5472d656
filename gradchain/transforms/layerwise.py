"""Steps set per layer (per leaf), not per coordinate: one scalar for each array.

LAMB's and LARS's trust ratio scales each leaf's update by ||p|| / ||u||.

NovoGrad's denominator is the running average of the *squared norm* of each leaf's gradient,
so its memory is one number per parameter array instead of one per coordinate.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import (
    EmptyState,
    GradientTransformation,
    chain,
    describe,
    tree_map_split,
)
from gradchain.transforms.mesh_axes import refuse_if_sharded, varying_axes, vma_is_tracked
from gradchain.transforms.moment_math import (
    abs_sq,
    compute_dtype,
    divide,
    increment,
    moment_dtype,
    real_dtype,
)
from gradchain.transforms.momentum import scale_by_momentum
from gradchain.transforms.scaling import add_decayed_weights

__all__ = [
    "LayerwiseRmsState",
    "scale_by_layerwise_rms",
    "scale_by_novograd",
    "scale_by_trust_ratio",
]


@describe(
    nu="per-leaf second moment: moving average of ||g||**2, one scalar per parameter array",
    count="steps taken so far (int32 scalar): the first step sets nu to ||g||**2",
)
class LayerwiseRmsState(NamedTuple):
    nu: Any
    count: jax.Array


def scale_by_layerwise_rms(
    decay: float = 0.25, eps: float = 1e-8, *, eps_root: float = 0.0, nu_dtype: Any = None
) -> GradientTransformation:
    r"""Divide each leaf's update by the root of a moving average of its gradient's squared norm.

    Update:     n_t = ||g_t||**2 at the first step, else decay * n_{t-1} + (1 - decay) * ||g_t||**2
                u_t = u_t / (sqrt(n_t + eps_root) + eps)           (one n per leaf)
    State:      nu -- one scalar per leaf (the param's real dtype, or ``nu_dtype``).
                count -- int32 scalar.   Memory: +1 scalar per parameter array.
    Args:       decay -- in [0, 1) (NovoGrad's b2, 0.25 by default).  eps, eps_root -- >= 0.
    Note:       The first step takes the whole ||g_1||**2 (no zero start, so no bias
                correction), as the paper and Optax's ``scale_by_novograd`` do. NovoGrad is
                ``chain(scale_by_layerwise_rms(b2, eps), add_decayed_weights(wd),
                scale_by_momentum(b1))``: see ``gradchain.scale_by_novograd``.
    Reference:  Ginsburg et al., "Stochastic Gradient Methods with Layer-wise Adaptive Moments
                for Training of Deep Networks", 2019, Algorithm 1.
    """
    _checks.check_unit_interval("decay", decay)
    _checks.check_non_negative("eps", eps)
    _checks.check_non_negative("eps_root", eps_root)
    _checks.check_dtype("nu_dtype", nu_dtype)

    def init(params):
        nu = jax.tree.map(lambda p: jnp.zeros([], moment_dtype(p, nu_dtype)), params)
        return LayerwiseRmsState(nu=nu, count=jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, *, gradient=None, **extra):
        grads = updates if gradient is None else gradient
        first = state.count == 0

        def step(u, g, nu):
            c = compute_dtype(nu.dtype)
            d = jnp.asarray(decay, c)
            refuse_if_sharded(g, "scale_by_layerwise_rms (a norm per leaf)")
            norm_sq = jnp.sum(abs_sq(g, c))
            nu_new = jnp.where(first, norm_sq, d * nu.astype(c) + (1 - d) * norm_sq)
            denom = jnp.sqrt(nu_new + jnp.asarray(eps_root, c)) + jnp.asarray(eps, c)
            return divide(u, denom), nu_new.astype(nu.dtype)

        out, nu = tree_map_split(step, 2, updates, grads, state.nu)
        return out, LayerwiseRmsState(nu=nu, count=increment(state.count))

    return GradientTransformation(init, update, name="scale_by_layerwise_rms", preprocessing=False)


@_checks.names_arguments
def scale_by_novograd(
    b1: float = 0.9,
    b2: float = 0.25,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""NovoGrad's direction: a layer-wise normalised gradient, plus decay, with momentum.

    Update:     n_t = ||g_t||**2 (first step), else b2 n_{t-1} + (1 - b2) ||g_t||**2 per leaf
                m_t = b1 m_{t-1} + g_t / (sqrt(n_t + eps_root) + eps) + weight_decay * p_t
    State:      nu (one scalar per leaf), count, mu.   Memory: +1x params.
    Reference:  Ginsburg et al., 2019, Algorithm 1.
    """
    return chain(
        scale_by_layerwise_rms(b2, eps, eps_root=eps_root),  # ||g||**2 per leaf  (+1 scalar)
        add_decayed_weights(weight_decay),  # decay inside the momentum
        scale_by_momentum(b1, mu_dtype=mu_dtype),  # heavy ball: m_1 is the first term (+1x)
    )


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

    return GradientTransformation(init, update, name="scale_by_trust_ratio", preprocessing=False)
