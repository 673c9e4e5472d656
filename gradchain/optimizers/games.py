"""Optimizers for min-max games: optimistic gradient steps, which extrapolate from the last
gradient so that simultaneous play converges where plain gradient descent cycles.

Keyword names and defaults follow Optax's optimizer of the same name.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

from gradchain import _checks
from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.transforms.adam import scale_by_adam
from gradchain.transforms.games import scale_by_optimistic_gradient
from gradchain.transforms.scaling import scale_by_learning_rate

__all__ = [
    "optimistic_adam",
    "optimistic_adam_v2",
    "optimistic_gradient_descent",
]


@live
def optimistic_gradient_descent(
    learning_rate: LearningRate, alpha: float = 1.0, beta: float = 1.0
) -> GradientTransformation:
    """Optimistic gradient descent: step along (alpha + beta) g_t - beta g_{t-1}.

    Memory: 1x params (the previous gradient). Optax's ``optimistic_gradient_descent``.
    Reference: Mokhtari, Ozdaglar & Pattathil, AISTATS 2020.
    """
    return chain(
        scale_by_optimistic_gradient(alpha, beta),  # previous gradient (+1x params)
        scale_by_learning_rate(learning_rate),
    )


@live
def optimistic_adam(
    learning_rate: float,
    optimism: float | None = None,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
) -> GradientTransformation:
    """Optimistic Adam: Adam's direction d_t, stepped as lr d_t + optimism (d_t - d_{t-1}).

    Memory: 3x params (Adam's two moments and the previous direction). ``optimism`` defaults
    to the learning rate. Optax's ``optimistic_adam`` (its first version, nesterov Adam by
    default). Deprecated, as in Optax (a DeprecationWarning at construction): use
    ``optimistic_adam_v2(learning_rate, alpha=..., beta=...)``, where this is
    ``optimistic_adam_v2(1.0, alpha=learning_rate, beta=optimism)``. Note: Optax refuses a
    schedule as learning_rate; here the live layer evaluates it each step, and both the step
    and the default optimism follow it.
    Reference: Daskalakis et al., "Training GANs with Optimism", ICLR 2018.
    """
    _checks.check_learning_rate(learning_rate)
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),  # mu, nu (+2x)
        scale_by_optimistic_gradient(  # previous direction (+1x params)
            learning_rate, learning_rate if optimism is None else optimism
        ),
        scale_by_learning_rate(1.0),  # descent: flip the sign
    )


_optimistic_adam_live = optimistic_adam


@functools.wraps(_optimistic_adam_live)
def optimistic_adam(*args: Any, **kwargs: Any) -> GradientTransformation:
    warnings.warn(
        "`optimistic_adam` is deprecated (as in Optax), please use `optimistic_adam_v2` "
        "instead: optimistic_adam_v2(1.0, alpha=learning_rate, beta=optimism)",
        DeprecationWarning,
        stacklevel=2,
    )
    return _optimistic_adam_live(*args, **kwargs)


optimistic_adam.__wrapped__ = _optimistic_adam_live.__wrapped__  # the raw chain, as for @live


@live
def optimistic_adam_v2(
    learning_rate: LearningRate,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    nesterov: bool = True,
) -> GradientTransformation:
    """Optimistic Adam: Adam's direction d_t, stepped as lr ((alpha + beta) d_t - beta d_{t-1}).

    Memory: 3x params (Adam's two moments and the previous direction). Optax's
    ``optimistic_adam_v2``: the same keywords (keyword-only after the learning rate) and
    defaults; the learning rate may be a schedule.
    Reference: Daskalakis et al., "Training GANs with Optimism", ICLR 2018.
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),  # mu, nu (+2x)
        scale_by_optimistic_gradient(alpha, beta),  # previous direction (+1x params)
        scale_by_learning_rate(learning_rate),
    )
