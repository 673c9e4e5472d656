"""torch.optim.Muon as a gradchain chain: torch's momentum, its Newton–Schulz (eps clamped,
bfloat16 by default), its shape factor for (out, in) weights, weight_decay 0.1.

torch's Muon takes 2-D params only and refuses the rest at construction; here a leaf that is
not a matrix is refused at ``init`` with its path. Route the others to ``AdamW`` with
``gradchain.partition``, as torch's own example routes them to a second optimizer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import EmptyState, GradientTransformation, chain
from gradchain.torch.optimizers import LearningRate, _check_implementation_args, _ported
from gradchain.transforms import (
    LearningRateState,
    MomentumState,
    add_decayed_weights,
    scale_by_learning_rate,
    scale_by_momentum,
)
from gradchain.transforms.moment_math import compute_dtype

__all__ = ["Muon", "scale_by_torch_muon_lr", "scale_by_torch_newton_schulz", "scale_by_torch_shape"]

_TORCH_NS = (3.4445, -4.7750, 2.0315)


def _refuse_non_matrices(tree: Any, who: str) -> None:
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if jnp.ndim(leaf) != 2:
            raise _checks.GradchainError(
                f"{who} takes 2-D params only (as torch.optim.Muon), got shape "
                f"{jnp.shape(leaf)} at {_checks.path_str(path)}: give the other leaves to "
                "AdamW with gradchain.partition"
            )


def scale_by_torch_newton_schulz(
    ns_coefficients: Sequence[float] = _TORCH_NS,
    ns_steps: int = 5,
    eps: float = 1e-7,
    ns_dtype: Any = jnp.bfloat16,
) -> GradientTransformation:
    r"""torch.optim.Muon's ``_zeropower_via_newtonschulz`` on every (matrix) update.

    Update:     X_0 = u / max(||u||_F, eps), on the wide orientation (rows <= columns)
                X_{k+1} = a X + (b A + c A A) X,  A = X X^T   (k < ns_steps)
                emit X (transposed back), cast to u's dtype
    State:      none.   Memory: 0.
    Args:       ns_coefficients -- (a, b, c).  ns_steps -- a Python int, < 100.  eps -- the
                clamp of the norm.  ns_dtype -- the dtype of the iteration: bfloat16, as torch
                (which always casts), or None to iterate in the update's dtype (>= float32).
    Note:       torch clamps the norm (``max(norm, eps)``); ``gradchain.newton_schulz`` adds
                eps to it. Each product accumulates in >= float32 and is rounded once to
                ``ns_dtype``, as torch's ``addmm`` (measured in ``Muon``).
    Reference:  torch.optim.Muon (torch 2.13); Jordan et al., 2024.
    """
    a, b, c = (float(x) for x in ns_coefficients)
    _checks.check_int("ns_steps", ns_steps, minimum=0)
    if ns_steps >= 100:
        raise _checks.GradchainError(f"ns_steps must be < 100 (as torch requires), got {ns_steps}")
    _checks.check_non_negative("eps", eps)

    def orthogonalize(u):
        tall = u.shape[0] > u.shape[1]
        work = jnp.dtype(ns_dtype or compute_dtype(u.dtype))
        acc = compute_dtype(work)  # as torch's kernels: accumulate in >= float32, round once

        def mm(x, y):
            return jnp.matmul(x, y, preferred_element_type=acc)

        x = (u.T if tall else u).astype(work)
        norm = jnp.linalg.norm(x.astype(acc)).astype(work)
        x = (x.astype(acc) / jnp.maximum(norm, jnp.asarray(eps, work)).astype(acc)).astype(work)
        for _ in range(ns_steps):  # torch: two addmm, each rounded once to ``work``
            gram = mm(x, x.T).astype(work)
            poly = (b * gram.astype(acc) + c * mm(gram, gram)).astype(work)
            x = (a * x.astype(acc) + mm(poly, x)).astype(work)
        return (x.T if tall else x).astype(u.dtype)

    def init(params):
        _refuse_non_matrices(params, "Muon")
        return EmptyState()

    def update(updates, state, params=None, **extra):
        _refuse_non_matrices(updates, "Muon")
        return jax.tree.map(orthogonalize, updates), state

    return GradientTransformation(
        init, update, name="scale_by_torch_newton_schulz", preprocessing=False
    )


def _torch_shape_factor(adjust_lr_fn: str | None, shape: Sequence[int]) -> float:
    """torch's ``_adjust_lr`` ratio for an (out, in) = (A, B) weight, a Python float."""
    rows, cols = shape[:2]
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return math.sqrt(max(1.0, rows / cols))


