"""Stateless scalings, the learning rate, weight decay, and clipping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import (
    GradientTransformation,
    compute_dtype,
    describe,
    increment,
    live_hyperparams,
    real_dtype,
    store_hyperparam,
    store_hyperparams,
)
from gradchain.transforms.factored import varying_axes


@describe(step_size="hyperparameter: the factor every update is multiplied by")
class ScaleState(NamedTuple):
    step_size: jax.Array


def _times(u: jax.Array, factor: jax.Array) -> jax.Array:
    return (u.astype(compute_dtype(u.dtype)) * factor.astype(compute_dtype(u.dtype))).astype(
        u.dtype
    )


def scale(step_size: float) -> GradientTransformation:
    r"""Multiply updates by a constant.

    Update:     u_t = step_size * u_t
    State:      none per parameter (the factor is a live scalar).   Memory: 0.
    """
    _checks.check_hyperparam("step_size", step_size)
    given = {"step_size": step_size}

    def init(params):
        del params
        return ScaleState(**store_hyperparams(given))

    def update(updates, state, params=None, **extra):
        del params, extra
        hp = live_hyperparams(given, state)
        return jax.tree.map(lambda u: _times(u, hp["step_size"]), updates), ScaleState(**hp)

    return GradientTransformation(init, update, name="scale", preprocessing=True)


@describe(
    count="steps taken so far (int32 scalar); the schedule's argument",
    learning_rate="the learning rate of the last step (live when constant; "
    "recorded, read-only, when a schedule sets it)",
)
class LearningRateState(NamedTuple):
    count: jax.Array
    learning_rate: jax.Array


def scale_by_learning_rate(
    learning_rate: float | Callable[[jax.Array], Any], *, flip_sign: bool = True
) -> GradientTransformation:
    r"""Multiply by -learning_rate: turn a direction into a descent step.

    Update:     u_t = -lr_t * u_t, with lr_t = learning_rate or learning_rate(count)
    State:      count, learning_rate -- two scalars.   Memory: 0x params.
    Args:       learning_rate -- a number >= 0, or a schedule: a function of the int32 step
                count (0 at the first step) returning a scalar.
                flip_sign -- False gives +lr (gradient ascent, or torch's maximize=True).
    """
    _checks.check_learning_rate(learning_rate)
    schedule = learning_rate if callable(learning_rate) else None
    sign = -1.0 if flip_sign else 1.0

    def init(params):
        del params
        start = 0.0 if schedule else learning_rate
        return LearningRateState(
            count=jnp.zeros([], jnp.int32), learning_rate=store_hyperparam(start)
        )

    def update(updates, state, params=None, **extra):
        del params, extra
        if schedule is not None:
            lr = jnp.asarray(schedule(state.count))
            if lr.shape != ():
                raise _checks.GradchainError(
                    f"the learning-rate schedule returned shape {lr.shape} at a step; "
                    "a schedule must return a scalar"
                )
            lr = lr.astype(state.learning_rate.dtype)
        else:
            lr = live_hyperparams({"learning_rate": learning_rate}, state)["learning_rate"]
        factor = sign * lr  # once, not once per leaf
        out = jax.tree.map(lambda u: _times(u, factor), updates)
        return out, LearningRateState(count=increment(state.count), learning_rate=lr)

    return GradientTransformation(init, update, name="scale_by_learning_rate")


@describe()
class SignState(NamedTuple):
    pass


def scale_by_sign() -> GradientTransformation:
    r"""Keep only the sign of each update coordinate.

    Update:     u_t = sign(u_t)
    State:      none.   Memory: 0.
    Reference:  Bernstein et al., "signSGD", 2018.
    """

    def init(params):
        del params
        return SignState()

    def update(updates, state, params=None, **extra):
        del params, extra
        return jax.tree.map(jnp.sign, updates), state

    return GradientTransformation(init, update, name="scale_by_sign")


@describe(weight_decay="hyperparameter: the coefficient of the decay term")
class DecayState(NamedTuple):
    weight_decay: jax.Array


def add_decayed_weights(weight_decay: float = 0.0) -> GradientTransformation:
    r"""Add ``weight_decay * params`` to the update.

    Update:     u_t = u_t + weight_decay * p_t
    State:      none per parameter.   Memory: 0.
    Note:       Its position in a chain is the whole difference between L2 regularisation and
                decoupled weight decay. Before the preconditioner (first in the chain) it is
                L2: the decay enters the gradient and is rescaled by Adam's 1/sqrt(nu). After
                it (just before the learning rate) it is AdamW's decoupled decay.
    Reference:  Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019.
    """
    _checks.check_non_negative("weight_decay", weight_decay)
    given = {"weight_decay": weight_decay}

    def init(params):
        del params
        return DecayState(**store_hyperparams(given))

    def update(updates, state, params=None, **extra):
        del extra
        if params is None:
            raise _checks.GradchainError(
                "add_decayed_weights needs the params: call update(grads, state, params)"
            )
        _checks.check_same_structure("updates", updates, "params", params)
        hp = live_hyperparams(given, state)

        def decay(u, p):
            c = compute_dtype(u.dtype, jnp.result_type(p))
            wd = hp["weight_decay"].astype(c)
            return (u.astype(c) + wd * jnp.asarray(p).astype(c)).astype(u.dtype)

        return jax.tree.map(decay, updates, params), DecayState(**hp)

    return GradientTransformation(init, update, name="add_decayed_weights", preprocessing=True)


@describe(max_delta="hyperparameter: the largest magnitude a coordinate may keep")
class ClipState(NamedTuple):
    max_delta: jax.Array


def clip(max_delta: float) -> GradientTransformation:
    r"""Clip every coordinate to [-max_delta, max_delta].

    Update:     u_t = clip(u_t, -max_delta, max_delta)
    State:      none per parameter.   Memory: 0.
    """
    _checks.check_non_negative("max_delta", max_delta, allow_inf=True)
    given = {"max_delta": max_delta}

    def init(params):
        del params
        return ClipState(**store_hyperparams(given))

    def update(updates, state, params=None, **extra):
        del params, extra
        hp = live_hyperparams(given, state)

        def clip_leaf(u):
            m = hp["max_delta"].astype(u.dtype)
            return jnp.clip(u, -m, m)

        return jax.tree.map(clip_leaf, updates), ClipState(**hp)

    return GradientTransformation(init, update, name="clip", preprocessing=True)


@describe(max_norm="hyperparameter: the largest global L2 norm the update may keep")
class ClipNormState(NamedTuple):
    max_norm: jax.Array


def global_norm(tree: Any) -> jax.Array:
    """The L2 norm of all leaves together, accumulated in float32 (at least)."""
    _checks.check_float_leaves("tree", tree)
    leaves = [jnp.asarray(x) for x in jax.tree.leaves(tree)]
    c = compute_dtype(*(real_dtype(x.dtype) for x in leaves))
    total = jnp.zeros([], c)
    for x in leaves:
        total = total + jnp.sum(jnp.abs(x.astype(compute_dtype(x.dtype))).astype(c) ** 2)
    return jnp.sqrt(total)


def _vma_is_tracked() -> bool:
    """Whether shard_map records which values vary over which mesh axes (``check_vma=True``,
    the default). The flag is private in jax 0.10; when it cannot be read, assume it is on."""
    flag = getattr(getattr(getattr(jax, "_src", None), "config", None), "_check_vma", None)
    return True if flag is None else bool(flag.value)


def _global_norm_over(tree: Any, axis_name: Any) -> jax.Array:
    """The global norm inside ``shard_map``: a leaf that varies over ``axis_name`` (a shard)
    has its partial sum psum-ed over it; a replicated leaf is counted once. A leaf sharded over
    another mesh axis, or a shard_map without check_vma (which hides what varies), is refused:
    psum-ing everything would count replicated leaves |axis| times, silently."""
    _checks.check_float_leaves("tree", tree)
    names = axis_name if isinstance(axis_name, tuple) else (axis_name,)
    leaves = [jnp.asarray(x) for x in jax.tree.leaves(tree)]
    c = compute_dtype(*(real_dtype(x.dtype) for x in leaves))
    if not _vma_is_tracked():
        _checks.refuse_sharded_reduction(
            "clip_by_global_norm(axis_name=...)", list(names), "use shard_map's check_vma=True"
        )
    sums: dict[tuple[str, ...], jax.Array] = {}  # partial sums, by the axes they vary over
    for x in leaves:
        varying = varying_axes(x)
        if not varying <= set(names):
            _checks.refuse_sharded_reduction(
                "clip_by_global_norm", sorted(varying), f"pass axis_name={tuple(varying)}"
            )
        key = tuple(n for n in names if n in varying)
        sq = jnp.sum(jnp.abs(x.astype(compute_dtype(x.dtype))).astype(c) ** 2)
        sums[key] = sums[key] + sq if key in sums else sq
    total = jnp.zeros([], c)
    for key, partial in sums.items():
        total = total + (jax.lax.psum(partial, key) if key else partial)
    return jnp.sqrt(total)


def clip_by_global_norm(max_norm: float, *, axis_name: Any = None) -> GradientTransformation:
    r"""Rescale the whole update so that its global L2 norm is at most max_norm.

    Update:     n = sqrt(sum_i ||u_i||**2) ;  u_t = u_t * min(1, max_norm / n)
    State:      none per parameter.   Memory: 0.
    Args:       max_norm -- > 0.  axis_name -- under ``shard_map`` with leaves sharded over
                that mesh axis, the partial sums of the leaves that vary over it are
                ``psum``-ed (replicated leaves counted once), so every shard sees the true
                global norm (without it, each shard would clip by its own).
    Reference:  Pascanu, Mikolov & Bengio, 2013.
    """
    _checks.check_positive("max_norm", max_norm, allow_inf=True)
    given = {"max_norm": max_norm}

    def init(params):
        del params
        return ClipNormState(**store_hyperparams(given))

    def update(updates, state, params=None, **extra):
        del params, extra
        hp = live_hyperparams(given, state)
        norm = global_norm(updates) if axis_name is None else _global_norm_over(updates, axis_name)
        m = hp["max_norm"].astype(norm.dtype)
        factor = jnp.where(norm < m, 1.0, m / jnp.where(norm > 0, norm, 1.0))
        return jax.tree.map(lambda u: _times(u, factor), updates), ClipNormState(**hp)

    return GradientTransformation(init, update, name="clip_by_global_norm", preprocessing=True)
