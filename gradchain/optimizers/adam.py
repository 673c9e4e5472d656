"""Adam's family beyond the textbook: each is Adam's direction (``transforms/adam.py``) with
one line changed, then its decay and its learning rate.

AdEMAMix adds a slow momentum, Adan a gradient difference, AdaBelief the variance of the
surprise, Yogi an additive second moment, ADOPT a denominator that excludes the current
gradient, ACProp an asynchronous centred denominator, simplified AdEMAMix one heavy-ball
momentum plus alpha g, NAdamW and AdamaxW the decoupled-decay forms of NAdam and Adamax. Adam, AdamW,
AMSGrad, NAdam and Adamax themselves are in ``optimizers/textbook.py``. Keyword names and
defaults follow Optax's optimizer of the same name (core ``optax`` or ``optax.contrib``);
where gradchain differs, the docstring's Note says so. Memory multiples count param-sized
slots (float32 AdamW = 2x).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.optimizers.textbook import adamw
from gradchain.transforms import (
    add_decayed_weights,
    bias_correct,
    scale_by_learning_rate,
    scale_by_momentum,
)
from gradchain.transforms.adam import (
    scale_by_acprop,
    scale_by_adamax,
    scale_by_ademamix,
    scale_by_adopt,
    scale_by_belief,
    scale_by_simplified_ademamix,
    scale_by_yogi,
)
from gradchain.transforms.momentum import scale_by_gradient_difference
from gradchain.transforms.rectified import _quarter_power

__all__ = [
    "acprop",
    "adabelief",
    "adamaxw",
    "adan",
    "ademamix",
    "adopt",
    "nadamw",
    "simplified_ademamix",
    "yogi",
]


@live
def ademamix(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    b3: float | Callable[[Any], Any] = 0.9999,
    alpha: float | Callable[[Any], Any] = 5.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    weight_decay: float = 0.0,
    mask: Any = None,
    *,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdEMAMix: Adam plus a slow momentum (b3 = 0.9999) weighted by alpha. Memory: 3x params.

    The slow momentum keeps gradients from ~10,000 steps ago in play: it buys a flatter,
    better-generalising path on long runs at the price of one more param-sized slot.

    Note: Optax's ``mu_dtype`` also sets its nu's dtype; here ``nu_dtype`` does that.
    ``mask`` (Optax's keyword) decays only the leaves it marks True, as in ``adamw``.

    >>> import jax.numpy as jnp, gradchain
    >>> opt = gradchain.ademamix(0.1)
    >>> [type(s).__name__ for s in opt.init(jnp.zeros(2)).inner][:3]
    ['MomentumState', 'BiasCorrectState', 'SlowMomentumState']
    """
    return chain(
        scale_by_ademamix(  # fast and slow momentum, second moment (+3x params)
            b1, b2, b3, alpha, eps, eps_root, mu_dtype, nu_dtype=nu_dtype
        ),
        add_decayed_weights(weight_decay, mask),  # decoupled decay
        scale_by_learning_rate(learning_rate),
    )


