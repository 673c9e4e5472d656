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
gradient differences, ACProp divides the gradient by the previous step's RMS of the surprise,
simplified AdEMAMix keeps a heavy-ball momentum and adds alpha times the gradient to it.
Optax's positional order, keywords and defaults; Optax's own states are
one ``ScaleByAdamState``, gradchain's are the pieces' named slots (``mu``, ``nu``, ``count``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import (
    GradientTransformation,
    ScalarOrSchedule,
    chain,
    describe,
    tree_map_split,
)
from gradchain.transforms.additive import add_scaled_gradient
from gradchain.transforms.moment_math import abs_sq, compute_dtype, increment, moment_dtype
from gradchain.transforms.momentum import (
    add_slow_momentum,
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
from gradchain.transforms.rectified import _quarter_power, scale_by_previous_rms

__all__ = [
    "AcpropState",
    "adam_denominator",
    "scale_by_acprop",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_adan",
    "scale_by_ademamix",
    "scale_by_adopt",
    "scale_by_amsgrad",
    "scale_by_belief",
    "scale_by_simplified_ademamix",
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


@_checks.names_arguments
def scale_by_simplified_ademamix(
    b1: float = 0.99,
    b2: float = 0.95,
    alpha: ScalarOrSchedule = 0.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
) -> GradientTransformation:
    r"""Simplified AdEMAMix's direction: a heavy-ball momentum plus alpha g, over Adam's RMS.

    Update:     m_t = b1 m_{t-1} + g_t  (no (1 - b1): a sum, not an average) ;
                u_t = (m_t + alpha g_t) / (sqrt(nu_t / (1 - b2^t) + eps_root) + eps)
    State:      mu; (count, with a schedule for alpha); nu, count.   Memory: +2x params.
    Note:       Optax's ``contrib.scale_by_simplified_ademamix``; ``alpha`` may be a schedule.
    Reference:  Morwani et al., "Connections between Schedule-Free Optimizers, AdEMAMix, and
                Accelerated SGD Variants", 2025.
    """
    return chain(
        scale_by_momentum(b1),  # heavy-ball momentum m                          (+1x params)
        add_scaled_gradient(alpha),  # m + alpha g
        adam_denominator(b2, eps, eps_root),  # second moment nu, bias-corrected (+1x params)
    )


@_checks.names_arguments
def scale_by_ademamix(
    b1: float = 0.9,
    b2: float = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 6.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nu_dtype: Any = None,
) -> GradientTransformation:
    r"""AdEMAMix's direction: Adam's, plus alpha times a slow momentum in the numerator.

    Update:     m1_t = b1 m1_{t-1} + (1 - b1) g_t ;  m2_t = b3 m2_{t-1} + (1 - b3) g_t
                nu_t = b2 nu_{t-1} + (1 - b2) g_t^2
                u = (m1_t / (1 - b1^t) + alpha m2_t) / (sqrt(nu_t / (1 - b2^t) + eps_root) + eps)
                (m2 is never bias-corrected; ``b3`` and ``alpha`` may be schedules of the step)
    State:      mu, count; slow_mu (, count with a schedule); nu, count.   Memory: +3x params.
    Note:       Optax's ``contrib.scale_by_ademamix`` (its defaults: alpha 6, where the
                optimizer ``ademamix`` has 5). Optax's ``mu_dtype`` also sets nu's dtype;
                here ``nu_dtype`` does that. Optax keeps one ``ScaleByAdemamixState``
                (count, count_m2, m1, m2, nu); here each piece keeps its own slot.
    Reference:  Pagliardini et al., "The AdEMAMix optimizer: better, faster, older", 2024.
    """
    return chain(
        scale_by_momentum(b1, ema=True, mu_dtype=mu_dtype),  # fast momentum m1 (+1x params)
        bias_correct(b1),
        add_slow_momentum(b3, alpha, mu_dtype=mu_dtype),  # + alpha * slow m2 (+1x params)
        adam_denominator(b2, eps, eps_root, nu_dtype),  # second moment nu   (+1x params)
    )


@_checks.names_arguments
def scale_by_adopt(
    b1: float = 0.9,
    b2: float = 0.9999,
    eps: float = 1e-6,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    use_clipping: bool = True,
    clip_value_fn: Callable[[jax.Array], jax.Array] = _quarter_power,
) -> GradientTransformation:
    r"""ADOPT's direction: normalise by the *previous* second moment, clip, then momentum.

    Update:     first step: u = 0, nu_0 = g_0^2 ;  later:
                n_t = clip(g_t / max(sqrt(nu_{t-1}), eps), -c(t), c(t))   (c = clip_value_fn,
                t the steps before this one; no clip without ``use_clipping``)
                nu_t = b2 nu_{t-1} + (1 - b2) g_t^2 ;  mu_t = b1 mu_{t-1} + (1 - b1) n_t ;
                u = mu_t (``nesterov``: b1 mu_t + (1 - b1) n_t)
    State:      nu, count; mu (``mu_dtype``).   Memory: +2x params.
    Note:       Optax's ``contrib.scale_by_adopt``; Optax keeps one ``ScaleByAdamState``.
    Reference:  Taniguchi et al., "ADOPT: modified Adam can converge with any beta2 with
                the optimal rate", NeurIPS 2024.
    """
    return chain(
        scale_by_previous_rms(  # second moment, one step behind (+1x params)
            b2, eps, clip_value_fn=clip_value_fn if use_clipping else None
        ),
        scale_by_momentum(b1, ema=True, nesterov=nesterov, mu_dtype=mu_dtype),  # +1x
    )


@describe(
    mu="first moment of the gradient (like params, starts at 0): the prediction of g",
    nu="second moment of the surprise g - mu_{t-1}, plus eps_root every step (like params, "
    "real dtype)",
    count="steps taken so far (int32 scalar), for bias correction",
)
class AcpropState(NamedTuple):
    mu: Any
    nu: Any
    count: jax.Array


@_checks.names_arguments
def scale_by_acprop(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-16, eps_root: float = 1e-16
) -> GradientTransformation:
    r"""ACProp's direction: the gradient over the *previous* step's RMS of the surprise.

    Update:     u_t = g_t / (sqrt(s_{t-1} / (1 - b2^{t-1})) + eps),  and g_t / (1 + eps) at t = 1
                mu_t = b1 mu_{t-1} + (1 - b1) g_t ;
                s_t = b2 s_{t-1} + (1 - b2) |g_t - mu_{t-1}|**2 + eps_root
    State:      mu, nu (= s), count.   Memory: +2x params.
    Note:       Optax's ``contrib.scale_by_acprop``: the momentum centres the second moment
                only; the step is the gradient itself (asynchronous: s does not yet hold g_t).
    Reference:  Zhuang et al., "Momentum Centering and Asynchronous Update for Adaptive
                Gradient Methods", NeurIPS 2021.
    """
    _checks.check_unit_interval("b1", b1)
    _checks.check_unit_interval("b2", b2)
    _checks.check_non_negative("eps", eps)
    _checks.check_non_negative("eps_root", eps_root)

    def init(params):
        return AcpropState(
            mu=jax.tree.map(jnp.zeros_like, params),
            nu=jax.tree.map(lambda p: jnp.zeros_like(p, moment_dtype(p)), params),
            count=jnp.zeros([], jnp.int32),
        )

    def update(updates, state, params=None, *, gradient=None, **extra):
        grads = updates if gradient is None else gradient
        first = state.count == 0

        def step(u, g, mu, nu):
            c = compute_dtype(u.dtype, g.dtype, mu.dtype, nu.dtype)
            d1, d2 = jnp.asarray(b1, c), jnp.asarray(b2, c)
            s = nu.astype(c)
            correction = 1 - d2 ** jnp.maximum(state.count, 1).astype(c)
            s_hat = jnp.where(first, jnp.ones([], c), s / correction)
            out = u.astype(c) / (jnp.sqrt(s_hat) + jnp.asarray(eps, c))
            surprise = abs_sq(g.astype(c) - mu.astype(c), s.dtype)
            s_new = d2 * s + (1 - d2) * surprise + jnp.asarray(eps_root, c)
            mu_new = d1 * mu.astype(c) + (1 - d1) * g.astype(c)
            return out.astype(u.dtype), mu_new.astype(mu.dtype), s_new.astype(nu.dtype)

        out, mu, nu = tree_map_split(step, 3, updates, grads, state.mu, state.nu)
        return out, AcpropState(mu=mu, nu=nu, count=increment(state.count))

    return GradientTransformation(init, update, name="scale_by_acprop", preprocessing=False)
