"""Muon: momentum orthogonalised by Newton-Schulz iterations for matrices, AdamW for the rest
(``transforms/orthogonal.py``). Family: orthogonal updates. Keywords and defaults follow
``optax.contrib.muon``."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine import partition
from gradchain.combine.live import live
from gradchain.transforms import (
    add_decayed_weights,
    scale_by_learning_rate,
)
from gradchain.transforms.orthogonal import (
    NS_COEFFS,
    MuonDimensionNumbers,
    scale_by_muon,
    scale_by_shape,
)

__all__ = [
    "muon",
]


def _muon_labels(params: Any) -> Any:
    return jax.tree.map(lambda p: "muon" if jnp.ndim(p) == 2 else "adam", params)


def _is_spec(x: Any) -> bool:
    return x is None or isinstance(x, MuonDimensionNumbers)


def _labels_from_dims(dims: Any) -> Any:
    """The parameter groups a tree of ``MuonDimensionNumbers`` (or a function of the params
    giving one) says: "muon" where a leaf has dimension numbers, "adam" where None."""

    def labels(params):
        given = callable(dims) and not isinstance(dims, MuonDimensionNumbers)
        tree = dims(params) if given else dims
        if _is_spec(tree):
            return jax.tree.map(lambda p: "adam" if tree is None else "muon", params)
        return jax.tree.map(
            lambda d, sub: jax.tree.map(lambda p: "adam" if d is None else "muon", sub),
            tree,
            params,
            is_leaf=_is_spec,
        )

    return labels


@live(
    static=(
        "ns_coeffs",
        "ns_steps",
        "weight_decay_mask",
        "preconditioning",
        "muon_weight_dimension_numbers",
    )
)
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
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
    adam_eps_root: float = 0.0,
    adam_weight_decay: float = 0.0,
    adam_learning_rate: LearningRate | None = None,
    muon_weight_dimension_numbers: Any = None,
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
    Args:       Optax's. ``ns_coeffs`` may name a preset ("standard", "dion").
                ``adaptive`` scales each orthogonalized step by <m, O> (the dual norm);
                ``preconditioning`` is how the iteration starts (see ``newton_schulz``).
                ``muon_weight_dimension_numbers`` -- a tree of ``MuonDimensionNumbers`` (a
                prefix of the params), or a function of the params giving one: the leaves
                with dimension numbers get Muon (a batch of matrices when they have more
                axes), those with None AdamW. None: 2-D leaves Muon, the rest AdamW.
    Note:       Optax's ``optax.contrib.muon`` defaults and math. ``weight_decay_mask`` applies to the matrices' decay, as in Optax: it sees the
                params with the other leaves hidden (``gradchain.MaskedNode``).
    Reference:  Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024;
                Liu et al., "Muon is Scalable for LLM Training", 2025 (``consistent_rms``).
    """
    from gradchain.optimizers.textbook import adamw  # the ladder's AdamW, its raw chain

    dims = muon_weight_dimension_numbers
    matrices = chain(
        scale_by_muon(  # momentum (+1x params), Nesterov, orthogonalized
            ns_coeffs,
            ns_steps,
            beta,
            eps,
            mu_dtype,
            nesterov=nesterov,
            adaptive=adaptive,
            preconditioning=preconditioning,
            weight_dimension_numbers=dims,
        ),
        scale_by_shape(consistent_rms, weight_dimension_numbers=dims),  # width scale
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
    labels = _muon_labels if dims is None else _labels_from_dims(dims)
    return partition({"muon": matrices, "adam": others}, labels)
