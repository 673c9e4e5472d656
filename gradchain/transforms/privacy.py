"""Differential privacy: clip each example's gradient, sum, add Gaussian noise (DP-SGD).

Family: privacy. These take *per-example* gradients -- every leaf with the batch on axis 0,
as ``jax.vmap(jax.grad(loss), in_axes=(None, 0))`` gives them -- and return one gradient shaped
like the params. The two clipping functions are plain functions of a tree (Optax's
``per_example_global_norm_clip`` and ``per_example_layer_norm_clip``); the transform
``differentially_private_aggregate`` is their use inside a chain, where it must stand first:
DP-SGD is ``chain(differentially_private_aggregate(C, sigma, key), sgd(lr))`` (Optax's
``contrib.dpsgd``). Accumulating wrappers (``apply_every``,
``MultiSteps``) do not compose with it: the aggregation is the point.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import GradientTransformation, describe
from gradchain.transforms.moment_math import abs_sq, compute_dtype, real_dtype

__all__ = [
    "DifferentiallyPrivateAggregateState",
    "differentially_private_aggregate",
    "per_example_global_norm_clip",
    "per_example_layer_norm_clip",
]


def _check_batched(who: str, grads: Any) -> list[jax.Array]:
    leaves = [jnp.asarray(g) for g in jax.tree.leaves(grads)]
    if not leaves:
        raise _checks.GradchainError(f"{who}: grads has no leaves")
    batch = jnp.shape(leaves[0])[0] if jnp.ndim(leaves[0]) else None
    if batch is None or any(g.ndim < 1 or g.shape[0] != batch for g in leaves):
        raise _checks.GradchainError(
            f"{who} expects per-example grads: every leaf with the batch on axis 0 (the same "
            f"size in all), got shapes {[g.shape for g in leaves]}; make them with "
            "jax.vmap(jax.grad(loss), in_axes=(None, 0))"
        )
    return leaves


def _floating(g: jax.Array) -> jax.Array:
    """An integer leaf (Optax's examples use them) as float32, the dtype Optax's sum gives."""
    return g if jnp.issubdtype(g.dtype, jnp.inexact) else g.astype(jnp.float32)


def _clip_one(leaves: list[jax.Array], l2_norm_clip: Any) -> tuple[list[jax.Array], jax.Array]:
    """Sum over the batch of each example's gradient scaled to global norm <= l2_norm_clip."""
    leaves = [_floating(g) for g in leaves]
    c = compute_dtype(*(real_dtype(jnp.result_type(g)) for g in leaves))
    sq = sum(jnp.sum(abs_sq(g, c).reshape(g.shape[0], -1), axis=1) for g in leaves)
    norms = jnp.sqrt(sq)  # one per example
    # min(C / n, 1), and 1 for a zero example with C = 0 (0 / 0): it is not clipped
    factor = jnp.nan_to_num(jnp.minimum(jnp.asarray(l2_norm_clip, c) / norms, 1.0), nan=1.0)
    summed = [
        jnp.tensordot(
            factor.astype(compute_dtype(g.dtype)), g.astype(compute_dtype(g.dtype)), 1
        ).astype(g.dtype)
        for g in leaves
    ]
    return summed, jnp.sum(factor < 1.0)


def per_example_global_norm_clip(grads: Any, l2_norm_clip: float) -> tuple[Any, jax.Array]:
    r"""Clip each example's gradient to global L2 norm ``l2_norm_clip``, then sum the batch.

    Update:     n_i = ||g_i|| over all leaves of example i ;  out = sum_i min(1, C / n_i) g_i
    Returns:    (the clipped sum, shaped like one example, in the leaves' dtype (float32 for
                integer leaves); how many examples were clipped, an int32 scalar). A zero
                example is never clipped (also with C = 0).
    Args:       grads -- a tree of per-example gradients (batch on axis 0 of every leaf).
                l2_norm_clip -- C >= 0 (``inf``: no clipping).
    Reference:  Abadi et al., "Deep Learning with Differential Privacy", 2016.
    """
    _checks.check_non_negative("l2_norm_clip", l2_norm_clip, allow_inf=True)
    leaves = _check_batched("per_example_global_norm_clip", grads)
    summed, clipped = _clip_one(leaves, l2_norm_clip)
    return jax.tree.unflatten(jax.tree.structure(grads), summed), clipped


def per_example_layer_norm_clip(
    grads: Any, global_l2_norm_clip: float, uniform: bool = True
) -> tuple[Any, Any]:
    r"""Clip each example's gradient layer by layer (each leaf to its own bound), then sum.

    Update:     leaf k of K, with D_k entries per example out of D: C_k = C / sqrt(K)
                (``uniform``) or C sqrt(D_k / D); out_k = sum_i min(1, C_k / ||g_ik||) g_ik.
                Since sum_k C_k**2 = C**2, each example's whole gradient stays within C.
    Returns:    (the clipped sums, shaped like one example; per leaf, how many examples were
                clipped, int32 scalars in a tree like ``grads``).
    Args:       grads -- per-example gradients (batch on axis 0).  global_l2_norm_clip -- C >= 0.
                uniform -- the same bound for every leaf, or one growing with its size.
    Reference:  McMahan et al., "Learning Differentially Private Recurrent Language Models", 2018.
    """
    _checks.check_non_negative("global_l2_norm_clip", global_l2_norm_clip, allow_inf=True)
    leaves = _check_batched("per_example_layer_norm_clip", grads)
    sizes = [g[0].size for g in leaves]
    if uniform:
        bounds = [global_l2_norm_clip * (1.0 / len(leaves)) ** 0.5 for _ in leaves]
    else:
        bounds = [global_l2_norm_clip * (d / sum(sizes)) ** 0.5 for d in sizes]
    results = [_clip_one([g], b) for g, b in zip(leaves, bounds)]
    treedef = jax.tree.structure(grads)
    return (
        jax.tree.unflatten(treedef, [s[0] for s, _ in results]),
        jax.tree.unflatten(treedef, [n for _, n in results]),
    )


@describe(
    rng_key="the random key the next step splits, as its raw uint32 data (checkpoints and the "
    "memory report read plain arrays)"
)
class DifferentiallyPrivateAggregateState(NamedTuple):
    rng_key: jax.Array


def differentially_private_aggregate(
    l2_norm_clip: float, noise_multiplier: float, key: Any = None, *, seed: int | None = None
) -> GradientTransformation:
    r"""DP-SGD's aggregation: per-example clip, sum, Gaussian noise, average.

    Update:     s = per_example_global_norm_clip(g, C) ;  key, k_1..k_L = split(key, L + 1)
                u_l = (s_l + C * noise_multiplier * N(0, I; k_l)) / B   (B the batch size)
    State:      rng_key.   Memory: one key (no params-sized slot).
    Args:       l2_norm_clip -- C >= 0.  noise_multiplier -- sigma >= 0, the noise's std in
                units of C.  key -- a jax.random key or an integer seed (None: seed 0, as
                Optax's, which warns).  seed -- Optax's deprecated spelling of an int key.
    Note:       The updates are per-example gradients (batch on axis 0 of every leaf) and
                the output is shaped like the params: put it first in the chain (the chain
                then compares the params with its output, not with the batch). Optax's
                ``contrib.differentially_private_aggregate``, draw for draw.
    Reference:  Abadi et al., "Deep Learning with Differential Privacy", 2016.
    """
    _checks.check_non_negative("l2_norm_clip", l2_norm_clip, allow_inf=True)
    _checks.check_non_negative("noise_multiplier", noise_multiplier)
    if seed is not None:
        if key is not None:
            raise _checks.GradchainError(
                "give differentially_private_aggregate a key or a seed, not both"
            )
        key = seed
    key = 0 if key is None else key
    if not (isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)):
        traced_seed = (  # a seed as a 0-d integer array, traced under inject_hyperparams
            isinstance(key, jax.Array)
            and key.shape == ()
            and jnp.issubdtype(key.dtype, jnp.integer)
        )
        if not traced_seed:
            _checks.check_int("key", key)
        key = jax.random.key(key)
    impl = jax.random.key_impl(key)

    def init(params):
        return DifferentiallyPrivateAggregateState(jax.random.key_data(key))

    def update(updates, state, params=None, **extra):
        leaves = _check_batched("differentially_private_aggregate", updates)
        summed, _ = _clip_one(leaves, l2_norm_clip)
        new_key, *keys = jax.random.split(
            jax.random.wrap_key_data(state.rng_key, impl=impl), len(leaves) + 1
        )
        batch = leaves[0].shape[0]

        def noisy(s, k):
            c = compute_dtype(s.dtype)
            std = jnp.asarray(l2_norm_clip, c) * jnp.asarray(noise_multiplier, c)
            out = (s.astype(c) + std * jax.random.normal(k, s.shape, s.dtype).astype(c)) / batch
            return out.astype(s.dtype)

        out = [noisy(s, k) for s, k in zip(summed, keys)]
        return (
            jax.tree.unflatten(jax.tree.structure(updates), out),
            DifferentiallyPrivateAggregateState(jax.random.key_data(new_key)),
        )

    result = GradientTransformation(
        init, update, name="differentially_private_aggregate", preprocessing=True
    )
    result.per_example = True  # its input has a batch axis: chain compares its output instead
    return result
