"""AdaDelta: a step that carries its own units, the ratio of two running RMS
(``transforms/adadelta.py``). Keywords and defaults follow ``optax.adadelta``."""

from __future__ import annotations

from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.transforms import (
    add_decayed_weights,
    scale_by_learning_rate,
)
from gradchain.transforms.adadelta import scale_by_adadelta

__all__ = [
    "adadelta",
]


@live
def adadelta(
    learning_rate: LearningRate = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """AdaDelta: steps in the parameters' own units, from two moving averages. Memory: 2x.

    Note: Optax's default ``learning_rate=None`` skips the learning-rate transform, which
    leaves the sign unflipped (an ascent step); the default here is 1.0, torch.optim's, with
    descent. ``weight_decay`` is L2 (added to the gradient), as in Optax and torch.
    """
    return chain(
        add_decayed_weights(weight_decay),  # L2 into the gradient
        scale_by_adadelta(rho, eps),  # E[g**2] and E[dx**2]           (+2x params)
        scale_by_learning_rate(learning_rate),
    )
