"""Second moments kept per layer (per leaf), not per coordinate: one scalar for each array.

NovoGrad's denominator is the running average of the *squared norm* of each leaf's gradient,
so its memory is one number per parameter array instead of one per coordinate.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import GradientTransformation, describe, tree_map_split
from gradchain.transforms.mesh_axes import refuse_if_sharded
from gradchain.transforms.moment_math import abs_sq, compute_dtype, divide, increment, moment_dtype

__all__ = ["LayerwiseRmsState", "scale_by_layerwise_rms"]


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

    return GradientTransformation(init, update, name="scale_by_layerwise_rms")
