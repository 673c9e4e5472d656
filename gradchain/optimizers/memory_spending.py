"""Optimizers that spend memory on purpose: each adds a slot to the textbook ladder, or
changes what Adam's slots hold, and says what that buys.

Keyword names and defaults follow Optax's optimizer of the same name (core ``optax`` or
``optax.contrib``); where gradchain differs, the docstring's Note says so. Memory multiples
count param-sized slots (float32 AdamW = 2x).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gradchain._checks import GradchainError
from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.optimizers.textbook import adamw
from gradchain.schedules import linear_schedule
from gradchain.transforms import (
    add_decayed_weights,
    bias_correct,
    scale,
    scale_by_inf_norm,
    scale_by_learning_rate,
    scale_by_momentum,
    scale_by_rms,
)
from gradchain.transforms.adadelta import scale_by_adadelta
from gradchain.transforms.extra_moments import (
    add_slow_momentum,
    scale_by_additive_rms,
    scale_by_gradient_difference,
)
from gradchain.transforms.optax_names import scale_by_belief
from gradchain.transforms.rectified import (
    _quarter_power,
    scale_by_previous_rms,
    scale_by_rectified_rms,
)
from gradchain.transforms.schedule_free import scale_by_schedule_free
from gradchain.transforms.sign_adaptive import scale_by_rprop
from gradchain.transforms.trust_ratio import scale_by_trust_ratio

__all__ = [
    "adabelief",
    "adadelta",
    "adamaxw",
    "ademamix",
    "adan",
    "adopt",
    "lamb",
    "lars",
    "nadamw",
    "radam",
    "rprop",
    "schedule_free_adamw",
    "yogi",
]


def _adam_denominator(b2, eps, eps_root=0.0, nu_dtype=None) -> GradientTransformation:
    """Adam's denominator: bias-corrected RMS of the gradient, eps outside the root."""
    return scale_by_rms(
        b2, eps, eps_in_sqrt=False, bias_correction=True, eps_root=eps_root, nu_dtype=nu_dtype
    )


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
        scale_by_momentum(b1, ema=True, mu_dtype=mu_dtype),  # fast momentum   (+1x params)
        bias_correct(b1),
        add_slow_momentum(b3, alpha, mu_dtype=mu_dtype),  # + alpha * slow momentum (+1x)
        _adam_denominator(b2, eps, eps_root, nu_dtype),  # second moment (+1x params)
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


