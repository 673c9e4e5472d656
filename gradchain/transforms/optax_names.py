"""The building blocks under Optax's names: ``scale_by_adam`` and the other pieces Optax users
compose, with Optax's positional order, keywords and defaults.

Each is a short chain of gradchain's own transforms (the comment on each line says what it
keeps), so an Optax user's line means the same thing here; the few pieces gradchain had no
transform for (``zero_nans``, ``keep_params_nonnegative``, ``scale_by_param_block_norm``,
``scale_by_optimistic_gradient``, Lion's smooth signs) are written here, each its equation.
The states are gradchain's (named slots: ``mu``, ``nu``, ``count``...), not Optax's
``ScaleByAdamState``; ``gradchain.tree_get(state, "mu")`` finds them by name either way.
Measured differences from Optax are in ``docs/coming_from_optax.md``.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import (
    EmptyState,
    GradientTransformation,
    chain,
    describe,
    tree_map_split,
    tree_zeros_like,
)
from gradchain.transforms.extra_moments import (
    scale_by_additive_rms,
    scale_by_gradient_difference,
    scale_by_surprise_rms,
)
from gradchain.transforms.layerwise import scale_by_layerwise_rms
from gradchain.transforms.mesh_axes import refuse_if_sharded
from gradchain.transforms.moment_math import compute_dtype
from gradchain.transforms.momentum import bias_correct, scale_by_lion_momentum, scale_by_momentum
from gradchain.transforms.preconditioners import scale_by_inf_norm, scale_by_rms
from gradchain.transforms.rectified import scale_by_rectified_rms
from gradchain.transforms.scaling import add_decayed_weights, scale_by_sign

__all__ = [
    "GradientTransformationExtraArgs",
    "OptimisticGradientState",
    "ZeroNansState",
    "ema",
    "keep_params_nonnegative",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_adan",
    "scale_by_amsgrad",
    "scale_by_belief",
    "scale_by_lion",
    "scale_by_novograd",
    "scale_by_optimistic_gradient",
    "scale_by_param_block_norm",
    "scale_by_radam",
    "scale_by_yogi",
    "trace",
    "zero_nans",
]

# Optax splits transforms whose update takes extra keyword arguments into their own class.
# Every gradchain transform's update already takes ``**extra`` (and ignores what it does not
# use), so the name is the same class: ``isinstance(gradchain.adam(1e-3),
# GradientTransformationExtraArgs)`` is True, and ``GradientTransformationExtraArgs(init,
# update)`` builds a ``GradientTransformation``. An Optax transform is not an instance of it.
GradientTransformationExtraArgs = GradientTransformation


# --- Adam's family: momentum, bias correction, a second moment ------------------------------


@_checks.names_arguments  # refusals under these arguments' names
def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    r"""Adam's direction: bias-corrected momentum over the root of the second moment.

    Update:     m_hat / (sqrt(nu_hat + eps_root) + eps) (Optax's ``scale_by_adam``).
    State:      mu (dtype ``mu_dtype``), count, nu, count.   Memory: +2x params.
    Reference:  Kingma & Ba, 2015; Dozat, 2016 (``nesterov``).
    """
    return chain(
        scale_by_momentum(b1, ema=True, mu_dtype=mu_dtype),  # first moment   (+1x params)
        bias_correct(b1, nesterov=nesterov),  # undo the zero start
        scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True, eps_root=eps_root),  # +1x
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
        ),
    )


@_checks.names_arguments
def scale_by_adamax(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> GradientTransformation:
    r"""Adamax's direction: bias-corrected momentum over max(b2 * nu, |g| + eps).

    State:      mu, count, nu.   Memory: +2x params.
    Reference:  Kingma & Ba, 2015, section 7.1.
    """
    return chain(
        scale_by_momentum(b1, ema=True),  # first moment                      (+1x params)
        bias_correct(b1),
        scale_by_inf_norm(b2, eps),  # exponentially weighted max of |g|     (+1x params)
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
def scale_by_radam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    threshold: float = 5.0,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    r"""RAdam's direction: momentum steps until the second moment is trustworthy, then
    Adam's, rectified.

    State:      mu, count, nu, count.   Memory: +2x params.
    Reference:  Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", 2020.
    """
    return chain(
        scale_by_momentum(b1, ema=True),  # first moment                      (+1x params)
        bias_correct(b1, nesterov=nesterov),
        scale_by_rectified_rms(b2, eps, eps_root=eps_root, threshold=threshold),  # nu (+1x)
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
def scale_by_novograd(
    b1: float = 0.9,
    b2: float = 0.25,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""NovoGrad's direction: a layer-wise normalised gradient, plus decay, with momentum.

    Update:     n_t = ||g_t||**2 (first step), else b2 n_{t-1} + (1 - b2) ||g_t||**2 per leaf
                m_t = b1 m_{t-1} + g_t / (sqrt(n_t + eps_root) + eps) + weight_decay * p_t
    State:      nu (one scalar per leaf), count, mu.   Memory: +1x params.
    Reference:  Ginsburg et al., 2019, Algorithm 1.
    """
    return chain(
        scale_by_layerwise_rms(b2, eps, eps_root=eps_root),  # ||g||**2 per leaf  (+1 scalar)
        add_decayed_weights(weight_decay),  # decay inside the momentum
        scale_by_momentum(b1, mu_dtype=mu_dtype),  # heavy ball: m_1 is the first term (+1x)
    )


# --- Lion ------------------------------------------------------------------------------------


def _soft_sign(mode: str, smooth_beta: float) -> GradientTransformation:
    """Lion's 'smooth' (tanh(beta x)) and 'refined' (x where |x| < 1, else sign x) signs."""

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):
        def squash(u):
            if mode == "smooth":
                c = compute_dtype(u.dtype)
                return jnp.tanh(jnp.asarray(smooth_beta, c) * u.astype(c)).astype(u.dtype)
            return jnp.where(jnp.abs(u) < 1, u, jnp.sign(u))

        return jax.tree.map(squash, updates), state

    return GradientTransformation(init, update, name=f"lion_{mode}_sign")


