"""Polyak's step size: how far to step, read from how far the objective is above its minimum."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import EmptyState, GradientTransformation
from gradchain.transforms.moment_math import abs_sq, compute_dtype

__all__ = [
    "scale_by_polyak",
]

_TINY = float(jnp.finfo(jnp.float64).eps)  # Optax's guard: below it, no step


def scale_by_polyak(
    f_min: float = 0.0, max_learning_rate: float = 1.0, eps: float = 0.0, variant: str = "sps"
) -> GradientTransformation:
    r"""Scale the update by the Polyak step (f - f_min) / ||u||**2, capped.

    Update:     gap = value - f_min   (``sps+``: max(gap, 0))
                u_t = min(gap / (||u||**2 + eps), max_learning_rate) * u_t, and 0 when
                ||u||**2 + eps <= 2.2e-16 (float64's eps, as Optax)
    State:      none.   Memory: 0.
    Args:       f_min -- a lower bound on the objective (0 for interpolating models).
                max_learning_rate -- >= 0, the cap.  eps -- >= 0.  variant -- "sps" or "sps+".
    Extra args: value -- the objective at the params (``update(u, s, p, value=f(p))``).
    Note:       Optax's ``scale_by_polyak``. ||u|| is the norm over the whole tree.
    Reference:  Polyak, "Introduction to Optimization", 1987; Loizou et al., "Stochastic
                Polyak Step-size for SGD", AISTATS 2021 (SPS, SPS+ as SPS_max's variants).
    """
    _checks.check_hyperparam("f_min", f_min)
    _checks.check_non_negative("max_learning_rate", max_learning_rate)
    _checks.check_non_negative("eps", eps)
    _checks.check_choice("variant", variant, ("sps", "sps+"))

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, *, value=None, **extra):
        if value is None:
            raise _checks.GradchainError(
                "scale_by_polyak needs the objective's value: update(updates, state, params, "
                "value=f(params))"
            )
        leaves = jax.tree.leaves(updates)
        h = compute_dtype(*(u.dtype for u in leaves))
        sq_norm = sum((jnp.sum(abs_sq(u, h)) for u in leaves), jnp.zeros([], h))
        gap = jnp.asarray(value).astype(h) - jnp.asarray(f_min, h)
        if variant == "sps+":
            gap = jnp.maximum(gap, 0)
        denom = sq_norm + jnp.asarray(eps, h)
        step = jnp.minimum(gap / denom, jnp.asarray(max_learning_rate, h))
        step = jnp.where(denom <= _TINY, jnp.zeros([], h), step)

        def scaled(u):
            c = compute_dtype(u.dtype)
            return (step.astype(c) * u.astype(c)).astype(u.dtype)

        return jax.tree.map(scaled, updates), state

    return GradientTransformation(init, update, name="scale_by_polyak", preprocessing=False)