def scale_by_torch_shape(adjust_lr_fn: str | None = None) -> GradientTransformation:
    r"""torch.optim.Muon's learning-rate adjustment for a weight of shape (A, B) = (out, in).

    Update:     u <- sqrt(max(1, A / B)) u               (``adjust_lr_fn`` None or "original")
                u <- 0.2 sqrt(max(A, B)) u               ("match_rms_adamw")
    State:      none.   Memory: 0.
    Note:       torch's weights are (out, in) (``nn.Linear``), so the factor grows with the
                rows; ``gradchain.scale_by_shape`` reads (fan_in, fan_out) = (rows, columns),
                the ``x @ W`` layout, and grows with the columns.
    Reference:  torch.optim.Muon (torch 2.13); Liu et al., 2025 ("match_rms_adamw").
    """
    _checks.check_choice("adjust_lr_fn", adjust_lr_fn, (None, "original", "match_rms_adamw"))

    def factor(shape):
        return _torch_shape_factor(adjust_lr_fn, shape)

    def update(updates, state, params=None, **extra):
        def scale_leaf(u):
            c = compute_dtype(u.dtype)
            return (u.astype(c) * jnp.asarray(factor(u.shape), c)).astype(u.dtype)

        return jax.tree.map(scale_leaf, updates), state

    return GradientTransformation(
        lambda params: EmptyState(), update, name="scale_by_torch_shape", preprocessing=False
    )


def scale_by_torch_muon_lr(
    lr: Any, weight_decay: float, adjust_lr_fn: str | None, lr_dtype: Any
) -> GradientTransformation:
    r"""torch.optim.Muon's last step with an lr kept as a tensor of ``lr_dtype``.

    Update:     a = lr * s(A, B) and c = 1 - lr * weight_decay, each rounded to ``lr_dtype``
                (s as ``scale_by_torch_shape``, itself rounded to it first)
                u <- -(1 - c) p - a u        (torch: p <- c p - a u)
    State:      none.   Memory: 0.
    Note:       ``Muon(lr=torch.tensor(1e-3))`` (float32): torch multiplies the tensor by the
                Python numbers, so both products are float32 however precise the params;
                with a float lr they are float64 and this is ``scale_by_torch_shape``,
                ``add_decayed_weights`` and ``scale_by_learning_rate``. Measured on torch's
                optimizer database's float32 ``lr``, 20 float64 steps: equal (difference 0;
                3.3e-7 relative computing them in float64); 30 steps of three weights,
                without the bfloat16 cast: 1.6e-15 (7.6e-7 to 1.5e-6 in float64).
    """
    _checks.check_non_negative("weight_decay", weight_decay)
    _checks.check_choice("adjust_lr_fn", adjust_lr_fn, (None, "original", "match_rms_adamw"))
    kept = jnp.dtype(lr_dtype)

    def update(updates, state, params=None, **extra):
        if params is None:
            raise _checks.GradchainError("scale_by_torch_muon_lr needs params (weight decay)")

        def leaf(u, p):
            c = compute_dtype(u.dtype)
            rate = jnp.asarray(lr).astype(kept)
            a = rate * jnp.asarray(_torch_shape_factor(adjust_lr_fn, u.shape), kept)
            keep = 1 - rate * jnp.asarray(weight_decay, kept)
            step = -(1 - keep.astype(c)) * p.astype(c) - a.astype(c) * u.astype(c)
            return step.astype(u.dtype)

        return jax.tree.map(leaf, updates, params), state

    return GradientTransformation(
        lambda params: EmptyState(), update, name="scale_by_torch_muon_lr", preprocessing=False
    )