@_checks.names_arguments
def scale_by_lion(
    b1: float = 0.9,
    b2: float = 0.99,
    mu_dtype: Any = None,
    *,
    mode: Literal["hard", "smooth", "refined"] = "hard",
    smooth_beta: float = 1.0,
) -> GradientTransformation:
    r"""Lion's direction: the sign of an interpolation of the momentum and the gradient.

    Update:     x_t = b1 mu_{t-1} + (1 - b1) g_t ;  u_t = sign(x_t) ('hard'),
                tanh(smooth_beta x_t) ('smooth'), x_t where |x_t| < 1 else sign(x_t) ('refined')
                mu_t = b2 mu_{t-1} + (1 - b2) g_t
    State:      mu (dtype ``mu_dtype``).   Memory: +1x params.
    Note:       Optax's state also counts steps; nothing reads that count.
    Reference:  Chen et al., "Symbolic Discovery of Optimization Algorithms", 2023.
    """
    _checks.check_choice("mode", mode, ("hard", "smooth", "refined"))
    _checks.check_hyperparam("smooth_beta", smooth_beta)
    return chain(
        scale_by_lion_momentum(b1, b2, mu_dtype=mu_dtype),  # momentum        (+1x params)
        scale_by_sign() if mode == "hard" else _soft_sign(mode, smooth_beta),
    )


# --- accumulators under Optax's names --------------------------------------------------------


@_checks.names_arguments
def trace(
    decay: float, nesterov: bool = False, accumulator_dtype: Any = None
) -> GradientTransformation:
    r"""Heavy-ball momentum: ``trace = decay * trace + u`` (Optax's ``trace``).

    It is ``scale_by_momentum(decay, nesterov=nesterov, mu_dtype=accumulator_dtype)``; the
    slot is called ``mu`` (Optax: ``trace``).   Memory: +1x params.
    """
    return scale_by_momentum(decay, nesterov=nesterov, mu_dtype=accumulator_dtype)


@_checks.names_arguments
def ema(decay: float, debias: bool = True, accumulator_dtype: Any = None) -> GradientTransformation:
    r"""Exponential moving average of the updates, bias-corrected unless ``debias=False``.

    Update:     mu_t = decay mu_{t-1} + (1 - decay) u_t ;  u_t = mu_t / (1 - decay**t)
    State:      mu (Optax: ``ema``), count (with ``debias``).   Memory: +1x params.
    """
    average = scale_by_momentum(decay, ema=True, mu_dtype=accumulator_dtype)  # (+1x params)
    return chain(average, bias_correct(decay)) if debias else average


# --- small transforms gradchain had no name for ---------------------------------------------


@describe(found_nan="per leaf, True if that leaf of the last update held a NaN (bool scalar)")
class ZeroNansState(NamedTuple):
    found_nan: Any


