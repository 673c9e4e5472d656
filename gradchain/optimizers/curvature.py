"""Optimizers that estimate curvature: Sophia, momentum over a clipped Hessian-diagonal
estimate (``transforms/curvature.py``). Keywords and defaults follow ``optax.contrib.sophia``."""

from __future__ import annotations

from typing import Any

from gradchain import _checks
from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.transforms.curvature import hutchinson_estimator_diag_hessian, scale_by_sophia
from gradchain.transforms.scaling import add_decayed_weights, scale_by_learning_rate

__all__ = [
    "sophia",
]


@live(static=("weight_decay_mask",))
def sophia(
    learning_rate: LearningRate,
    b1: float = 0.965,
    b2: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 1e-4,
    weight_decay_mask: Any = None,
    gamma: float = 0.01,
    clip_threshold: float | None = 1.0,
    update_interval: int = 10,
    hessian_diagonal_fn: Any = None,
    mu_dtype: Any = None,
    verbose: bool = False,
    print_win_rate_every_n_steps: int = 0,
) -> GradientTransformation:
    """Sophia: bias-corrected momentum divided by a Hessian-diagonal estimate, clipped.

    Memory: 2x params (momentum, Hessian diagonal). Its update needs the objective for the
    default (Hutchinson) estimator: ``update(grads, state, params, obj_fn=lambda p:
    loss(p, batch))``; any extra argument reaches ``hessian_diagonal_fn``. Decoupled
    ``weight_decay`` (``weight_decay_mask``: Optax's mask). Optax's ``contrib.sophia``,
    same keywords, defaults and draws; one difference on purpose: an infinite ratio is not
    clipped, so an infinite gradient entry shows in its update (Optax's clip hides it).
    Reference: Liu et al., ICLR 2024.
    """
    _checks.check_learning_rate(learning_rate)
    if hessian_diagonal_fn is None:  # Optax's default: Hutchinson's estimator, PRNGKey(0)
        hessian_diagonal_fn = hutchinson_estimator_diag_hessian()
    return chain(
        scale_by_sophia(  # mu, nu (+2x params)
            b1,
            b2,
            eps,
            gamma,
            clip_threshold,
            update_interval,
            hessian_diagonal_fn,
            mu_dtype,
            verbose,
            print_win_rate_every_n_steps,
        ),
        add_decayed_weights(weight_decay, mask=weight_decay_mask),  # decoupled
        scale_by_learning_rate(learning_rate),
    )
