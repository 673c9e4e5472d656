"""The textbook ladder of named optimizers, each a short chain of transforms.

Keyword names and defaults follow Optax's optimizer of the same name. Each chain adds one
piece of memory over the one before it in the ladder SGD -> momentum -> Adam -> AMSGrad;
the comment on each line says what it adds.
"""

from __future__ import annotations

from typing import Any

from gradchain._checks import GradchainError
from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.transforms import (
    add_decayed_weights,
    scale_by_learning_rate,
    scale_by_lion_momentum,
    scale_by_momentum,
    scale_by_rms,
    scale_by_rss,
    scale_by_sign,
    scale_by_stddev,
)
from gradchain.transforms.adam import (
    adam_denominator,
    scale_by_adam,
    scale_by_adamax,
    scale_by_amsgrad,
)
from gradchain.transforms.momentum import bias_correct_nadam

__all__ = [
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "amsgrad",
    "lion",
    "momentum",
    "nadam",
    "nesterov",
    "rmsprop",
    "sgd",
]


@live
def momentum(
    learning_rate: LearningRate, momentum: float = 0.9, *, nesterov: bool = False
) -> GradientTransformation:
    """Heavy-ball momentum: ``v <- m * v + g ; p <- p - lr * v``. Memory: 1x params (``mu``)."""
    return chain(
        scale_by_momentum(momentum, nesterov=nesterov),  # velocity      (+1x params)
        scale_by_learning_rate(learning_rate),
    )


@live
def nesterov(learning_rate: LearningRate, momentum: float = 0.9) -> GradientTransformation:
    """Nesterov momentum: step along ``g + m * v`` (the look-ahead). Memory: 1x params."""
    return chain(
        scale_by_momentum(momentum, nesterov=True),  # velocity + look-ahead (+1x params)
        scale_by_learning_rate(learning_rate),
    )


