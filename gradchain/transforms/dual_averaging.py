"""Dual averaging: the iterate is recomputed from the start point and weighted sums of all
gradients so far, instead of being moved by each one (MADGRAD)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import (
    GradientTransformation,
    LearningRate,
    describe,
    hyperparam_dtype,
    tree_map_split,
)
from gradchain.transforms.moment_math import accumulator_zeros, compute_dtype, increment

__all__ = [
    "MadgradState",
    "scale_by_madgrad",
]


@describe(
    count="steps taken so far (int32 scalar): the weights grow as sqrt(count + 1)",
    grad_sum_sq="weighted sum of squared gradients, sum_k lambda_k g_k**2, one array per parameter",
    s="weighted sum of gradients, sum_k lambda_k g_k, one array per parameter",
    x0="the params at init, one array per parameter",
)
class MadgradState(NamedTuple):
    count: jax.Array
    grad_sum_sq: Any
    s: Any
    x0: Any


def scale_by_madgrad(
    learning_rate: LearningRate,
    momentum: float = 0.9,
    eps: float = 1e-6,
) -> GradientTransformation:
    r"""MADGRAD: dual averaging with a cube-root AdaGrad denominator, then momentum by
    averaging the iterate.

    Update:     lambda_k = (lr + eps) * sqrt(k + 1)                 (k: steps so far)
                G_k = G_{k-1} + lambda_k * g_k**2 ;  s_k = s_{k-1} + lambda_k * g_k
                z_k = x0 - s_k / (cbrt(G_k) + eps)
                x_k = (1 - momentum) * z_k + momentum * x_{k-1}    (x_{k-1}: the params)
                emit x_k - x_{k-1}
    State:      count -- int32 scalar.  grad_sum_sq, s -- like the params, start at 0.
                x0 -- a copy of the params at init.   Memory: +3x params.
    Args:       learning_rate -- >= 0, or a schedule of the step count (read at count):
                it is inside the update, so this transform ends a chain.
                momentum -- in [0, 1).  eps -- >= 0, added to the learning rate (as the
                authors' PyTorch code) and to the denominator.
    Note:       Needs the params in ``update``. Optax's ``contrib.scale_by_madgrad``, same
                arguments and state fields; equal to it over 120 steps
                (tests/test_dual_averaging.py).
    Reference:  Defazio & Jelassi, "Adaptivity without Compromise: A Momentumized,
                Adaptive, Dual Averaged Gradient Method for Stochastic Optimization", 2021.
    """
    _checks.check_learning_rate(learning_rate)
    _checks.check_unit_interval("momentum", momentum)
    _checks.check_non_negative("eps", eps)
    schedule = learning_rate if callable(learning_rate) else None

    def init(params):
        return MadgradState(
            count=jnp.zeros([], jnp.int32),
            grad_sum_sq=accumulator_zeros(params),
            s=accumulator_zeros(params),
            x0=jax.tree.map(lambda p: jnp.array(p, copy=True), params),
        )

    def update(updates, state, params=None, **extra):
        if params is None:
            _checks.refuse_missing_params("scale_by_madgrad")
        _checks.check_same_structure("updates", updates, "params", params)
        h = hyperparam_dtype()
        lr = schedule(state.count) if schedule is not None else learning_rate
        lam = (jnp.asarray(lr, h) + jnp.asarray(eps, h)) * jnp.sqrt((state.count + 1).astype(h))

        def step(g, x, big_g, s, x0):
            c = compute_dtype(g.dtype, jnp.result_type(x))
            lam_c, e, m = lam.astype(c), jnp.asarray(eps, c), jnp.asarray(momentum, c)
            g_c = g.astype(c)
            big_g = big_g + (lam_c * g_c * g_c).astype(big_g.dtype)
            s = s + (lam_c * g_c).astype(s.dtype)
            z = x0.astype(c) - s.astype(c) / (jnp.cbrt(big_g.astype(c)) + e)
            x_c = jnp.asarray(x).astype(c)
            x_new = (1 - m) * z + m * x_c
            return (x_new - x_c).astype(g.dtype), big_g, s

        out, big_g, s = tree_map_split(
            step, 3, updates, params, state.grad_sum_sq, state.s, state.x0
        )
        return out, MadgradState(count=increment(state.count), grad_sum_sq=big_g, s=s, x0=state.x0)

    return GradientTransformation(init, update, name="scale_by_madgrad", preprocessing=False)
