"""Polyak-step optimizers: MoMo and MoMo-Adam, momentum methods whose step size is the Polyak
step of a model of the loss, capped by the learning rate (``transforms/polyak.py``). Family:
Polyak steps (``polyak_sgd``, the plain Polyak step, is with the line searches). Keywords and
defaults follow ``optax.contrib``'s ``momo`` and ``momo_adam``. The update needs the
objective's value: ``opt.update(grads, state, params, value=loss)``."""

from __future__ import annotations

from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.transforms.polyak import scale_by_momo, scale_by_momo_adam

__all__ = [
    "momo",
    "momo_adam",
]


@live(static=("adapt_lower_bound",))
def momo(
    learning_rate: LearningRate = 1.0,
    beta: float = 0.9,
    lower_bound: float = 0.0,
    weight_decay: float = 0.0,
    adapt_lower_bound: bool = False,
) -> GradientTransformation:
    """MoMo: SGD with momentum, step min(lr, Polyak step of the model). Memory: 1x params."""
    return chain(
        # momentum of g (+1x params); averages of f and <g, x>, the bound (scalars); the step
        scale_by_momo(learning_rate, beta, lower_bound, weight_decay, adapt_lower_bound),
    )


@live(static=("adapt_lower_bound",))
def momo_adam(
    learning_rate: LearningRate = 1e-2,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    lower_bound: float = 0.0,
    weight_decay: float = 0.0,
    adapt_lower_bound: bool = False,
) -> GradientTransformation:
    """MoMo-Adam: Adam, step min(lr / (1 - b1**t), Polyak step of the model). Memory: 2x params."""
    return chain(
        # Adam's m and v (+2x params); averages of f and <g, x>, the bound (scalars); the step
        scale_by_momo_adam(
            learning_rate, b1, b2, eps, lower_bound, weight_decay, adapt_lower_bound
        ),
    )
