"""Terms added to the update that are not a preconditioner: annealed Gaussian noise (noisy
SGD), a multiple of the params of either sign (Fromage's shrink), and a multiple of the
gradient (simplified AdEMAMix's m + alpha g)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import EmptyState, GradientTransformation, describe
from gradchain.transforms.moment_math import compute_dtype, increment

__all__ = [
    "AddNoiseState",
    "ScaledGradientState",
    "ScaledParamsState",
    "add_noise",
    "add_scaled_gradient",
    "add_scaled_params",
]


@describe(
    count="steps taken so far (int32 scalar): the noise's annealing clock",
    rng_key="the random key the next step splits, as its raw uint32 data (checkpoints and the "
    "memory report read plain arrays)",
)
class AddNoiseState(NamedTuple):
    count: jax.Array
    rng_key: jax.Array


def add_noise(
    eta: float, gamma: float, key: Any = None, *, seed: int | None = None
) -> GradientTransformation:
    r"""Add Gaussian noise whose variance decays with the step count.

    Update:     u_t = u_t + sqrt(eta / t**gamma) * n_t,  n_t ~ N(0, I), one fresh draw per
                leaf (key_t, k = split(key_{t-1}); one key per leaf from split(k, leaves))
    State:      count, rng_key.   Memory: 0x params (two scalars).
    Args:       eta -- >= 0, the variance at t = 1.  gamma -- >= 0, the decay exponent.
                key -- a jax.random key or an integer seed, a Python int or a 0-d integer
                array, traced or not (None: seed 0).  seed -- Optax's
                deprecated spelling of an integer key.
    Note:       Optax's ``add_noise`` draw for draw (same keys, same samples).
    Reference:  Neelakantan et al., "Adding Gradient Noise Improves Learning for Very Deep
                Networks", 2015.
    """
    _checks.check_non_negative("eta", eta)
    _checks.check_non_negative("gamma", gamma)
    if seed is not None:
        if key is not None:
            raise _checks.GradchainError("give add_noise a key or a seed, not both")
        key = seed
    key = 0 if key is None else key
    typed = isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    if not typed:
        integer_array = (  # a seed as a 0-d array, traced under optax.inject_hyperparams
            isinstance(key, jax.Array)
            and key.shape == ()
            and jnp.issubdtype(key.dtype, jnp.integer)
        )
        if not integer_array:
            _checks.check_int("key", key)
        key = jax.random.key(key)
    impl = jax.random.key_impl(key)

    def init(params):
        return AddNoiseState(jnp.zeros([], jnp.int32), jax.random.key_data(key))

    def update(updates, state, params=None, **extra):
        count = increment(state.count)
        rng_key, draw = jax.random.split(jax.random.wrap_key_data(state.rng_key, impl=impl))
        leaves, treedef = jax.tree.flatten(updates)
        keys = jax.random.split(draw, len(leaves))

        def noisy(u, k):
            c = compute_dtype(u.dtype)
            std = jnp.sqrt(jnp.asarray(eta, c) / count.astype(c) ** jnp.asarray(gamma, c))
            return (u + std.astype(u.dtype) * jax.random.normal(k, u.shape, u.dtype)).astype(u.dtype)

        out = treedef.unflatten([noisy(u, k) for u, k in zip(leaves, keys)])
        return out, AddNoiseState(count, jax.random.key_data(rng_key))

    return GradientTransformation(init, update, name="add_noise", preprocessing=True)


@describe(count="steps taken so far (int32 scalar): the schedule's argument")
class ScaledParamsState(NamedTuple):
    count: jax.Array


def add_scaled_params(scale: float | Callable[[jax.Array], Any]) -> GradientTransformation:
    r"""Add a multiple of the params, of either sign.

    Update:     u_t = u_t + s_t * p_t,  s_t = scale, or scale(count) for a schedule
    State:      none for a number; count (int32 scalar) for a schedule.   Memory: 0.
    Args:       scale -- any finite number, or a schedule (``add_decayed_weights`` is the
                scale >= 0 case, read as a decay; a negative scale shrinks the params).
    Note:       Needs the params. Fromage's shrink is s = 1 / sqrt(1 + lr**2) - 1.
    """
    _checks.check_schedule_or("scale", scale, _checks.check_hyperparam)
    schedule = scale if callable(scale) else None

    def init(params):
        return EmptyState() if schedule is None else ScaledParamsState(jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, **extra):
        if params is None:
            _checks.refuse_missing_params("add_scaled_params")
        _checks.check_same_structure("updates", updates, "params", params)
        s = scale if schedule is None else schedule(state.count)

        def add(u, p):
            c = compute_dtype(u.dtype, jnp.result_type(p))
            return (u.astype(c) + jnp.asarray(s).astype(c) * jnp.asarray(p).astype(c)).astype(u.dtype)

        new_state = state if schedule is None else ScaledParamsState(increment(state.count))
        return jax.tree.map(add, updates, params), new_state

    return GradientTransformation(init, update, name="add_scaled_params", preprocessing=False)


@describe(count="steps taken so far (int32 scalar): the schedule's argument")
class ScaledGradientState(NamedTuple):
    count: jax.Array


def add_scaled_gradient(alpha: float | Callable[[jax.Array], Any]) -> GradientTransformation:
    r"""Add a multiple of the gradient to the update (a momentum's look-ahead weight).

    Update:     u_t = u_t + a_t * g_t,  a_t = alpha, or alpha(count) for a schedule
                (``g`` is the gradient the chain hands over, ``u`` the update that reaches it)
    State:      none for a number; count (int32 scalar) for a schedule.   Memory: 0.
    Args:       alpha -- any finite number, or a schedule of the step count (0 first).
    Note:       After a heavy-ball ``scale_by_momentum(b1)`` it gives simplified AdEMAMix's
                numerator m + alpha g (``scale_by_simplified_ademamix``).
    """
    _checks.check_schedule_or("alpha", alpha, _checks.check_hyperparam)
    schedule = alpha if callable(alpha) else None

    def init(params):
        return EmptyState() if schedule is None else ScaledGradientState(jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, *, gradient=None, **extra):
        grads = updates if gradient is None else gradient
        a = alpha if schedule is None else schedule(state.count)

        def add(u, g):
            c = compute_dtype(u.dtype, g.dtype)
            return (u.astype(c) + jnp.asarray(a).astype(c) * g.astype(c)).astype(u.dtype)

        new_state = state if schedule is None else ScaledGradientState(increment(state.count))
        return jax.tree.map(add, updates, grads), new_state

    return GradientTransformation(init, update, name="add_scaled_gradient", preprocessing=False)
