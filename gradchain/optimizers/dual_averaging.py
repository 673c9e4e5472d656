"""Dual averaging: MADGRAD, a sum of scaled gradients over a cube-root denominator
(``transforms/dual_averaging.py``). Keywords and defaults follow ``optax.contrib.madgrad``."""

from __future__ import annotations

from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.transforms.dual_averaging import scale_by_madgrad
from gradchain.transforms.scaling import add_decayed_weights

__all__ = [
    "madgrad",
]


@live
def madgrad(
    learning_rate: LearningRate,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    eps: float = 1e-6,
) -> GradientTransformation:
    """MADGRAD: momentumized dual averaging with a cube-root AdaGrad denominator.

    Memory: 3x params (sums of gradients and of their squares, the initial params).
    ``weight_decay`` is L2 (added to the gradient). Optax's ``contrib.madgrad``, same
    keywords and defaults. Reference: Defazio & Jelassi, 2021.
    """
    return chain(
        add_decayed_weights(weight_decay),  # L2, into the gradient
        scale_by_madgrad(learning_rate, momentum, eps),  # sums and x0 (+3x params)
    )
