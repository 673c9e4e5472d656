"""AdaDelta: a step whose units match the parameters', from two moving averages."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import GradientTransformation, describe, tree_map_split
from gradchain.transforms.moment_math import abs_sq, compute_dtype, moment_dtype

__all__ = [
    "ScaleByAdaDeltaState",
    "AdadeltaState",
    "scale_by_adadelta",
]


@describe(
    mean_sq_grad="moving average of g**2, one array per parameter",
    mean_sq_update="moving average of the squared steps taken (before the learning rate), "
    "one array per parameter",
)
class AdadeltaState(NamedTuple):
    mean_sq_grad: Any
    mean_sq_update: Any


def scale_by_adadelta(
    rho: float = 0.9, eps: float = 1e-6, *, nu_dtype: Any = None
) -> GradientTransformation:
    r"""Scale by the ratio of the RMS of past steps to the RMS of gradients (AdaDelta).

    Update:     E[g2]_t  = rho * E[g2]_{t-1} + (1 - rho) * |g_t|**2
                u_t      = sqrt(E[dx2]_{t-1} + eps) / sqrt(E[g2]_t + eps) * u_t
                E[dx2]_t = rho * E[dx2]_{t-1} + (1 - rho) * |u_t|**2
    State:      mean_sq_grad, mean_sq_update -- like params (real dtype, or ``nu_dtype``),
                start at 0.   Memory: +2x params.
    Args:       rho -- in [0, 1).  eps -- > 0 (it starts the very first step: with
                E[dx2] = 0 the first step is sqrt(eps) / sqrt(E[g2] + eps) * g).
    Note:       Same math as Optax's ``scale_by_adadelta`` and torch.optim.Adadelta (whose
                ``lr`` multiplies afterwards, and whose ``weight_decay`` is L2 added to the
                gradient first): torch.optim.Adadelta(lr, rho, eps, weight_decay) is
                ``chain(add_decayed_weights(weight_decay), scale_by_adadelta(rho, eps),
                scale_by_learning_rate(lr))`` -- ``gradchain.adadelta``.
    Reference:  Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012, Algorithm 1.
    """
    _checks.check_unit_interval("rho", rho)
    _checks.check_positive("eps", eps)
    _checks.check_dtype("nu_dtype", nu_dtype)

    def init(params):
        def zeros(p):
            return jnp.zeros_like(p, moment_dtype(p, nu_dtype))

        return AdadeltaState(
            mean_sq_grad=jax.tree.map(zeros, params),
            mean_sq_update=jax.tree.map(zeros, params),
        )

    def update(updates, state, params=None, *, gradient=None, **extra):
        grads = updates if gradient is None else gradient

        def step(u, g, eg, ex):
            c = compute_dtype(eg.dtype, ex.dtype)
            r, e = jnp.asarray(rho, c), jnp.asarray(eps, c)
            eg_new = r * eg.astype(c) + (1 - r) * abs_sq(g, c)
            cu = compute_dtype(u.dtype)
            factor = (jnp.sqrt(ex.astype(c) + e) / jnp.sqrt(eg_new + e)).astype(cu)
            out = (factor * u.astype(cu)).astype(u.dtype)
            ex_new = r * ex.astype(c) + (1 - r) * abs_sq(out, c)
            return out, eg_new.astype(eg.dtype), ex_new.astype(ex.dtype)

        out, eg, ex = tree_map_split(
            step, 3, updates, grads, state.mean_sq_grad, state.mean_sq_update
        )
        return out, AdadeltaState(mean_sq_grad=eg, mean_sq_update=ex)

    return GradientTransformation(init, update, name="scale_by_adadelta", preprocessing=False)

ScaleByAdaDeltaState = AdadeltaState  # Optax's name; fields mean_sq_grad, mean_sq_update (Optax: e_g, e_x)
