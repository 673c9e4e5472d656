"""GaLore: Adam (or another base optimizer) on a low-rank projection of each matrix gradient
(``transforms/low_rank.py``), decoupled weight decay in the full space. Family: low-rank.
Keywords and defaults follow ``optax.contrib.galore``."""

from __future__ import annotations

from typing import Any

from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.transforms import add_decayed_weights, scale_by_learning_rate
from gradchain.transforms.low_rank import scale_by_galore

__all__ = [
    "galore",
]


@live(static=("rank", "update_proj_gap", "base_optimizer", "weight_dimension_numbers"))
def galore(
    learning_rate: LearningRate,
    rank: int = 128,
    update_proj_gap: int = 200,
    scale: float = 1.0,
    base_optimizer: GradientTransformation | None = None,
    weight_decay: float = 0.0,
    mask: Any = None,
    weight_dimension_numbers: Any = None,
) -> GradientTransformation:
    """GaLore: the base optimizer's moments kept for a rank-r projection of each matrix.

    Update:     per matrix G (m x n): every ``update_proj_gap`` steps P <- G's top ``rank``
                singular vectors on its short side; N = base_optimizer(P^H G) (or of G P);
                u = scale * P N (or scale * N P^H); other leaves: u = base_optimizer(g).
                u = u + weight_decay * p ;  p <- p - lr * u
    State:      ``GaloreLiveState``: the live hyperparameters (learning_rate, scale,
                weight_decay), and in ``inner[0]`` a ``GaLoreState``: count, projector (P per
                matrix), base_optimizer_state (by default Adam's mu and nu, r x n or m x r).
                Memory: (max(m, n) + 2 min(m, n)) r per m x n matrix (P, and Adam's mu and
                nu in the subspace) instead of 2 m n; 2x for the other leaves.
    Args:       Optax's. ``base_optimizer`` -- a transform of gradients alone
                (``scale_by_adam()`` when None); give weight decay here, not in it.
                ``mask`` -- which leaves are decayed (bools shaped like the params, or a
                function of them). ``weight_dimension_numbers`` -- which leaves are matrices,
                and how: see ``scale_by_galore``.
    Note:       Optax's ``contrib.galore`` defaults and math. Optax's state is the bare
                chain, ``state[0]`` its ``GaLoreState``; here that chain is ``state.inner``.
    Reference:  Zhao et al., "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank
                Projection", ICML 2024 (arXiv:2403.03507).

    >>> import jax.numpy as jnp, gradchain
    >>> opt = gradchain.galore(learning_rate=0.01, rank=16)
    >>> state = opt.init({"w": jnp.zeros((256, 512)), "b": jnp.zeros(512)})
    >>> state.inner[0].projector["w"].shape, state.inner[0].projector["b"]
    ((512, 16), None)
    """
    return chain(
        scale_by_galore(  # P (max(m, n) x r) and the base state in r dims (Adam: 2 min(m, n) r)
            rank, update_proj_gap, scale, base_optimizer, weight_dimension_numbers
        ),
        add_decayed_weights(weight_decay, mask),  # decoupled: in the full space
        scale_by_learning_rate(learning_rate),
    )
