"""Adam's family of directions: a first moment over a second moment.

Adam's direction is written once, here, as the literal chain of its pieces (the comment on
each line says what it keeps):

    scale_by_adam = chain(scale_by_momentum(b1, ema=True),   # first moment mu   (+1x params)
                          bias_correct(b1),                  # undo the zero start
                          adam_denominator(b2, eps))         # second moment nu  (+1x params)

and every optimizer of the family is that direction, then its decay, then its learning rate
(``optimizers/textbook.py``: ``adam``, ``adamw``; ``optimizers/adam.py``: the variants). To put
something between the direction and the decay -- a mask, a clip of the direction -- chain it
there: ``chain(scale_by_adam(), my_step, add_decayed_weights(wd), scale_by_learning_rate(lr))``.

The variants change one line: AMSGrad keeps the running maximum of nu, Adamax an infinity
norm, Yogi an additive nu, AdaBelief the variance of the surprise, Adan a third moment of
gradient differences. Optax's positional order, keywords and defaults; Optax's own states are
one ``ScaleByAdamState``, gradchain's are the pieces' named slots (``mu``, ``nu``, ``count``).
"""

from __future__ import annotations

from typing import Any

from gradchain import _checks
from gradchain.base import (
    GradientTransformation,
    chain,
)
from gradchain.transforms.momentum import (
    bias_correct,
    scale_by_gradient_difference,
    scale_by_momentum,
)
from gradchain.transforms.preconditioners import (
    scale_by_additive_rms,
    scale_by_inf_norm,
    scale_by_rms,
    scale_by_surprise_rms,
)

__all__ = [
    "adam_denominator",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_adan",
    "scale_by_amsgrad",
    "scale_by_belief",
    "scale_by_yogi",
]


def adam_denominator(
    b2: float = 0.999, eps: float = 1e-8, eps_root: float = 0.0, nu_dtype: Any = None
) -> GradientTransformation:
    r"""Adam's denominator: divide by the bias-corrected RMS of the gradient, eps outside.

    Update:     nu_t = b2 nu_{t-1} + (1 - b2) g_t^2 ;  u / (sqrt(nu_t / (1 - b2^t) + eps_root) + eps)
                (``g`` is the gradient the chain hands over, ``u`` the update that reaches it).
    State:      nu (like params, starts at 0), count.   Memory: +1x params.
    Reference:  Kingma & Ba, "Adam", 2015.
    """
    return scale_by_rms(
        b2, eps, eps_in_sqrt=False, bias_correction=True, eps_root=eps_root, nu_dtype=nu_dtype
    )


@_checks.names_arguments  # refusals under these arguments' names
def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""Adam's direction: bias-corrected momentum over the root of the second moment.

    Update:     mu_t = b1 mu_{t-1} + (1 - b1) g_t ;  m_hat = mu_t / (1 - b1^t)
                (``nesterov``: b1 m_hat_t + (1 - b1) g_t / (1 - b1^t)) ;
                nu_t = b2 nu_{t-1} + (1 - b2) g_t^2 ;  u = m_hat / (sqrt(nu_t / (1 - b2^t)
                + eps_root) + eps)  -- Optax's ``scale_by_adam``.
    State:      mu (``mu_dtype``), count; nu (``nu_dtype``), count.   Memory: +2x params.
    Reference:  Kingma & Ba, "Adam", 2015; Dozat, 2016 (``nesterov``).
    """
    return chain(
        scale_by_momentum(b1, ema=True, mu_dtype=mu_dtype),  # first moment mu  (+1x params)
        bias_correct(b1, nesterov=nesterov),  # undo the zero start (+1 scalar)
        adam_denominator(b2, eps, eps_root, nu_dtype),  # second moment nu      (+1x params)
    )


@_checks.names_arguments
def scale_by_amsgrad(
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
    r"""AMSGrad's direction: Adam's, over the running maximum of the (corrected) nu.

    Update:     m_hat / (sqrt(max_t nu_hat + eps_root) + eps); ``bias_correction_mu`` /
                ``bias_correction_nu`` False leave m / nu uncorrected (the max is then of raw nu).
    State:      mu, count, nu, nu_max, count.   Memory: +3x params.
    Reference:  Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond", 2018.
    """
    return chain(
        scale_by_momentum(b1, ema=True, mu_dtype=mu_dtype),  # first moment   (+1x params)
        *([bias_correct(b1)] if bias_correction_mu else []),
        scale_by_rms(  # nu and its running maximum                        (+2x params)
            b2,
            eps,
            eps_in_sqrt=False,
            bias_correction=bias_correction_nu,
            eps_root=eps_root,
            amsgrad=True,
            nu_dtype=nu_dtype,
        ),
    )


@_checks.names_arguments
def scale_by_adamax(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""Adamax's direction: bias-corrected momentum over max(b2 * nu, |g| + eps).

    State:      mu, count, nu.   Memory: +2x params.
    Reference:  Kingma & Ba, 2015, section 7.1.
    """
    return chain(
        scale_by_momentum(b1, ema=True, mu_dtype=mu_dtype),  # first moment    (+1x params)
        bias_correct(b1),
        scale_by_inf_norm(b2, eps, nu_dtype=nu_dtype),  # exponentially weighted max of |g|     (+1x params)
    )


