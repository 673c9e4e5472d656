"""torch.optim's ten optimizers as gradchain chains: torch's names, defaults and math.

Each constructor is live (``gradchain.live``) under torch's argument names: what torch keeps
in ``param_groups`` and lets you change between steps (``param_group["lr"] = ...``) is
``gradchain.set_hyperparam(state, "lr", ...)`` here -- lr, eps, alpha, dampening, rho,
momentum_decay, lr_decay, initial_accumulator_value. Fixed at construction: ``betas`` (a
pair), ``etas`` and ``step_sizes``, the flags, and ``weight_decay`` and SGD's and RMSprop's
``momentum``, whose zero or non-zero value decides which transforms the chain holds.

torch's cycled momentum: an ``lr`` schedule built with ``cycle_momentum=True`` (``OneCycleLR``
and ``CyclicLR``, torch's default) carries ``.momentum``, and the optimizer takes it where
torch's scheduler sets it -- as ``momentum`` (SGD, RMSprop, Muon) or as ``betas[0]`` (Adam,
AdamW, NAdam, RAdam, Adamax), in place of the number given (which is checked first, as torch's
constructor checks it) -- read afresh each step (``gradchain.torch.cycled``). The optimizers
with neither refuse such an ``lr`` with torch's reason. ``momentum`` or ``betas[0]`` may also
be given a schedule directly.

Each constructor records on the transform which torch ``state_dict`` entry fills which state
slot (``torch_state_keys``), for ``gradchain.torch.from_torch_state_dict``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradchain import _checks
from gradchain.base import GradientTransformation, LearningRate, chain, hyperparam_dtype
from gradchain.combine.live import live
from gradchain.torch.cycled import idle_unless, with_scheduled_value
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
from gradchain.transforms.momentum import (
    NadamScheduleState,
    SgdMomentumState,
    bias_correct_nadam,
    scale_by_sgd_momentum,
)
from gradchain.transforms.preconditioners import AmsgradRawState, scale_by_amsgrad_raw
from gradchain.transforms.rectified import RectifiedRmsTorchState, scale_by_rectified_rms_torch

__all__ = ["SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop",
           "Rprop"]  # fmt: skip


# torch.optim arguments that choose an implementation, never the math: accepted and ignored.
_IMPLEMENTATION_ONLY = frozenset({"foreach", "fused", "capturable", "differentiable"})


# gradchain's own arguments, which a torch param_group has no entry for.
_NOT_TORCH_ARGUMENTS = frozenset({"implementation", "ns_dtype", "lr_dtype"})


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


def _betas(betas: Sequence[float], who: str) -> tuple[Any, float]:
    """torch's check: a pair, each in [0, 1) ("Invalid beta parameter at index i"); beta1 may
    be a schedule (torch's cycle_momentum sets betas[0] only)."""
    if len(betas) != 2:
        raise _checks.GradchainError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    if callable(betas[1]):
        raise _checks.GradchainError(
            f"betas[1]: {who} takes a number; only betas[0] may be a schedule (a cycled "
            f"momentum, OneCycleLR or CyclicLR's .momentum), as torch's schedulers cycle it"
        )
    for i, beta in enumerate(betas):
        if callable(beta) or isinstance(beta, jax.core.Tracer):
            continue
        if not 0.0 <= beta < 1.0:
            raise _checks.GradchainError(
                f"betas[{i}] must be in [0, 1), got {beta} (torch: Invalid beta parameter at "
                f"index {i})"
            )
    return betas[0], betas[1]


def _first_moment(b1: Any, correct: Callable[[Any], GradientTransformation]) -> list:
    """Adam's first moment (an EMA of g, torch's ``exp_avg.lerp_(g, 1 - b1)``) and its bias
    correction ``correct(b1)``; a schedule as b1 (torch's cycled beta1) enters both with each
    step's value, as torch reads ``group["betas"]`` afresh at every step."""
    if not callable(b1):
        return [scale_by_momentum(b1, ema=True), correct(b1)]
    return [with_scheduled_value(lambda b: scale_by_momentum(b, ema=True), b1),
            with_scheduled_value(correct, b1)]  # fmt: skip


# torch's ValueError when a scheduler with cycle_momentum=True meets an optimizer whose
# defaults hold neither "momentum" nor "betas" (OneCycleLR, CyclicLR).
_NO_MOMENTUM = "optimizer must support momentum or beta1 with `cycle_momentum` option enabled"


def _take_cycled_momentum(
    name: str, signature: inspect.Signature, bound: inspect.BoundArguments
) -> bool:
    """torch's cycle_momentum: an ``lr`` schedule with ``.momentum`` sets ``momentum`` or
    ``betas[0]`` (a schedule given there already is kept). True if it changed an argument."""
    lr = bound.arguments.get("lr")
    cycled = getattr(lr, "momentum", None) if callable(lr) else None
    if cycled is None:
        return False
    parameters = signature.parameters
    if "momentum" in parameters:
        if callable(bound.arguments.get("momentum")):
            return False
        bound.arguments["momentum"] = cycled
        return True
    if "betas" in parameters:
        betas = tuple(bound.arguments.get("betas", parameters["betas"].default))
        if betas and callable(betas[0]):
            return False
        bound.arguments["betas"] = (cycled, *betas[1:])
        return True
    raise _checks.GradchainError(
        f"{name}: the lr schedule cycles the momentum (it was built with cycle_momentum=True, "
        f"torch's default), and {name} has neither momentum nor betas -- torch: {_NO_MOMENTUM}. "
        "Build the schedule with cycle_momentum=False."
    )


def _is_torch_tensor(value: Any) -> bool:
    return type(value).__module__.split(".")[0] == "torch"


def _torch_dtype(value: Any) -> np.dtype:
    """The numpy dtype of a torch tensor (read without importing torch)."""
    return np.asarray(value.detach() if hasattr(value, "detach") else value).dtype


def _plain(name: str, value: Any) -> Any:
    """A torch tensor given as a number (``lr=torch.tensor(1e-3)``, tensor ``betas``) becomes
    a Python float, read once, as torch reads a 1-element tensor; other values pass through."""
    if isinstance(value, tuple | list) and any(_is_torch_tensor(v) for v in value):
        return type(value)(_plain(f"{name}[{i}]", v) for i, v in enumerate(value))
    if not _is_torch_tensor(value):
        return value
    array = np.asarray(value.detach() if hasattr(value, "detach") else value)
    if array.size != 1:
        raise _checks.GradchainError(
            f"{name} as a tensor must have one element, got shape {array.shape} (torch: "
            f"Tensor {name} must be 1-element)"
        )
    return float(array.reshape(()))


def _ported(keys: dict[type, dict[str, Any]], static: tuple[str, ...] = ("weight_decay",)):
    """Decorator: make a torch constructor live (``static`` stays fixed) and record, on the
    transform it returns, which torch state entry fills which state field of its chain: a key,
    or a pair (key, function applied to torch's array)."""

    def decorate(factory: Callable[..., GradientTransformation]):
        built = live(factory, static=static)
        signature = inspect.signature(factory)

        @functools.wraps(factory)
        def make(*args: Any, **kwargs: Any) -> GradientTransformation:
            bound = signature.bind(*args, **kwargs)
            lr = bound.arguments.get("lr")
            if "lr_dtype" in signature.parameters and _is_torch_tensor(lr):
                # torch keeps a tensor lr and computes with it in its dtype (Muon)
                bound.arguments.setdefault("lr_dtype", _torch_dtype(lr))
            for name, value in bound.arguments.items():  # torch tensors as numbers: floats
                bound.arguments[name] = _plain(name, value)
            if _take_cycled_momentum(factory.__name__, signature, bound):
                # torch checks the constructor's own numbers, then its scheduler replaces them
                given = signature.bind(*args, **kwargs)
                for name, value in given.arguments.items():
                    given.arguments[name] = _plain(name, value)
                built(*given.args, **given.kwargs)
            transform = built(*bound.args, **bound.kwargs)
            bound.apply_defaults()
            transform.torch_state_keys, transform.torch_name = keys, factory.__name__
            # torch's param_group entries, for to_torch_state_dict: torch's arguments only
            transform.torch_arguments = {
                k: v for k, v in bound.arguments.items() if k not in _NOT_TORCH_ARGUMENTS
            }
            return transform

        make.live = True  # make.__wrapped__ is the chain's factory (functools.wraps)
        return make

    return decorate


_STEP = {LearningRateState: {"count": "step"}}


@_ported({SgdMomentumState: {"mu": "momentum_buffer"}, **_STEP}, ("momentum", "weight_decay"))
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
    cycled = callable(momentum)  # a schedule: OneCycleLR / CyclicLR's cycled momentum
    if not cycled:
        _checks.check_non_negative("momentum", momentum)
    damped = not isinstance(dampening, jax.core.Tracer) and dampening != 0  # checked when known
    if nesterov and ((not cycled and momentum <= 0) or damped):
        raise _checks.GradchainError(
            "nesterov=True needs momentum > 0 and dampening = 0 (as torch.optim.SGD requires)"
        )
    parts = _front(maximize, weight_decay, coupled=True)
    if cycled:  # torch: the buffer only at a step whose momentum != 0

        def make(m):
            inner = scale_by_sgd_momentum(m, dampening, nesterov=nesterov)
            return idle_unless(inner, m, lambda v: v != 0)

        parts.append(with_scheduled_value(make, momentum))
    elif momentum != 0:
        parts.append(scale_by_sgd_momentum(momentum, dampening, nesterov=nesterov))
    return chain(*parts, *_back(lr, weight_decay, True))


@_ported({RssState: {"sum_of_squares": "sum"}, **_STEP})
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

    def rate(count):  # torch's clr = lr / (1 + (step - 1) * lr_decay), always computed
        c = hyperparam_dtype()
        base = jnp.asarray(lr(count) if callable(lr) else lr, c)
        return base / (1 + jnp.asarray(count).astype(c) * jnp.asarray(lr_decay, c))

    return chain(
        *_front(maximize, weight_decay, coupled=True),
        scale_by_rss(initial_accumulator_value, eps, eps_root=0.0),
        scale_by_learning_rate(rate),
    )


_RMSPROP_KEYS = {
    RmsState: {"nu": "square_avg"},
    StddevState: {"nu": "square_avg", "mu": "grad_avg"},
    MomentumState: {"mu": "momentum_buffer"},
    **_STEP,
}


@_ported(_RMSPROP_KEYS, ("momentum", "weight_decay"))
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
    cycled = callable(momentum)  # a schedule: OneCycleLR / CyclicLR's cycled momentum
    if not cycled:
        _checks.check_non_negative("momentum", momentum)
    parts = _front(maximize, weight_decay, coupled=True)
    statistic = scale_by_stddev if centered else scale_by_rms
    parts.append(statistic(alpha, eps, eps_in_sqrt=False))  # torch: eps outside the root
    if cycled:  # torch: the buffer only at a step whose momentum > 0
        parts.append(with_scheduled_value(
            lambda m: idle_unless(scale_by_momentum(m), m, lambda v: v > 0), momentum))  # fmt: skip
    elif momentum > 0:
        parts.append(scale_by_momentum(momentum))
    return chain(*parts, scale_by_learning_rate(lr))


_ADAM_KEYS = {
    MomentumState: {"mu": "exp_avg"},
    BiasCorrectState: {"count": "step"},
    RmsState: {"nu": "exp_avg_sq", "count": "step"},
    AmsgradRawState: {"nu": "exp_avg_sq", "nu_max": "max_exp_avg_sq", "count": "step"},
    **_STEP,
}


@_ported(_ADAM_KEYS)
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
    >>> gradchain.torch.Adam(lr=1e-3, weight_decay=0.1).children[0].transform.members[0]  # L2 first
    <add_decayed_weights>
    """
    _check_implementation_args("Adam", implementation)
    b1, b2 = _betas(betas, "Adam")
    coupled = not decoupled_weight_decay
    rms = scale_by_amsgrad_raw(b2, eps) if amsgrad else _adam_rms(b2, eps)
    return chain(
        *_front(maximize, weight_decay, coupled),
        *_first_moment(b1, bias_correct),  # cycled: today's beta1, in m and in 1 - b1**t
        rms,
        *_back(lr, weight_decay, coupled),
    )


def _adam_rms(b2: float, eps: float) -> GradientTransformation:
    """torch's sqrt(v) / sqrt(1 - b2**t) + eps: bias-corrected, eps outside the root."""
    return scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True)


