"""Steps that use only the gradient's sign: the plain sign, Lion's (the sign of an
interpolated momentum), and Rprop's, with a step size per coordinate that grows while the
sign holds and shrinks when it flips. Optimizers: ``optimizers/sign.py`` (and ``lion``)."""

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
)
from gradchain.transforms.moment_math import compute_dtype
from gradchain.transforms.momentum import scale_by_lion_momentum

__all__ = [
    "ScaleByRpropState",
    "RpropState",
    "scale_by_lion",
    "scale_by_rprop",
    "scale_by_sign",
]


@describe(
    step_size="each coordinate's current step size, one array per parameter",
    previous_sign="sign of the step taken last (-1, 0 or +1; 0 after a sign flip), int8, "
    "one array per parameter",
)
class RpropState(NamedTuple):
    step_size: Any
    previous_sign: Any


def scale_by_rprop(
    initial_step_size: float = 0.01,
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    min_step_size: float = 1e-6,
    max_step_size: float = 50.0,
    *,
    clip_every_step: bool = False,
    step_size_dtype: Any = None,
) -> GradientTransformation:
    r"""Resilient backpropagation: a per-coordinate step size driven by sign agreement.

    Update:     (g_t is the update that reaches it: the gradient, when it comes first)
                s = sign(g_t) * previous_sign
                step_t = clip(step_{t-1} * eta_plus,  min, max)   where s > 0
                step_t = clip(step_{t-1} * eta_minus, min, max)   where s < 0
                step_t = step_{t-1}                               where s = 0
                u_t = 0 where s < 0 (skip this step), else step_t * sign(g_t)
                previous_sign = sign(u_t)
    State:      step_size -- like params (dtype ``step_size_dtype``), starts at
                ``initial_step_size``.  previous_sign -- int8, like params, starts at 0.
                Memory: +1x params + 1 byte per element (1.25x for float32 params).
    Args:       initial_step_size -- > 0 (Optax's and torch's ``lr``; read once, at init).
                0 < eta_minus <= 1 <= eta_plus.  0 <= min_step_size <= max_step_size.
                clip_every_step -- also clip where s = 0, as torch.optim.Rprop does (it
                multiplies by 1 and clamps); Optax leaves the step size alone there. The two
                differ only when ``initial_step_size`` lies outside [min, max].
    Note:       The emitted u is a step up the gradient: follow it with ``scale(-1.0)``. Only
                the sign of the previous step is needed, so it is stored in int8 (Optax keeps
                the whole previous update, torch the previous gradient; the signs agree).
                torch.optim.Rprop(lr, etas=(eta_minus, eta_plus), step_sizes=(min, max)) is
                ``chain(scale_by_rprop(lr, eta_minus, eta_plus, min, max,
                clip_every_step=True), scale(-1.0))``; ``maximize=True`` drops the scale(-1).
                Optax 0.2.8's ``scale_by_rprop`` computes the same step sizes but emits the
                previous step's update (one step late); this emits the current one.
    Reference:  Riedmiller & Braun, "A Direct Adaptive Method for Faster Backpropagation
                Learning: The RPROP Algorithm", 1993 (this is the Rprop- variant without
                weight backtracking, as in Optax and torch).
    """
    _checks.check_positive("initial_step_size", initial_step_size)
    _checks.check_closed_unit_interval("eta_minus", eta_minus)
    _checks.check_positive("eta_minus", eta_minus)
    _checks.check_positive("eta_plus", eta_plus)
    _checks.check_non_negative("min_step_size", min_step_size)
    _checks.check_non_negative("max_step_size", max_step_size)
    _checks.check_dtype("step_size_dtype", step_size_dtype)

    def init(params):
        step = jax.tree.map(
            lambda p: jnp.full_like(p, initial_step_size, step_size_dtype or jnp.result_type(p)),
            params,
        )
        previous = jax.tree.map(lambda p: jnp.zeros_like(p, jnp.int8), params)
        return RpropState(step_size=step, previous_sign=previous)

    def update(updates, state, params=None, **extra):

        def leaf(g, step, prev):
            c = compute_dtype(g.dtype, step.dtype)
            sign_g = jnp.sign(g).astype(jnp.int8)
            agree = sign_g * prev
            up, down = jnp.asarray(eta_plus, c), jnp.asarray(eta_minus, c)
            factor = jnp.where(agree > 0, up, jnp.where(agree < 0, down, 1))
            lo, hi = jnp.asarray(min_step_size, c), jnp.asarray(max_step_size, c)
            clipped = jnp.clip(step.astype(c) * factor, lo, hi)
            kept = step.astype(c)
            new_step = clipped if clip_every_step else jnp.where(agree == 0, kept, clipped)
            new_sign = jnp.where(agree < 0, 0, sign_g).astype(jnp.int8)
            # the float sign, so that a NaN gradient (int8 sign 0) gives a NaN step, as in Optax
            direction = jnp.where(agree < 0, 0, jnp.sign(g.astype(c)))
            out = (new_step.astype(c) * direction).astype(g.dtype)
            return out, new_step.astype(step.dtype), new_sign

        out, step, previous = tree_map_split(leaf, 3, updates, state.step_size, state.previous_sign)
        return out, RpropState(step_size=step, previous_sign=previous)

    return GradientTransformation(init, update, name="scale_by_rprop", preprocessing=False)


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

    return GradientTransformation(init, update, name=f"lion_{mode}_sign", preprocessing=False)


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


def scale_by_sign() -> GradientTransformation:
    r"""Keep only the sign of each update coordinate.

    Update:     u_t = sign(u_t), and NaN where u_t is +-inf
    State:      none.   Memory: 0.
    Note:       jnp.sign, Optax and torch give +-1 for +-inf. Here an infinite update is NaN:
                after a momentum (Lion, Signum) an infinite gradient leaves the moment
                infinite for good, and +-1 would then move the param the same way at every
                step from then on, whatever its gradient says, with nothing to show for it.
                A NaN update shows the fault (or ``skip_non_finite`` skips the step).
    Reference:  Bernstein et al., "signSGD", 2018.
    """

    def init(params):
        return EmptyState()

    def sign(u):
        return jnp.where(jnp.isinf(u), jnp.nan, jnp.sign(u)).astype(u.dtype)

    def update(updates, state, params=None, **extra):
        return jax.tree.map(sign, updates), state

    return GradientTransformation(init, update, name="scale_by_sign", preprocessing=False)

ScaleByRpropState = RpropState  # Optax's name; fields step_size, previous_sign (Optax: step_sizes, prev_updates)
