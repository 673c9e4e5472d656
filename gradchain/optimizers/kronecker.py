"""Optimizers that spend d x d memory per matrix axis to save steps: SOAP and Shampoo.

Each matrix (and every leaf with two or more axes) keeps one Kronecker factor per axis and a
matrix built from it (eigenvectors for SOAP, inverse roots for Shampoo); vectors and scalars
go to AdamW, as Muon's do. Defaults follow pytorch-optimizer's ``SOAP`` and ``Shampoo`` where
sensible (each docstring says where not). See ``gradchain.transforms.kronecker`` for the
block layout and docs/memory_spending_kronecker.md for the equations and measured numbers.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine import partition
from gradchain.combine.graft import graft as graft_norm
from gradchain.combine.live import live
from gradchain.optimizers.textbook import adamw
from gradchain.transforms import (
    add_decayed_weights,
    scale_by_learning_rate,
    scale_by_momentum,
    scale_by_rms,
    scale_by_rss,
)
from gradchain.transforms.kronecker import scale_by_shampoo, scale_by_soap

__all__ = [
    "shampoo",
    "soap",
]


def _kronecker_labels(params: Any) -> Any:
    return jax.tree.map(lambda p: "kronecker" if jnp.ndim(p) >= 2 else "adam", params)


@live(static=("precondition_frequency", "block_size"))
def soap(
    learning_rate: LearningRate,
    b1: float = 0.95,
    b2: float = 0.95,
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    precondition_frequency: int = 10,
    block_size: int = 1024,
    shampoo_beta: float | None = None,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    """SOAP: AdamW in the eigenbasis of Shampoo's factors, refreshed every few steps.

    Update (leaves with >= 2 axes; see ``scale_by_soap``):
                G' = Q_L^T G Q_R ;  Adam's moments (mu of G, nu of G'**2) ;
                u = Q_L [ mu_hat' / (sqrt(nu_hat) + eps) ] Q_R^T ;  u += wd * p ;  p -= lr * u
                L, R = EMA of G G^T, G^T G ;  Q_L, Q_R = their eigenvectors, refreshed every
                ``precondition_frequency`` steps by one power step and QR. The first step
                only builds L, R and Q (no update).
    Other leaves: AdamW(b1, b2, eps, weight_decay), from the first step.
    Memory:     2x params (mu, nu) + four d x d matrices per matrix (L, R, Q_L, Q_R),
                block-diagonal above ``block_size``: 6x for a square matrix under block_size;
                measured 6.92x for a (64, 32) matrix with a (32,) bias
                (a 64 x 64 and a 32 x 32 factor each, twice).
    Note:       pytorch-optimizer's ``SOAP`` defaults (lr 3e-3 there): b1 = b2 = 0.95,
                eps 1e-8, weight_decay 1e-2, precondition_frequency 10; block_size is ours
                (it has max_precondition_dim 10000 instead: an identity above it). Its
                decoupled decay multiplies p by 1 - lr*wd after the step (ours adds wd*p to
                the update: they differ by lr**2*wd per step), its 1-d leaves skip the first
                step too, and its eps sits in the step size -- measured differences in
                tests/test_kronecker.py.
    Reference:  Vyas et al., "SOAP: Improving and Stabilizing Shampoo using Adam", 2024.
    """
    matrices = chain(
        scale_by_soap(  # mu, nu (+2x params); L, R and their eigenvectors (+4 d x d)
            b1, b2, eps, shampoo_beta, precondition_frequency, block_size, mu_dtype=mu_dtype
        ),
        add_decayed_weights(weight_decay),  # decoupled: after the preconditioner
        scale_by_learning_rate(learning_rate),
    )
    others = adamw(  # mu, nu (+2x the vectors)
        learning_rate, b1, b2, eps, 0.0, mu_dtype, weight_decay
    )
    return partition({"kronecker": matrices, "adam": others}, _kronecker_labels)


GRAFTS = ("adagrad", "adam", None)


@live(static=("precondition_frequency", "block_size", "graft"))
def shampoo(
    learning_rate: LearningRate,
    momentum: float | None = None,
    b2: float = 1.0,
    matrix_eps: float = 1e-6,
    weight_decay: float = 0.0,
    precondition_frequency: int = 10,
    block_size: int = 1024,
    graft: str | None = "adagrad",
    graft_eps: float = 1e-8,
    *,
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
) -> GradientTransformation:
    """Shampoo: L^(-1/4) G R^(-1/4), with the per-layer norm of an AdaGrad or Adam step.

    Update (leaves with >= 2 axes; see ``scale_by_shampoo``):
                L = b2 L + G G^T ;  R = b2 R + G^T G     (b2 = 1: sums, as Gupta et al.)
                D = (L + eps I)^(-1/4) G (R + eps I)^(-1/4)   roots refreshed every
                ``precondition_frequency`` steps, the first included
                graft "adagrad": A = G / (sqrt(sum of G**2) + graft_eps);
                      "adam":    A = G / (sqrt(nu_hat) + graft_eps), nu an EMA with adam_b2;
                u = D * ||A||_F / ||D||_F  (graft None: u = D) ;  momentum: mu = m mu + u, u = mu
                u += weight_decay * p ;  p -= lr * u
    Other leaves: AdamW(adam_b1, adam_b2, graft_eps, weight_decay).
    Memory:     four d x d matrices per matrix (L, R and their roots; block-diagonal above
                ``block_size``) + 1x params for the graft's statistic (+1x with momentum).
    Note:       pytorch-optimizer's ``Shampoo`` is this with ``graft=None``, sums (b2 = 1),
                matrix_eps 1e-6, lr 1e-3, momentum 0 and a root every step
                (``preconditioning_compute_steps=1``); its default frequency is 1, ours 10
                (eigh per block is the cost; SOAP's frequency). It has no grafting and no
                blocks: those are Anil et al.'s.
    Reference:  Gupta, Koren & Singer, 2018; Anil et al., "Scalable Second Order Optimization
                for Deep Learning", 2020.
    """
    _checks.check_choice("graft", graft, GRAFTS)
    direction = scale_by_shampoo(  # L, R and their inverse roots (+4 d x d)
        b2, matrix_eps, precondition_frequency, block_size
    )
    if graft == "adagrad":
        magnitude = scale_by_rss(0.0, graft_eps, eps_root=0.0)  # sum of g**2 (+1x params)
    elif graft == "adam":
        magnitude = scale_by_rms(  # moving average of g**2 (+1x params)
            adam_b2, graft_eps, eps_in_sqrt=False, bias_correction=True
        )
    parts = [direction if graft is None else graft_norm(magnitude, direction)]
    if momentum is not None:
        parts.append(scale_by_momentum(momentum))  # velocity (+1x params)
    matrices = chain(
        *parts,
        add_decayed_weights(weight_decay),  # decoupled: after the preconditioner
        scale_by_learning_rate(learning_rate),
    )
    others = adamw(  # mu, nu (+2x the vectors)
        learning_rate, adam_b1, adam_b2, graft_eps, 0.0, None, weight_decay
    )
    return partition({"kronecker": matrices, "adam": others}, _kronecker_labels)