@_ported(_ADAM_KEYS)
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
    return Adam.__wrapped__(lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                            decoupled_weight_decay=True)  # fmt: skip


_NADAM_KEYS = {
    MomentumState: {"mu": "exp_avg"},
    NadamScheduleState: {"count": "step", "mu_product": "mu_product"},
    RmsState: {"nu": "exp_avg_sq", "count": "step"},
    **_STEP,
}


@_ported(_NADAM_KEYS)
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
    b1, b2 = _betas(betas, "NAdam")
    coupled = not decoupled_weight_decay
    return chain(
        *_front(maximize, weight_decay, coupled),
        *_first_moment(b1, lambda b: bias_correct_nadam(b, momentum_decay)),
        _adam_rms(b2, eps),
        *_back(lr, weight_decay, coupled),
    )


_RADAM_KEYS = {
    MomentumState: {"mu": "exp_avg"},
    BiasCorrectState: {"count": "step"},
    RectifiedRmsTorchState: {"nu": "exp_avg_sq", "count": "step"},
    **_STEP,
}


@_ported(_RADAM_KEYS)
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
    b1, b2 = _betas(betas, "RAdam")
    coupled = not decoupled_weight_decay
    return chain(
        *_front(maximize, weight_decay, coupled),
        *_first_moment(b1, bias_correct),
        scale_by_rectified_rms_torch(b2, eps),
        *_back(lr, weight_decay, coupled),
    )