@live
def sgd(
    learning_rate: LearningRate,
    momentum: float | None = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Stochastic gradient descent: ``p <- p - lr * g``. Memory: 0x params.

    ``momentum`` (Optax's keyword) turns it into ``gradchain.momentum``; ``accumulator_dtype``
    (Optax's) is then the velocity's storage dtype.

    >>> import jax.numpy as jnp, gradchain
    >>> opt = gradchain.sgd(0.1)
    >>> updates, _ = opt.update(jnp.array([1.0, -2.0]), opt.init(jnp.zeros(2)))
    >>> updates.tolist()
    [-0.10000000149011612, 0.20000000298023224]
    """
    if momentum is not None:
        return chain(
            scale_by_momentum(momentum, nesterov=nesterov, mu_dtype=accumulator_dtype),  # +1x
            scale_by_learning_rate(learning_rate),
        )
    return chain(scale_by_learning_rate(learning_rate))


@live
def adagrad(
    learning_rate: LearningRate,
    initial_accumulator_value: float = 0.1,
    eps: float = 1e-7,
    *,
    eps_in_sqrt: bool = True,
) -> GradientTransformation:
    """AdaGrad: divide by the root of the sum of all squared gradients. Memory: 1x params.

    torch.optim.Adagrad: ``initial_accumulator_value=0, eps=1e-10, eps_in_sqrt=False``.
    """
    eps_out, eps_root = (0.0, eps) if eps_in_sqrt else (eps, 0.0)
    return chain(
        scale_by_rss(initial_accumulator_value, eps_out, eps_root=eps_root),  # sum of g**2 (+1x)
        scale_by_learning_rate(learning_rate),
    )


@live
def rmsprop(
    learning_rate: LearningRate,
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: float | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> GradientTransformation:
    """RMSProp: divide by the root of a moving average of g**2. Memory: 1x params
    (+1x centered, +1x momentum).

    torch.optim.RMSprop: ``decay=0.99`` (its ``alpha``), ``eps_in_sqrt=False``.
    """
    statistic = scale_by_stddev if centered else scale_by_rms
    parts = [  # second moment (+1x params; centered: and the mean, +1x)
        statistic(decay, eps, initial_scale, eps_in_sqrt, bias_correction)
    ]
    if momentum is not None:
        parts.append(scale_by_momentum(momentum, nesterov=nesterov))  # velocity (+1x params)
    return chain(*parts, scale_by_learning_rate(learning_rate))


@live
def adam(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam: momentum, bias correction, RMS scaling, learning rate. Memory: 2x params.

    >>> import jax.numpy as jnp, gradchain
    >>> opt = gradchain.adam(0.1)
    >>> theta = jnp.array(1.0)
    >>> state = opt.init(theta)
    >>> for _ in range(2):   # L(theta) = theta**2, gradient 2 * theta
    ...     updates, state = opt.update(2 * theta, state)
    ...     theta = gradchain.apply_updates(theta, updates)
    >>> round(float(theta), 4)
    0.8004
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype),
        scale_by_learning_rate(learning_rate),  # Adam's direction above: mu, nu (+2x params)
    )


@live
def adamw(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    weight_decay: float = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdamW: Adam plus decoupled weight decay, added after the preconditioner. Memory: 2x.

    Adam with L2 instead is ``chain(add_decayed_weights(wd), adam(lr))``: the same transform,
    in front of the chain. ``mask`` (Optax's keyword): a tree of bools shaped like the params,
    or a function of the params returning one; only leaves marked True are decayed (e.g. no
    decay on biases and norm scales). It wraps the decay in ``gradchain.masked``.
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype),
        add_decayed_weights(weight_decay, mask),  # decoupled decay: after the preconditioner
        scale_by_learning_rate(learning_rate),  # (Adam's direction: mu, nu, +2x params)
    )


@live
def amsgrad(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    bias_correction_mu: bool = True,
    bias_correction_nu: bool = True,
    *,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AMSGrad: Adam whose denominator never shrinks (running max of nu). Memory: 3x.

    ``bias_correction_mu`` / ``bias_correction_nu`` (Optax's): False leaves that moment
    uncorrected (the maximum is then of the raw nu).
    """
    return chain(
        scale_by_amsgrad(  # mu, nu and nu's running maximum (+3x params)
            b1, b2, eps, eps_root, mu_dtype, bias_correction_mu, bias_correction_nu,
            nu_dtype=nu_dtype,
        ),
        scale_by_learning_rate(learning_rate),
    )


@live
def nadam(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    nu_dtype: Any = None,
    momentum_decay: float | None = None,
) -> GradientTransformation:
    """NAdam: Adam with a Nesterov look-ahead in the bias correction. Memory: 2x params.

    ``nesterov=False`` (Optax's keyword) is plain Adam.

    ``momentum_decay=None`` is Optax's form (a constant b1). A number psi (torch's default is
    4e-3) gives torch.optim.NAdam's momentum schedule mu_t = b1 * (1 - 0.5 * 0.96**(t psi))
    through ``bias_correct_nadam``; see also ``gradchain.torch.NAdam``.
    """
    if momentum_decay is not None and not nesterov:
        raise GradchainError("nadam: momentum_decay (torch's NAdam) needs nesterov=True")
    if momentum_decay is None:
        return chain(
            scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype),
            scale_by_learning_rate(learning_rate),
        )
    return chain(
        scale_by_momentum(b1, ema=True, mu_dtype=mu_dtype),  # first moment   (+1x params)
        bias_correct_nadam(b1, momentum_decay),  # scheduled look-ahead (+2 scalars)
        adam_denominator(b2, eps, eps_root, nu_dtype),  # second moment (+1x params)
        scale_by_learning_rate(learning_rate),
    )


@live
def adamax(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adamax: Adam with the infinity norm in place of the RMS. Memory: 2x params."""
    return chain(
        scale_by_adamax(b1, b2, eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype),  # mu, max |g| (+2x)
        scale_by_learning_rate(learning_rate),
    )


@live
def lion(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.99,
    mu_dtype: Any = None,
    weight_decay: float = 1e-3,
    mask: Any = None,
) -> GradientTransformation:
    """Lion: the sign of an interpolated momentum, plus decoupled decay. Memory: 1x params.

    ``mask`` decays only the leaves it marks True, as in ``adamw``.
    """
    return chain(
        scale_by_lion_momentum(b1, b2, mu_dtype=mu_dtype),  # momentum       (+1x params)
        scale_by_sign(),  # every coordinate moves by exactly lr
        add_decayed_weights(weight_decay, mask),  # decoupled decay
        scale_by_learning_rate(learning_rate),
    )