@live
def adan(
    learning_rate: LearningRate,
    b1: float = 0.98,
    b2: float = 0.92,
    b3: float = 0.99,
    eps: float = 1e-8,
    eps_root: float = 1e-8,
    weight_decay: float = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    """Adan: Adam's momentum plus a momentum of gradient differences. Memory: 4x params.

    The difference moment is a Nesterov look-ahead without a second gradient evaluation;
    it costs the difference moment and the previous gradient (+2x over Adam).

    Note: Optax's form: the decay is decoupled and applied after the scaling, not the
    paper's proximal step.
    """
    return chain(
        scale_by_momentum(b1, ema=True),  # momentum of g                    (+1x params)
        bias_correct(b1),
        scale_by_gradient_difference(b2, b3, eps, eps_root),  # v, n, previous g (+3x)
        add_decayed_weights(weight_decay, mask),  # decoupled decay (mask: Optax's keyword)
        scale_by_learning_rate(learning_rate),
    )


@live
def adabelief(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdaBelief: Adam whose second moment is of the surprise g - mu. Memory: 2x params.

    Same memory as Adam; the slot holds the gradient's variance around the momentum instead
    of its raw second moment, so the step is large where gradients are predictable.
    ``nesterov`` (Optax's keyword): NAdam's look-ahead numerator.
    """
    return chain(
        # mu and the surprise's (g - mu)**2                        (+2x params)
        scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov, nu_dtype=nu_dtype),
        scale_by_learning_rate(learning_rate),
    )


@live
def yogi(
    learning_rate: LearningRate, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-3
) -> GradientTransformation:
    """Yogi: Adam whose second moment changes additively. Memory: 2x params.

    Note: Optax also starts its first moment at 1e-6 (here: 0, as Adam's). The difference
    in mu fades as b1**t, but the steps it changed are taken: the params stay apart by about
    1e-4 x lr, set in the first ten steps, and it does not fade (measured on the test problem
    of tests/test_reference_optax_adaptive.py, float64, lr 0.01: 4.7e-7 after 1 step, 7.4e-7 after 10,
    7.8e-7 after 50 and after 200; 3.3e-4 x lr after 50 steps of other gradients).
    """
    return chain(
        scale_by_yogi(b1, b2, eps),  # mu; an additive nu that starts at 1e-6 (+2x params)
        scale_by_learning_rate(learning_rate),
    )


@live(static=("clip_value_fn",))  # a function of the count, not a schedule
def adopt(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.9999,
    eps: float = 1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[Any], Any] = _quarter_power,
) -> GradientTransformation:
    """ADOPT: normalise by the previous second moment, then take momentum. Memory: 2x params.

    The order is Adam's reversed: the momentum is of normalised gradients, and the
    normalisation never includes the gradient it divides -- which makes it converge for any
    b2. The first step only measures nu (a zero update).
    """
    return chain(
        scale_by_adopt(  # second moment one step behind, then momentum (+2x params)
            b1, b2, eps, mu_dtype, nesterov=nesterov, use_clipping=use_clipping,
            clip_value_fn=clip_value_fn,
        ),  # fmt: skip
        scale_by_learning_rate(learning_rate),
    )


@live
def nadamw(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    weight_decay: float = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = True,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """NAdamW: NAdam (Nesterov look-ahead in the bias correction) plus decoupled weight
    decay. Memory: 2x params.

    It is ``adamw(..., nesterov=True)``: AdamW's chain, whose direction has ``bias_correct(b1,
    nesterov=True)``. ``mask`` and ``nesterov`` are Optax's keywords (``nesterov=False`` is
    AdamW).
    """
    return adamw(  # inside this factory, adamw is its plain chain (live composes with live)
        learning_rate, b1, b2, eps, eps_root, mu_dtype, weight_decay, mask,
        nesterov=nesterov, nu_dtype=nu_dtype,
    )


@live
def adamaxw(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-4,
    mask: Any = None,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdamaxW: Adamax (infinity-norm denominator) plus decoupled weight decay. Memory: 2x.

    ``mask`` (Optax's keyword) decays only the leaves it marks True, as in ``adamw``."""
    return chain(
        scale_by_adamax(b1, b2, eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype),  # mu, max |g| (+2x)
        add_decayed_weights(weight_decay, mask),  # decoupled decay
        scale_by_learning_rate(learning_rate),
    )


@live
def acprop(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    weight_decay: float = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    """ACProp: the gradient over the previous step's RMS of the surprise g - mu. Memory: 2x params.

    AdaBelief's centred second moment, used asynchronously (it does not yet hold the gradient
    it divides), with no momentum in the step. Optax's ``contrib.acprop``.
    """
    return chain(
        scale_by_acprop(b1, b2, eps, eps_root),  # mu, s of the surprise        (+2x params)
        add_decayed_weights(weight_decay, mask),  # decoupled decay
        scale_by_learning_rate(learning_rate),
    )


@live
def simplified_ademamix(
    learning_rate: LearningRate,
    b1: float = 0.99,
    b2: float = 0.95,
    alpha: float | Callable[[Any], Any] = 0.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
    mask: Any = None,
) -> GradientTransformation:
    """Simplified AdEMAMix: (heavy-ball m + alpha g) over Adam's RMS. Memory: 2x params.

    One momentum instead of AdEMAMix's two: with b1 near 1 the sum m plays the slow
    momentum, alpha g the fast one. Optax's ``contrib.simplified_ademamix``.
    """
    return chain(
        scale_by_simplified_ademamix(b1, b2, alpha, eps, eps_root),  # m, nu   (+2x params)
        add_decayed_weights(weight_decay, mask),  # decoupled decay
        scale_by_learning_rate(learning_rate),
    )
