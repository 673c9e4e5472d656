"""Optimizers whose step is set per leaf (per layer) by a norm: NovoGrad, Fromage, LAMB, LARS.

Keyword names and defaults follow Optax's optimizer of the same name.
"""

from __future__ import annotations

from typing import Any

from gradchain import _checks
from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.transforms import (
    add_decayed_weights,
    scale_by_learning_rate,
    scale_by_momentum,
)
from gradchain.transforms.adam import scale_by_adam
from gradchain.transforms.additive import add_scaled_params
from gradchain.transforms.layerwise import scale_by_novograd, scale_by_trust_ratio

__all__ = [
    "fromage",
    "lamb",
    "lars",
    "novograd",
]


@live
def novograd(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.25,
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """NovoGrad: a per-leaf normalised gradient plus decay, with heavy-ball momentum.

    Memory: 1x params (the momentum) and one scalar per leaf (its ||g||**2 average).
    Optax's ``novograd``, same keywords and defaults.
    """
    return chain(
        scale_by_novograd(b1, b2, eps, eps_root, weight_decay),  # mu (+1x), ||g||**2 per leaf
        scale_by_learning_rate(learning_rate),
    )


@live
def fromage(learning_rate: LearningRate, min_norm: float = 1e-6) -> GradientTransformation:
    """Fromage: a step of relative size lr per leaf, then a shrink by 1 / sqrt(1 + lr**2).

    p_{t+1} = (p_t - lr * ||p_t|| / ||g_t|| * g_t) / sqrt(1 + lr**2), per leaf. Memory: 0x.
    Optax's ``fromage``, same keywords and defaults.
    Reference: Bernstein et al., "On the distance between two neural networks and the
    stability of learning", NeurIPS 2020.
    """
    _checks.check_learning_rate(learning_rate)
    if callable(learning_rate):  # a schedule (given to the raw factory): the same, per step
        def shrink(count):
            return 1 / (1 + learning_rate(count) ** 2) ** 0.5

        step, pull = (lambda c: learning_rate(c) * shrink(c)), (lambda c: shrink(c) - 1)
    else:
        mult = 1 / (1 + learning_rate**2) ** 0.5
        step, pull = learning_rate * mult, mult - 1
    return chain(
        scale_by_trust_ratio(min_norm),  # g * ||p|| / ||g||, per leaf
        scale_by_learning_rate(step),
        add_scaled_params(pull),  # shrink the params back toward the sphere
    )


@live
def lamb(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
    mask: Any = None,
    *,
    axis_name: Any = None,
) -> GradientTransformation:
    """LAMB: AdamW's direction, rescaled per leaf to the leaf's norm. Memory: 2x params.

    The trust ratio adds no memory; it lets very large batches use one learning rate for
    every layer. ``axis_name``: see ``scale_by_trust_ratio`` (for ``shard_map``). ``mask``
    (Optax's keyword) decays only the leaves it marks True.
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root),  # Adam's direction: mu, nu (+2x params)
        add_decayed_weights(weight_decay, mask),  # decoupled decay, inside the ratio
        scale_by_trust_ratio(axis_name=axis_name),  # per leaf: ||p|| / ||u||  (+0)
        scale_by_learning_rate(learning_rate),
    )


@live
def lars(
    learning_rate: LearningRate,
    weight_decay: float = 0.0,
    trust_coefficient: float = 0.001,
    eps: float = 0.0,
    momentum: float = 0.9,
    nesterov: bool = False,
    *,
    axis_name: Any = None,
) -> GradientTransformation:
    """LARS: SGD with momentum whose step is rescaled per leaf. Memory: 1x params.

    Note: Optax's form -- L2 decay first, then the trust ratio, the learning rate, and the
    momentum of the scaled steps (last). Optax's ``weight_decay_mask`` and
    ``trust_ratio_mask`` (exclude biases and norms) are not offered here; wrap the
    transforms in a mask instead.
    """
    return chain(
        add_decayed_weights(weight_decay),  # L2 into the gradient
        scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps, axis_name=axis_name),
        scale_by_learning_rate(learning_rate),
        scale_by_momentum(momentum, nesterov=nesterov),  # velocity of the steps (+1x params)
    )
