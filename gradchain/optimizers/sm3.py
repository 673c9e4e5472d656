"""SM3: a second moment kept as one statistic per axis of each array (``transforms/sm3.py``),
so its memory is the sum of the dimensions, not their product. Follows ``optax.sm3``."""

from __future__ import annotations

from gradchain import _checks
from gradchain.base import GradientTransformation, chain
from gradchain.combine.live import live
from gradchain.transforms.scaling import scale
from gradchain.transforms.sm3 import scale_by_sm3

__all__ = [
    "sm3",
]


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
