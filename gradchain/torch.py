"""Porting from torch.optim: constructors with torch's argument names, defaults and math.

``gradchain.torch.Adam(lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-2, amsgrad=True)`` takes
what ``torch.optim.Adam(params, ...)`` takes (without ``params``) and returns a gradchain
chain whose steps are torch's steps: tested side by side with torch.optim itself, 200 float64
steps on several tensors, to 1e-10 (``tests/test_torch_port.py``). The schedulers
(``StepLR``, ``CosineAnnealingLR``, ...) are gradchain schedules -- functions of the step
count -- with torch's step semantics: the learning rate of the step numbered ``t`` (0 first)
is torch's ``lr`` after ``t`` calls of ``scheduler.step()``, one per optimizer step. Pass one
as ``lr``. ``from_torch_state_dict`` turns a torch optimizer's ``state_dict()`` into the
gradchain state, so a run continues in JAX.

How torch's arguments become transforms (see docs/porting_from_torch.md for the table):

- ``maximize=True``: ``scale(-1.0)`` first -- the gradient is negated before anything else.
- ``weight_decay`` (coupled, torch's default): ``add_decayed_weights(wd)`` first in the
  chain (L2: it enters the moments). ``decoupled_weight_decay=True`` and ``AdamW``: the same
  transform just before the learning rate (torch's ``p *= 1 - lr * wd``).
- The learning rate is always the last member, ``scale_by_learning_rate(lr)``; ``lr`` may
  be a schedule.

This module never imports torch: it reads torch tensors through ``numpy.asarray``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradchain import _checks
from gradchain.base import GradientTransformation, chain, hyper_dtype
from gradchain.transforms import (
    AdadeltaState,
    BiasCorrectState,
    InfNormState,
    LearningRateState,
    MomentumState,
    RmsState,
    RpropState,
    RssState,
    StddevState,
    add_decayed_weights,
    bias_correct,
    scale,
    scale_by_adadelta,
    scale_by_inf_norm,
    scale_by_learning_rate,
    scale_by_momentum,
    scale_by_rms,
    scale_by_rprop,
    scale_by_rss,
    scale_by_stddev,
)
from gradchain.transforms.torch_forms import (
    AmsgradRawState,
    NadamScheduleState,
    RectifiedRmsTorchState,
    SgdMomentumState,
    bias_correct_nadam,
    scale_by_amsgrad_raw,
    scale_by_rectified_rms_torch,
    scale_by_sgd_momentum,
)

__all__ = [
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "CosineAnnealingLR",
    "ExponentialLR",
    "LinearLR",
    "MultiStepLR",
    "NAdam",
    "OneCycleLR",
    "RAdam",
    "RMSprop",
    "Rprop",
    "SequentialLR",
    "StepLR",
    "from_torch_state_dict",
]

LearningRate = float | Callable[[Any], Any]

# torch.optim arguments that choose an implementation, never the math: accepted and ignored.
_IMPLEMENTATION_ONLY = frozenset({"foreach", "fused", "capturable", "differentiable"})


def _check_implementation_args(name: str, given: dict[str, Any]) -> None:
    unknown = sorted(set(given) - _IMPLEMENTATION_ONLY)
    if unknown:
        raise TypeError(f"gradchain.torch.{name}() got unexpected keyword arguments {unknown}")


def _front(maximize: bool, weight_decay: float, coupled: bool) -> list[GradientTransformation]:
    """What torch does to the gradient before its own math: negate, then add L2 decay."""
    _checks.check_non_negative("weight_decay", weight_decay)
    parts = [scale(-1.0)] if maximize else []
    if weight_decay != 0 and coupled:
        parts.append(add_decayed_weights(weight_decay))  # L2: enters the moments
    return parts


def _back(lr: LearningRate, weight_decay: float, coupled: bool) -> list[GradientTransformation]:
    """Decoupled decay (torch's ``p *= 1 - lr * wd``), then the learning rate."""
    parts = [] if coupled or weight_decay == 0 else [add_decayed_weights(weight_decay)]
    return [*parts, scale_by_learning_rate(lr)]


def _betas(betas: Sequence[float]) -> tuple[float, float]:
    if len(betas) != 2:
        raise _checks.GradchainError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    return betas[0], betas[1]


def _ported(transform: GradientTransformation, keys: dict[type, dict[str, Any]], torch_name: str):
    """Record, on the chain, which torch state entry fills which state field: a key, or a pair
    (key, function applied to torch's array)."""
    transform.torch_state_keys = keys
    transform.torch_name = torch_name
    return transform


_STEP = {LearningRateState: {"count": "step"}}


def SGD(
    lr: LearningRate = 1e-3,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    *,
    maximize: bool = False,
    **implementation: Any,
) -> GradientTransformation:
    r"""torch.optim.SGD: gradient descent, with torch's momentum buffer and dampening.

    Update:     g <- -g (maximize) ;  g <- g + weight_decay * p
                momentum > 0: buf_1 = g, buf_t = momentum * buf + (1 - dampening) * g;
                g <- buf, or g + momentum * buf (nesterov) ;  p <- p - lr * g
    State:      momentum > 0: the buffer (``SgdMomentumState.mu``).   Memory: 1x params, else 0.
    Args:       torch's, same defaults (lr 1e-3).  ``foreach``, ``fused``, ``differentiable``
                are accepted and ignored (they choose torch's kernels, not the math).
    Note:       the first step copies g into the buffer; Optax's ``trace`` starts from 0 and
                adds g, which differs only when dampening > 0.
    Reference:  torch.optim.SGD; Sutskever et al., 2013.

    >>> import jax.numpy as jnp, gradchain.torch
    >>> opt = gradchain.torch.SGD(lr=0.1, momentum=0.9, dampening=0.5)
    >>> state = opt.init(jnp.zeros(1))
    >>> for _ in range(2):
    ...     updates, state = opt.update(jnp.ones(1), state, jnp.zeros(1))
    >>> updates.tolist()   # buffer: 1, then 0.9 * 1 + 0.5 * 1
    [-0.14000000059604645]
    """
    _check_implementation_args("SGD", implementation)
    _checks.check_non_negative("momentum", momentum)
    if nesterov and (momentum <= 0 or dampening != 0):
        raise _checks.GradchainError(
            "nesterov=True needs momentum > 0 and dampening = 0 (as torch.optim.SGD requires)"
        )
    parts = _front(maximize, weight_decay, coupled=True)
    if momentum != 0:
        parts.append(scale_by_sgd_momentum(momentum, dampening, nesterov=nesterov))
    keys = {SgdMomentumState: {"mu": "momentum_buffer"}, **_STEP}
    return _ported(chain(*parts, *_back(lr, weight_decay, True)), keys, "SGD")


def Adagrad(
    lr: LearningRate = 1e-2,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    *,
    maximize: bool = False,
    **implementation: Any,
) -> GradientTransformation:
    r"""torch.optim.Adagrad: divide by the root of the running sum of g**2 (eps outside).

    Update:     g <- -g (maximize) ;  g <- g + weight_decay * p ;  s <- s + g**2
                p <- p - lr_t / (1 + t * lr_decay) * g / (sqrt(s) + eps),  t = 0, 1, ...
    State:      sum_of_squares (``RssState``).   Memory: 1x params.
    Note:       Optax's adagrad starts s at 0.1 and puts eps = 1e-7 inside the root; torch
                starts at 0 with eps = 1e-10 outside. ``lr_decay`` becomes a schedule.
    Reference:  torch.optim.Adagrad; Duchi, Hazan & Singer, 2011.
    """
    _check_implementation_args("Adagrad", implementation)
    _checks.check_non_negative("lr_decay", lr_decay)
    rate = lr
    if lr_decay != 0:

        def rate(count):
            base = lr(count) if callable(lr) else lr
            return base / (1 + jnp.asarray(count).astype(hyper_dtype()) * lr_decay)

    chained = chain(
        *_front(maximize, weight_decay, coupled=True),
        scale_by_rss(initial_accumulator_value, eps, eps_root=0.0),
        scale_by_learning_rate(rate),
    )
    return _ported(chained, {RssState: {"sum_of_squares": "sum"}, **_STEP}, "Adagrad")


def RMSprop(
    lr: LearningRate = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    *,
    maximize: bool = False,
    **implementation: Any,
) -> GradientTransformation:
    r"""torch.optim.RMSprop: divide by sqrt of a moving average of g**2, eps outside the root.

    Update:     v <- alpha * v + (1 - alpha) * g**2 ;  centered: m <- EMA of g, v - m**2
                d = g / (sqrt(v) + eps) ;  momentum > 0: buf <- momentum * buf + d, d <- buf
                p <- p - lr * d
    State:      nu (``RmsState``) or mu, nu (``StddevState``, centered); momentum: mu.
                Memory: 1x params (+1x centered, +1x momentum).
    Note:       Optax's rmsprop: decay 0.9 and eps inside the root; torch: alpha 0.99, eps
                outside. This is ``gradchain.rmsprop(lr, alpha, eps, eps_in_sqrt=False, ...)``.
    Reference:  torch.optim.RMSprop; Tieleman & Hinton, 2012; Graves, 2013 (centered).
    """
    _check_implementation_args("RMSprop", implementation)
    _checks.check_non_negative("momentum", momentum)
    parts = _front(maximize, weight_decay, coupled=True)
    parts.append(
        scale_by_stddev(alpha, eps, eps_root=0.0) if centered else scale_by_rms(alpha, eps)
    )
    if momentum > 0:
        parts.append(scale_by_momentum(momentum))
    keys = {
        RmsState: {"nu": "square_avg"},
        StddevState: {"nu": "square_avg", "mu": "grad_avg"},
        MomentumState: {"mu": "momentum_buffer"},
        **_STEP,
    }
    return _ported(chain(*parts, scale_by_learning_rate(lr)), keys, "RMSprop")


_ADAM_KEYS = {
    MomentumState: {"mu": "exp_avg"},
    BiasCorrectState: {"count": "step"},
    RmsState: {"nu": "exp_avg_sq", "count": "step"},
    AmsgradRawState: {"nu": "exp_avg_sq", "nu_max": "max_exp_avg_sq", "count": "step"},
    **_STEP,
}


def Adam(
    lr: LearningRate = 1e-3,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    decoupled_weight_decay: bool = False,
    **implementation: Any,
) -> GradientTransformation:
    r"""torch.optim.Adam, with its coupled (L2) or decoupled weight decay and its AMSGrad.

    Update:     g <- -g (maximize) ;  g <- g + weight_decay * p (coupled)
                m <- b1 m + (1 - b1) g ;  v <- b2 v + (1 - b2) g**2
                amsgrad: v_max <- max(v_max, v), used in place of v
                p <- p - lr * [m / (1 - b1**t)] / (sqrt(v) / sqrt(1 - b2**t) + eps)
                           - lr * weight_decay * p (decoupled)
    State:      mu, count, nu (+ nu_max with amsgrad).   Memory: 2x params (3x amsgrad).
    Note:       torch's AMSGrad keeps the maximum of the *raw* v (``scale_by_amsgrad_raw``);
                Optax's of the bias-corrected v. Without amsgrad torch's denominator
                sqrt(v)/sqrt(1 - b2**t) + eps is Optax's sqrt(v/(1 - b2**t)) + eps, up to
                rounding. torch's weight_decay is L2 (it enters m and v), not AdamW's.
    Reference:  torch.optim.Adam; Kingma & Ba, 2015; Reddi et al., 2018.

    >>> import gradchain.torch
    >>> gradchain.torch.Adam(lr=1e-3, weight_decay=0.1).members[0]   # L2 comes first
    <add_decayed_weights>
    """
    _check_implementation_args("Adam", implementation)
    b1, b2 = _betas(betas)
    coupled = not decoupled_weight_decay
    rms = scale_by_amsgrad_raw(b2, eps) if amsgrad else scale_by_rms(b2, eps, bias_correction=True)
    chained = chain(
        *_front(maximize, weight_decay, coupled),
        scale_by_momentum(b1, ema=True),
        bias_correct(b1),
        rms,
        *_back(lr, weight_decay, coupled),
    )
    return _ported(chained, _ADAM_KEYS, "Adam")


def AdamW(
    lr: LearningRate = 1e-3,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    **implementation: Any,
) -> GradientTransformation:
    r"""torch.optim.AdamW: ``Adam(..., decoupled_weight_decay=True)`` with weight_decay 1e-2.

    Update:     Adam's, plus p <- p - lr * weight_decay * p (decoupled: not in m or v).
    State:      as ``Adam``.   Memory: 2x params (3x amsgrad).
    Note:       torch's default weight_decay is 1e-2, Optax's adamw 1e-4.
    Reference:  torch.optim.AdamW; Loshchilov & Hutter, 2019.
    """
    _check_implementation_args("AdamW", implementation)
    opt = Adam(lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
               decoupled_weight_decay=True)  # fmt: skip
    opt.torch_name = "AdamW"
    return opt


def NAdam(
    lr: LearningRate = 2e-3,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum_decay: float = 4e-3,
    decoupled_weight_decay: bool = False,
    *,
    maximize: bool = False,
    **implementation: Any,
) -> GradientTransformation:
    r"""torch.optim.NAdam: Adam with Nesterov momentum under Dozat's momentum schedule.

    Update:     mu_t = b1 (1 - 0.5 * 0.96**(t psi)) ;  P_t = mu_1 ... mu_t ;  m, v as Adam's
                p <- p - lr [mu_{t+1} m / (1 - P_t mu_{t+1}) + (1 - mu_t) g / (1 - P_t)]
                           / (sqrt(v / (1 - b2**t)) + eps)
    State:      mu, count and mu_product (``NadamScheduleState``), nu.   Memory: 2x params.
    Note:       ``gradchain.nadam(lr, momentum_decay=psi)`` is the same math; without
                ``momentum_decay`` it is Optax's NAdam (constant mu_t = b1).
    Reference:  torch.optim.NAdam; Dozat, 2016.
    """
    _check_implementation_args("NAdam", implementation)
    b1, b2 = _betas(betas)
    coupled = not decoupled_weight_decay
    chained = chain(
        *_front(maximize, weight_decay, coupled),
        scale_by_momentum(b1, ema=True),
        bias_correct_nadam(b1, momentum_decay),
        scale_by_rms(b2, eps, bias_correction=True),
        *_back(lr, weight_decay, coupled),
    )
    keys = {
        MomentumState: {"mu": "exp_avg"},
        NadamScheduleState: {"count": "step", "mu_product": "mu_product"},
        RmsState: {"nu": "exp_avg_sq", "count": "step"},
        **_STEP,
    }
    return _ported(chained, keys, "NAdam")


def RAdam(
    lr: LearningRate = 1e-3,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    *,
    maximize: bool = False,
    **implementation: Any,
) -> GradientTransformation:
    r"""torch.optim.RAdam: Adam rectified while the variance estimate is unreliable.

    Update:     m_hat = bias-corrected EMA of g (b1) ;  rectified while rho_t > 5 (see
                ``scale_by_rectified_rms_torch``) ;  p <- p - lr * u (and decoupled decay).
    State:      mu, count, nu (``RectifiedRmsTorchState``).   Memory: 2x params.
    Note:       torch adds eps to the raw sqrt(v) before the bias correction; Optax's radam
                adds it after. With eps = 1e-8 the two differ at about 1e-8 relative.
    Reference:  torch.optim.RAdam; Liu et al., 2020.
    """
    _check_implementation_args("RAdam", implementation)
    b1, b2 = _betas(betas)
    coupled = not decoupled_weight_decay
    chained = chain(
        *_front(maximize, weight_decay, coupled),
        scale_by_momentum(b1, ema=True),
        bias_correct(b1),
        scale_by_rectified_rms_torch(b2, eps),
        *_back(lr, weight_decay, coupled),
    )
    keys = {
        MomentumState: {"mu": "exp_avg"},
        BiasCorrectState: {"count": "step"},
        RectifiedRmsTorchState: {"nu": "exp_avg_sq", "count": "step"},
        **_STEP,
    }
    return _ported(chained, keys, "RAdam")


def Adamax(
    lr: LearningRate = 2e-3,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    *,
    maximize: bool = False,
    **implementation: Any,
) -> GradientTransformation:
    r"""torch.optim.Adamax: Adam with an exponentially weighted infinity norm.

    Update:     m <- b1 m + (1 - b1) g ;  u <- max(b2 u, |g| + eps)
                p <- p - lr / (1 - b1**t) * m / u
    State:      mu, count, nu (``InfNormState``).   Memory: 2x params.
    Note:       the same math as Optax's adamax (eps inside the max in both).
    Reference:  torch.optim.Adamax; Kingma & Ba, 2015, section 7.1.
    """
    _check_implementation_args("Adamax", implementation)
    b1, b2 = _betas(betas)
    chained = chain(
        *_front(maximize, weight_decay, coupled=True),
        scale_by_momentum(b1, ema=True),
        bias_correct(b1),
        scale_by_inf_norm(b2, eps),
        scale_by_learning_rate(lr),
    )
    keys = {
        MomentumState: {"mu": "exp_avg"},
        BiasCorrectState: {"count": "step"},
        InfNormState: {"nu": "exp_inf"},
        **_STEP,
    }
    return _ported(chained, keys, "Adamax")


def Rprop(
    lr: float = 1e-2,
    etas: Sequence[float] = (0.5, 1.2),
    step_sizes: Sequence[float] = (1e-6, 50.0),
    *,
    maximize: bool = False,
    **implementation: Any,
) -> GradientTransformation:
    r"""torch.optim.Rprop: sign steps with per-coordinate step sizes (iRprop-).

    Update:     see ``scale_by_rprop``: p <- p - sign(g') * step_size.
    State:      step_size, previous_sign (int8) (``RpropState``).   Memory: 1.25x params
                (float32; torch keeps the whole previous gradient, 2x).
    Args:       lr -- the initial step size of every coordinate (a number: torch reads it
                once, at the first step, so a scheduler has no effect on Rprop).
                etas -- (eta_minus, eta_plus).  step_sizes -- (min, max).
    Reference:  torch.optim.Rprop; Riedmiller & Braun, 1993.
    """
    _check_implementation_args("Rprop", implementation)
    if callable(lr):
        raise _checks.GradchainError(
            "Rprop's lr is the initial step size, read once: give a number, not a schedule"
        )
    (eta_minus, eta_plus), (lo, hi) = etas, step_sizes
    # scale_by_rprop emits a step up the gradient; torch descends unless maximize.
    rprop = scale_by_rprop(lr, eta_minus, eta_plus, lo, hi, clip_every_step=True)
    chained = chain(rprop) if maximize else chain(rprop, scale(-1.0))
    keys = {RpropState: {"previous_sign": ("prev", np.sign), "step_size": "step_size"}}
    return _ported(chained, keys, "Rprop")


def Adadelta(
    lr: LearningRate = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    *,
    maximize: bool = False,
    **implementation: Any,
) -> GradientTransformation:
    r"""torch.optim.Adadelta: unit-corrected steps from two moving averages.

    Update:     v <- rho v + (1 - rho) g**2 ;  d = sqrt(x + eps) / sqrt(v + eps) * g
                x <- rho x + (1 - rho) d**2 ;  p <- p - lr * d
    State:      the two averages (``scale_by_adadelta``'s state).   Memory: 2x params.
    Note:       the same math as Optax's adadelta; torch's default lr is 1.0.
    Reference:  torch.optim.Adadelta; Zeiler, 2012.
    """
    _check_implementation_args("Adadelta", implementation)
    chained = chain(
        *_front(maximize, weight_decay, coupled=True),
        scale_by_adadelta(rho, eps),
        scale_by_learning_rate(lr),
    )
    keys = {AdadeltaState: {"mean_sq_grad": "square_avg", "mean_sq_update": "acc_delta"}, **_STEP}
    return _ported(chained, keys, "Adadelta")


# --- learning-rate schedulers --------------------------------------------------------------
# Each returns a function of the int32 step count t (0 at the first step) whose value is
# torch's lr after t calls of scheduler.step(). They are closed forms (torch mostly updates
# recursively, lr <- lr * factor); the two agree to rounding, about 1e-15 relative.


def _steps(count: Any) -> jax.Array:
    return jnp.asarray(count).astype(hyper_dtype())


def _const(x: float) -> jax.Array:
    return jnp.asarray(x, hyper_dtype())


def StepLR(lr: float, step_size: int, gamma: float = 0.1) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.StepLR: ``lr * gamma ** (t // step_size)``.

    Args:  lr -- the optimizer's initial lr.  step_size -- steps between decays, >= 1.
    """
    if step_size < 1:
        raise _checks.GradchainError(f"step_size must be >= 1, got {step_size}")

    def schedule(count):
        return _const(lr) * _const(gamma) ** jnp.floor(_steps(count) / step_size)

    return schedule


def MultiStepLR(
    lr: float, milestones: Sequence[int], gamma: float = 0.1
) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.MultiStepLR: ``lr * gamma ** (milestones reached so far)``.

    A milestone listed twice decays twice, as in torch.
    """
    marks = sorted(int(m) for m in milestones)

    def schedule(count):
        t = _steps(count)
        reached = sum((t >= m).astype(t.dtype) for m in marks) if marks else _const(0.0)
        return _const(lr) * _const(gamma) ** reached

    return schedule


def ExponentialLR(lr: float, gamma: float) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.ExponentialLR: ``lr * gamma ** t``."""

    def schedule(count):
        return _const(lr) * _const(gamma) ** _steps(count)

    return schedule


def CosineAnnealingLR(lr: float, T_max: int, eta_min: float = 0.0) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.CosineAnnealingLR: half a cosine from lr to eta_min in T_max
    steps, ``eta_min + (lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``.

    Past T_max it climbs back, as torch's does (the cosine is periodic with period 2 T_max);
    for warm restarts use ``SequentialLR`` or torch's ``CosineAnnealingWarmRestarts`` form.
    """
    if T_max < 1:
        raise _checks.GradchainError(f"T_max must be >= 1, got {T_max}")

    def schedule(count):
        cosine = jnp.cos(math.pi * _steps(count) / T_max)
        return _const(eta_min) + (_const(lr) - eta_min) * (1 + cosine) / 2

    return schedule


def LinearLR(
    lr: float, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5
) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.LinearLR: the factor moves linearly from start_factor to
    end_factor over total_iters steps, then stays: ``lr * (s + (e - s) * min(t, T) / T)``."""
    if not 0 < start_factor <= 1 or not 0 <= end_factor <= 1:
        raise _checks.GradchainError(
            f"LinearLR needs 0 < start_factor <= 1 and 0 <= end_factor <= 1, got "
            f"{start_factor} and {end_factor}"
        )

    def schedule(count):
        done = jnp.minimum(_steps(count), total_iters) / max(total_iters, 1)
        return _const(lr) * (start_factor + (end_factor - start_factor) * done)

    return schedule


def OneCycleLR(
    max_lr: float,
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.OneCycleLR's learning rate: up from max_lr / div_factor to
    max_lr over pct_start of the steps, then down to max_lr / div_factor / final_div_factor
    (three_phase: down to the start first, then to the minimum).

    Note: torch's ``cycle_momentum=True`` (its default) also cycles SGD's momentum or Adam's
    beta1 between 0.85 and 0.95; this schedule is the learning rate only, so a run matches
    torch's with ``cycle_momentum=False``. Past total_steps torch raises; this schedule
    continues the last phase's formula.
    """
    _checks.check_choice("anneal_strategy", anneal_strategy, ("cos", "linear"))
    if total_steps is None:
        if epochs is None or steps_per_epoch is None:
            raise _checks.GradchainError(
                "OneCycleLR needs total_steps, or both epochs and steps_per_epoch"
            )
        total_steps = epochs * steps_per_epoch
    initial = max_lr / div_factor
    minimum = initial / final_div_factor
    if three_phase:
        phases = [
            (pct_start * total_steps - 1, initial, max_lr),
            (2 * pct_start * total_steps - 2, max_lr, initial),
            (total_steps - 1, initial, minimum),
        ]
    else:
        phases = [
            (pct_start * total_steps - 1, initial, max_lr),
            (total_steps - 1, max_lr, minimum),
        ]

    def anneal(start, end, pct):
        if anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (jnp.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    pieces, begin = [], 0.0
    for end, lo, hi in phases:  # torch: each phase starts where the one before it ended
        pieces.append((begin, end, lo, hi))
        begin = end

    def schedule(count):
        t = _steps(count)
        begin, end, lo, hi = pieces[-1]  # the last phase also covers any step past its end
        lr = anneal(lo, hi, (t - begin) / (end - begin))
        for begin, end, lo, hi in reversed(pieces[:-1]):
            lr = jnp.where(t <= end, anneal(lo, hi, (t - begin) / (end - begin)), lr)
        return lr

    return schedule


def SequentialLR(
    schedules: Sequence[Callable[[Any], Any]], milestones: Sequence[int]
) -> Callable[[Any], jax.Array]:
    """torch.optim.lr_scheduler.SequentialLR: ``schedules[i]`` from milestone ``i - 1`` on,
    restarted at its own step 0 there (torch calls ``scheduler.step(0)`` at a milestone).

    Warmup then cosine, as in torch::

        SequentialLR([LinearLR(lr, 0.01, 1.0, total_iters=100),
                      CosineAnnealingLR(lr, T_max=900)], milestones=[100])
    """
    if len(milestones) != len(schedules) - 1:
        raise _checks.GradchainError(
            f"SequentialLR needs one milestone fewer than schedules: got {len(schedules)} "
            f"schedules and {len(milestones)} milestones"
        )
    marks = [int(m) for m in milestones]

    def schedule(count):
        count = jnp.asarray(count)
        lr = jnp.asarray(schedules[0](count)).astype(hyper_dtype())
        for mark, sched in zip(marks, schedules[1:]):
            later = jnp.asarray(sched(jnp.maximum(count - mark, 0))).astype(hyper_dtype())
            lr = jnp.where(count >= mark, later, lr)
        return lr

    return schedule


# --- continuing a torch run ------------------------------------------------------------


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor: no torch import needed to read it
        x = x.detach().cpu()
        if hasattr(x, "resolve_conj"):
            x = x.resolve_conj()
        return x.numpy()
    return np.asarray(x)


_GROUP_MATH = ("lr", "betas", "eps", "weight_decay", "momentum", "dampening", "alpha",
               "centered", "nesterov", "amsgrad", "maximize", "lr_decay", "momentum_decay",
               "initial_accumulator_value", "rho", "etas", "step_sizes",
               "decoupled_weight_decay")  # fmt: skip


def from_torch_state_dict(
    optimizer: GradientTransformation,
    state_dict: dict[str, Any],
    params: Any,
    *,
    step: int | None = None,
) -> Any:
    """Convert ``torch_optimizer.state_dict()`` into the state of a ``gradchain.torch`` chain.

    Args:       optimizer -- built by ``gradchain.torch`` with the same arguments as the torch
                optimizer.  state_dict -- ``torch_optimizer.state_dict()``.  params -- the
                JAX params; their leaves, in ``jax.tree.leaves`` order, are torch's params in
                the order the torch optimizer was given them.  step -- the step count for
                optimizers whose torch state has none (SGD); otherwise read from ``step``.
    Returns:    the gradchain state: the next ``optimizer.update`` takes torch's next step.
    Note:       torch keeps one step counter per tensor; gradchain one per chain, so they
                must agree. The hyperparameters come from ``optimizer``, not the state_dict:
                with several param groups of different hyperparameters, convert each group's
                params with its own optimizer (see ``gradchain.partition``).
    """
    keys = getattr(optimizer, "torch_state_keys", None)
    if keys is None:
        raise _checks.GradchainError(
            "from_torch_state_dict needs an optimizer built by gradchain.torch "
            f"(e.g. gradchain.torch.Adam(...)), got {optimizer!r}"
        )
    groups = state_dict["param_groups"]
    for g in groups[1:]:
        differ = [k for k in _GROUP_MATH if k in g and g[k] != groups[0].get(k)]
        if differ:
            raise _checks.GradchainError(
                f"the torch optimizer has param groups with different {differ}; a gradchain.torch"
                " optimizer is one group: convert each group's params separately"
            )
    indices = [i for g in groups for i in g["params"]]
    leaves, treedef = jax.tree.flatten(params)
    if len(indices) != len(leaves):
        raise _checks.GradchainError(
            f"the torch optimizer has {len(indices)} params but params has {len(leaves)} leaves"
        )
    per_param = [state_dict["state"].get(i, {}) for i in indices]
    torch_steps = {float(_as_numpy(s["step"])) for s in per_param if "step" in s}
    if len(torch_steps) > 1:
        raise _checks.GradchainError(
            f"torch's params were stepped different numbers of times ({sorted(torch_steps)}); "
            "gradchain keeps one step count per optimizer"
        )
    if step is None:
        step = int(torch_steps.pop()) if torch_steps else 0

    def per_param_tree(key, like, convert=None):
        like_leaves = treedef.flatten_up_to(like)
        out = []
        for i, (entry, ref, leaf) in enumerate(zip(per_param, like_leaves, leaves)):
            value = entry.get(key)
            if value is None:
                out.append(ref)
                continue
            value = _as_numpy(value) if convert is None else convert(_as_numpy(value))
            if value.shape != np.shape(leaf):
                raise _checks.GradchainError(
                    f"torch's {key} of param {indices[i]} has shape {value.shape}, but the "
                    f"matching leaf of params has shape {np.shape(leaf)}"
                )
            out.append(jnp.asarray(value, dtype=ref.dtype))
        return treedef.unflatten(out)

    def scalar(key, like):
        if key == "step":
            return jnp.asarray(step, like.dtype)
        values = {float(_as_numpy(s[key])) for s in per_param if key in s}
        return jnp.asarray(values.pop(), like.dtype) if values else like

    new_state = []
    for member_state in optimizer.init(params):
        fields = keys.get(type(member_state), {})
        replaced = {}
        for field, key in fields.items():
            like = getattr(member_state, field)
            if like is None:
                continue
            key, convert = key if isinstance(key, tuple) else (key, None)
            if key in ("step", "mu_product"):
                replaced[field] = scalar(key, like)
            else:
                replaced[field] = per_param_tree(key, like, convert)
        if isinstance(member_state, SgdMomentumState):
            has_buffer = any(s.get("momentum_buffer") is not None for s in per_param)
            replaced["count"] = jnp.asarray(max(step, 1) if has_buffer else 0, jnp.int32)
        new_state.append(member_state._replace(**replaced) if replaced else member_state)
    return tuple(new_state)
