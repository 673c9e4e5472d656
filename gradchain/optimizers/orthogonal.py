"""Muon: momentum orthogonalised by Newton-Schulz iterations for matrices, AdamW for the rest
(``transforms/orthogonal.py``). Keywords and defaults follow ``optax.contrib.muon``."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine import partition
from gradchain.combine.live import live
from gradchain.transforms import (
    add_decayed_weights,
    bias_correct,
    scale_by_learning_rate,
    scale_by_momentum,
)
from gradchain.transforms.orthogonal import NS_COEFFS, scale_by_newton_schulz, scale_by_shape

__all__ = [
    "muon",
]


def _muon_labels(params: Any) -> Any:
    return jax.tree.map(lambda p: "muon" if jnp.ndim(p) == 2 else "adam", params)


@live(static=("ns_coeffs", "ns_steps", "weight_decay_mask"))
def muon(
    learning_rate: LearningRate,
    ns_coeffs: Any = NS_COEFFS,
    ns_steps: int = 5,
    beta: float = 0.95,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    weight_decay_mask: Any = None,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
    adam_eps_root: float = 0.0,
    adam_weight_decay: float = 0.0,
    adam_learning_rate: LearningRate | None = None,
    consistent_rms: float | None = None,
) -> GradientTransformation:
    """Muon: momentum orthogonalized by Newton–Schulz for matrices, AdamW for the rest.

    Update (2-D leaves):
                mu <- beta * mu + (1 - beta) * g ;  m = Nesterov-corrected, bias-corrected mu
                u = newton_schulz(m) * sqrt(max(1, fan_out / fan_in))   (fan_in, fan_out = shape)
                u = u + weight_decay * p ;  p <- p - lr * u
    Other leaves: AdamW (``nesterov`` as for the matrices) with the ``adam_*`` settings.
    State:      per group (``gradchain.partition``): the matrices' mu (1x) and a count; the
                other leaves' Adam mu and nu (2x of their -- usually small -- size).
                Memory: ~1x params.
    Note:       Optax's ``optax.contrib.muon`` defaults and math (frobenius preconditioning,
                2-D leaves only). Not here: ``adaptive``, other preconditionings,
                ``muon_weight_dimension_numbers`` (reshape >2-D leaves yourself).
                ``weight_decay_mask`` applies to the matrices' decay, as in Optax: it sees the
                params with the other leaves hidden (``gradchain.MaskedNode``).
    Reference:  Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024;
                Liu et al., "Muon is Scalable for LLM Training", 2025 (``consistent_rms``).
    """
    from gradchain.optimizers.textbook import adamw  # the ladder's AdamW, its raw chain

    matrices = chain(
        scale_by_momentum(beta, ema=True, mu_dtype=mu_dtype),  # momentum      (+1x params)
        bias_correct(beta, nesterov=nesterov),  # Nesterov look-ahead, unbiased
        scale_by_newton_schulz(ns_coeffs, ns_steps, eps),  # orthogonalize
        scale_by_shape(consistent_rms),  # width scale
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_learning_rate(learning_rate),
    )
    others = adamw(
        learning_rate if adam_learning_rate is None else adam_learning_rate,
        adam_b1,
        adam_b2,
        eps,
        adam_eps_root,
        mu_dtype,
        adam_weight_decay,
        nesterov=nesterov,
    )
    return partition({"muon": matrices, "adam": others}, _muon_labels)
