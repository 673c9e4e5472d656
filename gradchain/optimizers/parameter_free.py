"""Parameter-free optimizers: the step size is estimated during the run (Prodigy,
D-Adaptation AdamW, COCOB). Their learning rate multiplies the estimate: leave it at 1.0, or
give a schedule that peaks at 1.0. (Mechanic, which wraps another optimizer, is
``gradchain.mechanize``, with the wrappers.)

Keyword names and defaults follow ``optax.contrib``'s optimizer of the same name.
"""

from __future__ import annotations

from typing import Any

from gradchain import _checks
from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.transforms.parameter_free import (
    scale_by_cocob,
    scale_by_dadapt_adam,
    scale_by_prodigy,
)
from gradchain.transforms.scaling import add_decayed_weights, scale_by_learning_rate

__all__ = [
    "cocob",
    "dadapt_adamw",
    "prodigy",
]


def _pair(betas: Any) -> tuple[Any, Any]:
    """Optax's ``betas=(b1, b2)``, each checked under its place in the pair."""
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise _checks.GradchainError(f"betas must be a pair (b1, b2), got {_checks._kind(betas)}")
    for i, b in enumerate(betas):
        _checks.check_unit_interval(f"betas[{i}]", b)
    return betas[0], betas[1]


@live
def prodigy(
    learning_rate: LearningRate = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    beta3: float | None = None,
    eps: float = 1e-8,
    estim_lr0: float = 1e-6,
    estim_lr_coef: float = 1.0,
    weight_decay: float = 0.0,
    safeguard_warmup: bool = False,
) -> GradientTransformation:
    """Prodigy: AdamW whose step size D is estimated from <g, params0 - p>, recent steps first.

    Memory: 4x params (mu, nu, s, and the starting params) and two scalars.
    Optax's ``contrib.prodigy``, same keywords and defaults; the authors' ``prodigyopt.Prodigy``
    with ``use_bias_correction=True`` (its default is False) and ``decouple=True``.
    Differs on purpose where the l1 norm of s is 0 (every gradient so far zero, or a schedule
    still at 0): D is kept, as the authors', where Optax's turns NaN (see
    ``scale_by_prodigy``). ``betas`` is fixed at construction (a pair, not live); ``beta3``
    (None: sqrt(betas[1])) is live when given.
    """
    b1, b2 = _pair(betas)
    return chain(
        scale_by_prodigy(  # mu, nu, s, params0 (+4x params), d, numerator
            learning_rate,
            b1,
            b2,
            beta3,
            eps,
            estim_lr0,
            estim_lr_coef,
            weight_decay,
            safeguard_warmup=safeguard_warmup,
        ),
    )


@live
def dadapt_adamw(
    learning_rate: LearningRate = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    estim_lr0: float = 1e-6,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """D-Adaptation AdamW: AdamW whose step size D is estimated from the gradients' history.

    Memory: 3x params (mu, nu, s) and two scalars.
    Optax's ``contrib.dadapt_adamw``, same keywords and defaults; the authors'
    ``dadaptation.DAdaptAdam`` with ``use_bias_correction=True`` and ``decouple=True`` (both
    False by default there). Differs on purpose where the l1 norm of s is 0: D is kept, as
    the authors', where Optax's turns NaN (see ``scale_by_dadapt_adam``). ``betas`` is fixed
    at construction (a pair, not live).
    """
    b1, b2 = _pair(betas)
    return chain(
        scale_by_dadapt_adam(learning_rate, b1, b2, eps, estim_lr0, weight_decay),  # +3x params
    )


@live
def cocob(
    learning_rate: LearningRate = 1.0,
    alpha: float = 100.0,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    """COCOB-Backprop: per-coordinate coin betting, no step size to choose.

    Memory: 5x params (the starting params, and four running statistics of the gradient).
    Optax's ``contrib.cocob``, same keywords and defaults: weight decay is an L2 term added to
    the gradient (``mask`` selects the leaves), and ``learning_rate`` scales the gradient
    before the bets.
    """
    return chain(
        add_decayed_weights(weight_decay, mask),  # L2, before the bets
        scale_by_learning_rate(learning_rate, flip_sign=False),
        scale_by_cocob(alpha, eps),  # params0, sums and maxima of g (+5x params)
    )
