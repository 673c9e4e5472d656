"""Named optimizers from Optax's catalogue that belong to no family above: SM3 (a cover-set
second moment) and noisy SGD.

Keyword names and defaults follow Optax's optimizer of the same name.
"""

from __future__ import annotations

from typing import Any

from gradchain import _checks
from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.transforms.additive import add_noise
from gradchain.transforms.scaling import scale, scale_by_learning_rate
from gradchain.transforms.sm3 import scale_by_sm3

__all__ = ["noisy_sgd", "sm3"]


@live
def sm3(learning_rate: float, momentum: float = 0.9) -> GradientTransformation:
    """SM3: AdaGrad with one accumulator per row and per column (per axis) of each leaf.

    Memory: 1x params (momentum) plus the sum of each leaf's dimensions.
    Optax's ``sm3``, same keywords and defaults.
    """
    _checks.check_non_negative("learning_rate", learning_rate)
    return chain(
        scale_by_sm3(momentum),  # cover-set accumulators (+sum of dims), momentum (+1x)
        scale(-learning_rate),
    )


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
