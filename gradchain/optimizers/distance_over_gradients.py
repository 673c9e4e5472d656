"""Distance-over-gradients optimizers: DoG and DoWG, SGD whose step size is the distance
travelled from the start over the gradients seen (``transforms/distance_over_gradients.py``).
Family: distance over gradients (parameter-free). Keywords and defaults follow
``optax.contrib``'s ``dog`` and ``dowg``: leave the learning rate at 1.0 (a multiplier)."""

from __future__ import annotations

from typing import Any

from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.transforms.distance_over_gradients import scale_by_dog, scale_by_dowg
from gradchain.transforms.scaling import add_decayed_weights, scale_by_learning_rate

__all__ = [
    "dog",
    "dowg",
]


@live(static=("init_step",))
def dog(
    learning_rate: LearningRate = 1.0,
    init_step: tuple[str, float] = ("heuristic", 1e-6),
    eps: float = 1e-8,
    weight_decay: float | None = None,
    mask: Any = None,
) -> GradientTransformation:
    """DoG: SGD with step max_t ||x_t - x_0|| / sqrt(sum_t ||g_t||**2 + eps). Memory: 1x params.

    ``init_step`` -- ("heuristic", a) starts the distance at a (1 + ||x_0||) (init needs the
    real params), ("distance", r) at r, ("learning_rate", lr) takes a first step lr * g.
    ``weight_decay`` (L2, added to the gradient) with its ``mask``. Optax's ``contrib.dog``.
    """
    return chain(
        *([add_decayed_weights(weight_decay, mask)] if weight_decay is not None else []),  # L2
        scale_by_dog(init_step, eps),  # starting params (+1x params), distance, sum of |g|^2
        scale_by_learning_rate(learning_rate),
    )


@live
def dowg(
    learning_rate: LearningRate = 1.0,
    init_estim_sq_dist: float | None = None,
    eps: float = 1e-4,
    weight_decay: float | None = None,
    mask: Any = None,
) -> GradientTransformation:
    """DoWG: SGD with step r2_t / sqrt(sum_t r2_t ||g_t||**2), r2_t the largest squared
    distance from the start. Memory: 1x params. Optax's ``contrib.dowg``."""
    return chain(
        *([add_decayed_weights(weight_decay, mask)] if weight_decay is not None else []),  # L2
        scale_by_dowg(init_estim_sq_dist, eps),  # starting params (+1x params), two scalars
        scale_by_learning_rate(learning_rate),
    )
