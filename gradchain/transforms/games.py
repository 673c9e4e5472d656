"""Steps for games (min-max problems): the optimistic gradient, which extrapolates with the
previous gradient so that simultaneous play does not cycle. Optimizers: ``optimizers/games.py``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import (
    GradientTransformation,
    describe,
    tree_map_split,
    tree_zeros_like,
)
from gradchain.transforms.moment_math import compute_dtype

__all__ = [
    "OptimisticGradientState",
    "scale_by_optimistic_gradient",
]


@describe(
    is_initial_step="True until the first update (bool scalar): then the previous gradient "
    "is taken to be the current one",
    previous_gradient="the previous step's incoming update, one array per parameter",
)
class OptimisticGradientState(NamedTuple):
    is_initial_step: jax.Array
    previous_gradient: Any


def scale_by_optimistic_gradient(alpha: float = 1.0, beta: float = 1.0) -> GradientTransformation:
    r"""Optimistic gradient: extrapolate from the previous update.

    Update:     u_t = (alpha + beta) g_t - beta g_{t-1}   (g_0 := g_1 at the first step)
    State:      is_initial_step (bool scalar), previous_gradient.   Memory: +1x params.
    Args:       alpha, beta -- >= 0.
    Note:       Optax's ``scale_by_optimistic_gradient`` (field names kept); it acts on the
                incoming update. ``optimistic_gradient_descent`` is this and a learning rate.
    Reference:  Mokhtari, Ozdaglar & Pattathil, 2019; Daskalakis et al., 2018.
    """
    _checks.check_non_negative("alpha", alpha)
    _checks.check_non_negative("beta", beta)

    def init(params):
        return OptimisticGradientState(
            is_initial_step=jnp.asarray(True), previous_gradient=tree_zeros_like(params)
        )

    def update(updates, state, params=None, **extra):
        def step(u, prev):
            c = compute_dtype(u.dtype)
            a, b, uc = jnp.asarray(alpha, c), jnp.asarray(beta, c), u.astype(c)
            before = jnp.where(state.is_initial_step, uc, prev.astype(c))
            return ((a + b) * uc - b * before).astype(u.dtype), u.astype(prev.dtype)

        out, previous = tree_map_split(step, 2, updates, state.previous_gradient)
        return out, OptimisticGradientState(jnp.asarray(False), previous)

    return GradientTransformation(init, update, name="scale_by_optimistic_gradient", preprocessing=False)
