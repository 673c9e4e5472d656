"""Optimizers that add something to the gradient: SGD with annealed Gaussian noise
(``transforms/additive.py``), and DP-SGD's clipped, noised average of per-example gradients
(``transforms/privacy.py``). Keywords and defaults follow ``optax.noisy_sgd`` and
``optax.contrib.dpsgd``."""

from __future__ import annotations

from typing import Any

from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.transforms.additive import add_noise
from gradchain.transforms.momentum import scale_by_momentum
from gradchain.transforms.privacy import differentially_private_aggregate
from gradchain.transforms.scaling import scale_by_learning_rate

__all__ = [
    "dpsgd",
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


@live(static=("seed",))
def dpsgd(
    learning_rate: LearningRate,
    l2_norm_clip: float,
    noise_multiplier: float,
    seed: int,
    momentum: float | None = None,
    nesterov: bool = False,
) -> GradientTransformation:
    """DP-SGD (Abadi et al., "Deep learning with differential privacy", 2016): each
    example's gradient clipped to norm ``l2_norm_clip``, summed, Gaussian noise of std
    ``l2_norm_clip * noise_multiplier`` added, divided by the batch size; then SGD (with
    heavy-ball ``momentum`` if given). Memory: one key (+1x params with momentum).

    The updates are per-example gradients: every leaf has the batch on axis 0 (``jax.vmap``
    of the gradient). Optax's ``contrib.dpsgd``, draw for draw: ``seed`` is the integer
    seed of the noise's key (Optax passes it as its deprecated ``seed=``, which warns).
    Not for ``MultiSteps`` or ``apply_every``: the noise is calibrated to one batch.
    """
    return chain(
        differentially_private_aggregate(l2_norm_clip, noise_multiplier, seed),  # a key
        *([] if momentum is None else [scale_by_momentum(momentum, nesterov=nesterov)]),
        scale_by_learning_rate(learning_rate),
    )