@live(static=("warmup_steps",), own_schedules=("learning_rate",))  # reads lr(t + 1) too
def schedule_free_adamw(
    learning_rate: LearningRate = 0.0025,
    warmup_steps: int | None = None,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    weight_lr_power: float = 2.0,
    state_dtype: Any = None,
    *,
    z_dtype: Any = None,
) -> GradientTransformation:
    """Schedule-free AdamW: no learning-rate decay to tune; the momentum slot holds z.

    Memory: 2x params (nu, z), as AdamW -- z replaces the momentum, and the average x that
    replaces a decay schedule is recovered from the params and z. Evaluate the model at
    ``gradchain.schedule_free_eval_params(state, params)``, not at the params themselves.

    ``warmup_steps`` warms the learning rate up linearly from 0 (Optax's
    ``warmup_constant_schedule``). ``state_dtype`` (Optax's keyword) and ``z_dtype`` (ours) both
    set z's storage dtype; give one.

    >>> import jax.numpy as jnp, gradchain
    >>> opt = gradchain.schedule_free_adamw(0.1)
    >>> params = jnp.array([1.0, -1.0])
    >>> state = opt.init(params)
    >>> updates, state = opt.update(2 * params, state, params)
    >>> params = gradchain.apply_updates(params, updates)
    >>> gradchain.schedule_free_eval_params(state, params).tolist()
    [0.8999999761581421, -0.8999999761581421]
    """
    if state_dtype is not None and z_dtype is not None:
        raise GradchainError("schedule_free_adamw: give state_dtype or z_dtype, not both")
    z_dtype = state_dtype if z_dtype is None else z_dtype
    if warmup_steps is not None:
        learning_rate = linear_schedule(0.0, learning_rate, warmup_steps)
    return chain(
        _adam_denominator(b2, eps),  # second moment                  (+1x params)
        add_decayed_weights(weight_decay),  # decoupled decay, applied to y
        scale_by_schedule_free(learning_rate, b1, weight_lr_power, z_dtype=z_dtype),  # z (+1x)
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
def radam(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    threshold: float = 5.0,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """RAdam: Adam that takes momentum-SGD steps until its denominator is trustworthy, then
    rectifies it. Memory: 2x params (no warm-up schedule needed)."""
    return chain(
        scale_by_momentum(b1, ema=True),  # first moment                (+1x params)
        bias_correct(b1, nesterov=nesterov),
        scale_by_rectified_rms(b2, eps, eps_root=eps_root, threshold=threshold),  # +1x
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
    of tests/test_memory_spending.py, float64, lr 0.01: 4.7e-7 after 1 step, 7.4e-7 after 10,
    7.8e-7 after 50 and after 200; 3.3e-4 x lr after 50 steps of other gradients).
    """
    return chain(
        scale_by_momentum(b1, ema=True),  # first moment                (+1x params)
        bias_correct(b1),
        scale_by_additive_rms(b2, eps),  # additive second moment, starts at 1e-6 (+1x)
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
        scale_by_previous_rms(  # second moment, one step behind (+1x params)
            b2, eps, clip_value_fn=clip_value_fn if use_clipping else None
        ),
        scale_by_momentum(b1, ema=True, nesterov=nesterov, mu_dtype=mu_dtype),  # +1x
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

    It is ``adamw(..., nesterov=True)``: the chain is AdamW's with ``bias_correct(b1,
    nesterov=True)``. ``mask`` and ``nesterov`` are Optax's keywords (``nesterov=False`` is
    AdamW).
    """
    return adamw.__wrapped__(
        learning_rate,
        b1,
        b2,
        eps,
        eps_root,
        mu_dtype,
        weight_decay,
        mask,
        nesterov=nesterov,
        nu_dtype=nu_dtype,
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
        scale_by_momentum(b1, ema=True, mu_dtype=mu_dtype),  # first moment (+1x params)
        bias_correct(b1),
        scale_by_inf_norm(b2, eps, nu_dtype=nu_dtype),  # running max of |g| (+1x params)
        add_decayed_weights(weight_decay, mask),  # decoupled decay
        scale_by_learning_rate(learning_rate),
    )


@live
def lamb(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: float = 0.0,
    mask: Any = None,
    *,
    axis_name: Any = None,
) -> GradientTransformation:
    """LAMB: AdamW's direction, rescaled per leaf to the leaf's norm. Memory: 2x params.

    The trust ratio adds no memory; it lets very large batches use one learning rate for
    every layer. ``axis_name``: see ``scale_by_trust_ratio`` (for ``shard_map``). ``mask``
    (Optax's keyword) decays only the leaves it marks True.
    """
    return chain(
        scale_by_momentum(b1, ema=True),  # first moment                (+1x params)
        bias_correct(b1),
        _adam_denominator(b2, eps, eps_root),  # second moment         (+1x params)
        add_decayed_weights(weight_decay, mask),  # decoupled decay, inside the ratio
        scale_by_trust_ratio(axis_name=axis_name),  # per leaf: ||p|| / ||u||  (+0)
        scale_by_learning_rate(learning_rate),
    )


@live
def lars(
    learning_rate: LearningRate,
    weight_decay: float = 0.0,
    trust_coefficient: float = 0.001,
    eps: float = 0.0,
    momentum: float = 0.9,
    nesterov: bool = False,
    *,
    axis_name: Any = None,
) -> GradientTransformation:
    """LARS: SGD with momentum whose step is rescaled per leaf. Memory: 1x params.

    Note: Optax's form -- L2 decay first, then the trust ratio, the learning rate, and the
    momentum of the scaled steps (last). Optax's ``weight_decay_mask`` and
    ``trust_ratio_mask`` (exclude biases and norms) are not offered here; wrap the
    transforms in a mask instead.
    """
    return chain(
        add_decayed_weights(weight_decay),  # L2 into the gradient
        scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps, axis_name=axis_name),
        scale_by_learning_rate(learning_rate),
        scale_by_momentum(momentum, nesterov=nesterov),  # velocity of the steps (+1x params)
    )


@live(static=("learning_rate",))  # the initial step size: read once, at init
def rprop(
    learning_rate: float,
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    min_step_size: float = 1e-6,
    max_step_size: float = 50.0,
) -> GradientTransformation:
    """Rprop: per-coordinate step sizes from sign agreement; full-batch only.
    Memory: 1x params + 1 byte per element (the previous step's sign, int8).

    ``learning_rate`` is the initial step size. For torch.optim.Rprop see
    ``scale_by_rprop(clip_every_step=True)``.

    Note: each step moves by the step just computed, as in the paper and torch.optim.Rprop.
    Optax 0.2.8's ``rprop`` emits the *previous* step's update instead, and zeroes it also
    where the sign flips at the current step: its step sizes equal ours exactly, but its
    params are not ours one step late. Measured on the test problem of
    tests/test_memory_spending.py (lr 0.01, float64): the params are 0.01 apart after 1 step
    (Optax's first update is 0), 0.052 after 10 and 0.144 after 50 and after 200.
    """
    return chain(
        scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size),  # +1x
        scale(-1.0),  # descend
    )


@live
def adadelta(
    learning_rate: LearningRate = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    """AdaDelta: steps in the parameters' own units, from two moving averages. Memory: 2x.

    Note: Optax's default ``learning_rate=None`` skips the learning-rate transform, which
    leaves the sign unflipped (an ascent step); the default here is 1.0, torch.optim's, with
    descent. ``weight_decay`` is L2 (added to the gradient), as in Optax and torch.
    """
    return chain(
        add_decayed_weights(weight_decay),  # L2 into the gradient
        scale_by_adadelta(rho, eps),  # E[g**2] and E[dx**2]           (+2x params)
        scale_by_learning_rate(learning_rate),
    )