_MUON_KEYS = {MomentumState: {"mu": "momentum_buffer"}, LearningRateState: {"count": "step"}}


@_ported(_MUON_KEYS, ("weight_decay",))
def Muon(
    lr: LearningRate = 1e-3,
    weight_decay: float = 0.1,
    momentum: float = 0.95,
    nesterov: bool = True,
    ns_coefficients: tuple[float, float, float] = _TORCH_NS,
    eps: float = 1e-7,
    ns_steps: int = 5,
    adjust_lr_fn: str | None = None,
    *,
    ns_dtype: Any = jnp.bfloat16,
    lr_dtype: Any = None,
    **implementation: Any,
) -> GradientTransformation:
    r"""torch.optim.Muon: momentum, orthogonalized, scaled by shape; for 2-D params only.

    Update:     B <- B.lerp(g, 1 - momentum) = momentum B + (1 - momentum) g   (no bias correction)
                U = g.lerp(B, momentum) (nesterov) or B ;  O = NS(U) (eps clamp, bfloat16)
                p <- p - lr weight_decay p - lr s(A, B) O,  s = sqrt(max(1, A / B)) for
                (A, B) = (out, in), or 0.2 sqrt(max(A, B)) (``adjust_lr_fn="match_rms_adamw"``)
    State:      mu (momentum_buffer, ``MomentumState``).   Memory: 1x params.
    Args:       torch's, same defaults.  ns_dtype -- gradchain's: the dtype of the
                Newton–Schulz iteration, bfloat16 as torch (which always casts), or None for
                the update's dtype.  lr_dtype -- gradchain's: the dtype torch computes
                lr * s(A, B) and 1 - lr * weight_decay in: None (a Python float lr, in the
                hyperparameter dtype), or set from a torch tensor lr (its dtype: torch keeps
                the tensor), see ``scale_by_torch_muon_lr``.
    Note:       Measured against torch 2.13 over 25 float64 steps on (5, 3), (3, 6), (4, 4)
                weights: with ``ns_dtype=None``, against torch with its bfloat16 cast removed,
                max |diff| 1.6e-15; in bfloat16 (both defaults), 1.5e-7 -- one bfloat16
                rounding apart (each matmul accumulates in float32 and rounds once, as torch's
                ``addmm``). Test bounds 1e-10 and 1e-6.
                Unlike ``gradchain.muon`` (Optax's): no bias correction, the norm clamped not
                shifted by eps, the shape factor from (out, in), and no AdamW for the other
                leaves (they are refused; use ``gradchain.partition``).
    Reference:  torch.optim.Muon (torch 2.13); Jordan et al., "Muon: An optimizer for hidden
                layers in neural networks", 2024.
    """
    _check_implementation_args("Muon", implementation)
    _checks.check_non_negative("weight_decay", weight_decay)
    if len(tuple(ns_coefficients)) != 3:
        raise _checks.GradchainError(f"ns_coefficients must be (a, b, c), got {ns_coefficients!r}")
    parts = [
        scale_by_momentum(momentum, ema=True, nesterov=nesterov),  # momentum_buffer (+1x)
        scale_by_torch_newton_schulz(ns_coefficients, ns_steps, eps, ns_dtype),
    ]
    if lr_dtype is not None:  # torch's tensor lr: its products rounded to its dtype
        return chain(*parts, scale_by_torch_muon_lr(lr, weight_decay, adjust_lr_fn, lr_dtype))
    parts.append(scale_by_torch_shape(adjust_lr_fn))
    if weight_decay != 0:
        parts.append(add_decayed_weights(weight_decay))  # p *= 1 - lr * wd
    return chain(*parts, scale_by_learning_rate(lr))
