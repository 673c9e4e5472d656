"""RAdam: Adam whose second moment is trusted only once enough gradients back it
(``transforms/rectified.py``; torch's form: ``gradchain.torch.RAdam``). Follows ``optax.radam``."""

from __future__ import annotations

from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.transforms import (
    scale_by_learning_rate,
)
from gradchain.transforms.rectified import scale_by_radam

__all__ = [
    "radam",
]


@live
def radam(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    threshold: float = 5.0,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """RAdam: Adam that takes momentum-SGD steps until its denominator is trustworthy, then
    rectifies it. Memory: 2x params (no warm-up schedule needed)."""
    return chain(
        scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov=nesterov),  # mu, nu (+2x)
        scale_by_learning_rate(learning_rate),
    )