def zero_nans() -> GradientTransformation:
    r"""Replace NaNs in the updates by 0, and record which leaves had one.

    Update:     u_t = where(isnan(u_t), 0, u_t)
    State:      found_nan -- one bool scalar per leaf (for the last update only).
                Memory: one bool per parameter array.
    Note:       Optax's ``zero_nans``. To skip the whole step instead, see
                ``gradchain.skip_non_finite``.
    """

    def init(params):
        return ZeroNansState(found_nan=jax.tree.map(lambda p: jnp.zeros([], jnp.bool_), params))

    def update(updates, state, params=None, **extra):
        found = jax.tree.map(lambda u: jnp.any(jnp.isnan(u)), updates)
        clean = jax.tree.map(lambda u: jnp.where(jnp.isnan(u), jnp.zeros_like(u), u), updates)
        return clean, ZeroNansState(found_nan=found)

    return GradientTransformation(init, update, name="zero_nans", preprocessing=True)


def keep_params_nonnegative() -> GradientTransformation:
    r"""Stop every parameter at 0: where p + u < 0, the update is -p.

    Update:     u_t = where(p_t + u_t < 0, -p_t, u_t)
    State:      none.   Memory: 0.
    Note:       Place it last in the chain (it reads the final step). Optax's
                ``keep_params_nonnegative``; a negative parameter is moved to 0.
    """

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):
        if params is None:
            _checks.refuse_missing_params("keep_params_nonnegative")
        _checks.check_same_structure("updates", updates, "params", params)

        def stop(u, p):
            p = jnp.asarray(p)
            return jnp.where(p + u < 0, (-p).astype(u.dtype), u)

        return jax.tree.map(stop, updates, params), state

    return GradientTransformation(init, update, name="keep_params_nonnegative")


def scale_by_param_block_norm(min_scale: float = 1e-3) -> GradientTransformation:
    r"""Multiply each leaf's update by its parameter's norm (at least ``min_scale``).

    Update:     u_t = u_t * max(||p_t||, min_scale), per leaf
    State:      none.   Memory: 0.
    Note:       Optax's ``scale_by_param_block_norm``; ``scale_by_param_block_rms`` is the
                same with the RMS.
    """
    _checks.check_non_negative("min_scale", min_scale)

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):
        if params is None:
            _checks.refuse_missing_params("scale_by_param_block_norm")

        def scale_leaf(u, p):
            refuse_if_sharded(jnp.asarray(p), "scale_by_param_block_norm (a norm per leaf)")
            c = compute_dtype(u.dtype, jnp.result_type(p))
            norm = jnp.sqrt(jnp.sum(jnp.abs(jnp.asarray(p).astype(c)) ** 2))
            return (u.astype(c) * jnp.maximum(norm, jnp.asarray(min_scale, c))).astype(u.dtype)

        return jax.tree.map(scale_leaf, updates, params), state

    return GradientTransformation(init, update, name="scale_by_param_block_norm")


@describe(
    is_initial_step="True until the first update (bool scalar): then the previous gradient "
    "is taken to be the current one",
    previous_gradient="the previous step's incoming update, one array per parameter",
)
class OptimisticGradientState(NamedTuple):
    is_initial_step: jax.Array
    previous_gradient: Any


def scale_by_optimistic_gradient(alpha: float = 1.0, beta: float = 1.0) -> GradientTransformation:
    r"""Optimistic gradient: extrapolate from the previous update.

    Update:     u_t = (alpha + beta) g_t - beta g_{t-1}   (g_0 := g_1 at the first step)
    State:      is_initial_step (bool scalar), previous_gradient.   Memory: +1x params.
    Args:       alpha, beta -- >= 0.
    Note:       Optax's ``scale_by_optimistic_gradient`` (field names kept); it acts on the
                incoming update. ``optimistic_gradient_descent`` is this and a learning rate.
    Reference:  Mokhtari, Ozdaglar & Pattathil, 2019; Daskalakis et al., 2018.
    """
    _checks.check_non_negative("alpha", alpha)
    _checks.check_non_negative("beta", beta)

    def init(params):
        return OptimisticGradientState(
            is_initial_step=jnp.asarray(True), previous_gradient=tree_zeros_like(params)
        )

    def update(updates, state, params=None, **extra):
        def step(u, prev):
            c = compute_dtype(u.dtype)
            a, b, uc = jnp.asarray(alpha, c), jnp.asarray(beta, c), u.astype(c)
            before = jnp.where(state.is_initial_step, uc, prev.astype(c))
            return ((a + b) * uc - b * before).astype(u.dtype), u.astype(prev.dtype)

        out, previous = tree_map_split(step, 2, updates, state.previous_gradient)
        return out, OptimisticGradientState(jnp.asarray(False), previous)

    return GradientTransformation(init, update, name="scale_by_optimistic_gradient")
