"""Differentially private optimizers: DP-SGD, SGD on clipped, noised per-example gradients
(``transforms/privacy.py``). Family: privacy. Keywords and defaults follow
``optax.contrib.dpsgd``."""

from __future__ import annotations

from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.transforms.momentum import scale_by_momentum
from gradchain.transforms.privacy import differentially_private_aggregate
from gradchain.transforms.scaling import scale_by_learning_rate

__all__ = [
    "dpsgd",
]


@live(static=("seed",))
def dpsgd(
    learning_rate: LearningRate,
    l2_norm_clip: float,
    noise_multiplier: float,
    seed: int,
    momentum: float | None = None,
    nesterov: bool = False,
) -> GradientTransformation:
    """DP-SGD: per-example clipping to ``l2_norm_clip``, Gaussian noise, then (momentum) SGD.

    The update takes per-example gradients (batch on axis 0 of every leaf). Memory: 0x params
    (a key), +1x with ``momentum``. Optax's ``contrib.dpsgd``, draw for draw.
    """
    return chain(
        differentially_private_aggregate(l2_norm_clip, noise_multiplier, seed),  # a key
        *([scale_by_momentum(momentum, nesterov=nesterov)] if momentum is not None else []),  # +1x
        scale_by_learning_rate(learning_rate),
    )
