"""Optimizers that step by the gradient's sign: signSGD, Signum (the sign of a momentum) and
Rprop (a per-coordinate step that grows while the sign holds). Lion is in the textbook ladder.
Transforms: ``transforms/sign.py``."""

from __future__ import annotations

from typing import Any

from gradchain._checks import GradchainError
from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.transforms import (
    scale,
    scale_by_learning_rate,
    scale_by_momentum,
    scale_by_sign,
)
from gradchain.transforms.sign import scale_by_rprop

__all__ = [
    "rprop",
    "sign_sgd",
    "signum",
]


@live
def sign_sgd(learning_rate: LearningRate) -> GradientTransformation:
    """signSGD: step every coordinate by exactly lr, against the gradient's sign.

    Update:     p <- p - lr * sign(g)
    State:      none per parameter.   Memory: 0x params.
    Reference:  Bernstein et al., "signSGD: Compressed Optimisation for Non-Convex Problems",
                2018.

    >>> import jax.numpy as jnp, gradchain
    >>> opt = gradchain.sign_sgd(0.1)
    >>> updates, _ = opt.update(jnp.array([3.0, -0.5, 0.0]), opt.init(jnp.zeros(3)))
    >>> updates.tolist()
    [-0.10000000149011612, 0.10000000149011612, -0.0]
    """
    return chain(
        scale_by_sign(),  # only the direction of each coordinate
        scale_by_learning_rate(learning_rate),
    )


@live
def signum(
    learning_rate: LearningRate,
    beta: float = 0.9,
    mu_dtype: Any = None,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Signum: the sign of a moving average of gradients.

    Update:     mu <- beta * mu + (1 - beta) * g ;  p <- p - lr * sign(mu)
    State:      mu -- like params.   Memory: 1x params.
    Note:       no bias correction: it would not change the sign. Optax: ``signum``;
                its ``accumulator_dtype`` is accepted, and is ``mu_dtype`` (give one).
    Reference:  Bernstein et al., 2018 (Signum).
    """
    if accumulator_dtype is not None and mu_dtype is not None:
        raise GradchainError("signum: give mu_dtype or accumulator_dtype, not both")
    mu_dtype = accumulator_dtype if mu_dtype is None else mu_dtype
    return chain(
        scale_by_momentum(beta, ema=True, mu_dtype=mu_dtype),  # momentum      (+1x params)
        scale_by_sign(),
        scale_by_learning_rate(learning_rate),
    )


@live(static=("learning_rate",))  # the initial step size: read once, at init
def rprop(
    learning_rate: float,
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    min_step_size: float = 1e-6,
    max_step_size: float = 50.0,
) -> GradientTransformation:
    """Rprop: per-coordinate step sizes from sign agreement; full-batch only.
    Memory: 1x params + 1 byte per element (the previous step's sign, int8).

    ``learning_rate`` is the initial step size. For torch.optim.Rprop see
    ``scale_by_rprop(clip_every_step=True)``.

    Note: each step moves by the step just computed, as in the paper and torch.optim.Rprop.
    Optax 0.2.8's ``rprop`` emits the *previous* step's update instead, and zeroes it also
    where the sign flips at the current step: its step sizes equal ours exactly, but its
    params are not ours one step late. Measured on the test problem of
    tests/test_sign.py (lr 0.01, float64): the params are 0.01 apart after 1 step
    (Optax's first update is 0), 0.052 after 10 and 0.144 after 50 and after 200.
    """
    return chain(
        scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size),  # +1x
        scale(-1.0),  # descend
    )