@_checks.names_arguments
def scale_by_yogi(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-3,
    eps_root: float = 0.0,
    initial_accumulator_value: float = 1e-6,
) -> GradientTransformation:
    r"""Yogi's direction: Adam's, with a second moment that moves additively.

    State:      mu, count, nu, count.   Memory: +2x params.
    Note:       Optax also starts the first moment at ``initial_accumulator_value``; here it
                starts at 0, as Adam's (the second moment starts at it in both). The
                difference fades as b1**t.
    Reference:  Zaheer et al., "Adaptive Methods for Nonconvex Optimization", 2018.
    """
    return chain(
        scale_by_momentum(b1, ema=True),  # first moment                      (+1x params)
        bias_correct(b1),
        scale_by_additive_rms(  # additive second moment                      (+1x params)
            b2, eps, eps_root=eps_root, initial_accumulator_value=initial_accumulator_value
        ),
    )


@_checks.names_arguments
def scale_by_belief(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-16,
    eps_root: float = 1e-16,
    *,
    nesterov: bool = False,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""AdaBelief's direction: bias-corrected momentum over the RMS of the surprise g - mu.

    Update:     s_t = b2 s_{t-1} + (1 - b2) |g_t - mu_t|**2 + eps_root
                u_t = m_hat / (sqrt(s_t / (1 - b2**t)) + eps)  (``nesterov``: NAdam's m_hat)
    State:      mu, belief, count (and a second count without ``nesterov``).
                Memory: +2x params.
    Note:       Optax's signature and positional order (b1 first). Before issue 16 gradchain's
                ``scale_by_belief`` took (b2, eps, eps_root) and divided a momentum made
                elsewhere; that piece is now ``scale_by_surprise_rms``.
    Reference:  Zhuang et al., "AdaBelief Optimizer", 2020, Algorithm 2.
    """
    momentum = scale_by_momentum(b1, ema=True, mu_dtype=mu_dtype)  # first moment (+1x)
    if nesterov:  # the look-ahead numerator is corrected inside, with the same count
        return chain(
            momentum, scale_by_surprise_rms(b2, eps, eps_root, nesterov_decay=b1, nu_dtype=nu_dtype)
        )  # (+1x params)
    return chain(
        momentum,
        scale_by_surprise_rms(b2, eps, eps_root, nu_dtype=nu_dtype),  # reads mu (+1x params)
        bias_correct(b1),  # a scalar: commutes with the per-coordinate division
    )


@_checks.names_arguments
def scale_by_adan(
    b1: float = 0.98,
    b2: float = 0.92,
    b3: float = 0.99,
    eps: float = 1e-8,
    eps_root: float = 0.0,
) -> GradientTransformation:
    r"""Adan's direction: momentum plus a momentum of gradient differences, over their RMS.

    State:      mu, count, v, n, previous_gradient, count.   Memory: +4x params.
    Note:       Optax's transform defaults to eps_root = 0 (its ``adan`` optimizer to 1e-8).
    Reference:  Xie et al., "Adan", 2022, Algorithm 1.
    """
    return chain(
        scale_by_momentum(b1, ema=True),  # momentum of g                     (+1x params)
        bias_correct(b1),
        scale_by_gradient_difference(b2, b3, eps, eps_root),  # v, n, previous g  (+3x)
    )