_ADAMAX_KEYS = {
    MomentumState: {"mu": "exp_avg"},
    BiasCorrectState: {"count": "step"},
    InfNormState: {"nu": "exp_inf"},
    **_STEP,
}


@_ported(_ADAMAX_KEYS)
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
    b1, b2 = _betas(betas, "Adamax")
    return chain(
        *_front(maximize, weight_decay, coupled=True),
        *_first_moment(b1, bias_correct),
        scale_by_inf_norm(b2, eps),
        scale_by_learning_rate(lr),
    )


@_ported({RpropState: {"previous_sign": ("prev", np.sign), "step_size": "step_size"}}, ())
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
    if not 0.0 < eta_minus < 1.0 < eta_plus:
        raise _checks.GradchainError(
            f"etas must satisfy 0 < etas[0] < 1 < etas[1], got {tuple(etas)} (torch: Invalid "
            f"eta values)"
        )
    # scale_by_rprop emits a step up the gradient; torch descends unless maximize.
    rprop = scale_by_rprop(lr, eta_minus, eta_plus, lo, hi, clip_every_step=True)
    return chain(rprop) if maximize else chain(rprop, scale(-1.0))


_ADADELTA_KEYS = {
    AdadeltaState: {"mean_sq_grad": "square_avg", "mean_sq_update": "acc_delta"},
    **_STEP,
}


@_ported(_ADADELTA_KEYS)
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
    return chain(
        *_front(maximize, weight_decay, coupled=True),
        scale_by_adadelta(rho, eps),
        scale_by_learning_rate(lr),
    )
