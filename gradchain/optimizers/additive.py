"""Optimizers that add something to the gradient: SGD with annealed Gaussian noise
(``transforms/additive.py``). Keywords and defaults follow ``optax.noisy_sgd``."""

from __future__ import annotations

from typing import Any

from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.transforms.additive import add_noise
from gradchain.transforms.scaling import scale_by_learning_rate

__all__ = [
    "noisy_sgd",
]


@live(static=("key", "seed"))
def noisy_sgd(
    learning_rate: LearningRate,
    eta: float = 0.01,
    gamma: float = 0.55,
    key: Any = None,
    *,
    seed: int | None = None,
) -> GradientTransformation:
    """SGD with annealed Gaussian gradient noise, variance eta / t**gamma. Memory: 0x params.

    ``key`` -- a jax.random key or an integer seed (None: 0). Optax's ``noisy_sgd``, the
    same draws for the same key.
    """
    return chain(
        add_noise(eta, gamma, key, seed=seed),  # count and key (two scalars)
        scale_by_learning_rate(learning_rate),
    )
