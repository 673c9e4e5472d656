"""Layouts: run a transform on the params as one flat vector."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradchain.base import Child, GradientTransformation, _as_transform, is_preprocessing, updater

__all__ = ["flatten"]


def _flat(tree: Any) -> jax.Array:
    return jnp.concatenate([jnp.reshape(x, [-1]) for x in jax.tree.leaves(tree)])


def _unflat(vector: jax.Array, like: Any) -> Any:
    leaves, structure = jax.tree.flatten(like)
    cuts = np.cumsum([np.size(x) for x in leaves])[:-1]
    pieces = jnp.split(vector, cuts)
    return jax.tree.unflatten(structure, [p.reshape(np.shape(x)) for p, x in zip(pieces, leaves)])


def flatten(inner: Any) -> GradientTransformation:
    r"""Run ``inner`` on the params and updates concatenated into one vector, then split the
    result back into the tree (one big array: fewer, larger kernels for many small leaves).

    Update:     u <- unflatten(inner(concat(vec(u_i))))
    State:      inner's, over one vector of all the parameters.   Memory: inner's.
    Reference:  Optax, ``optax.flatten``.
    """
    inner = _as_transform(inner)
    call = updater(inner)

    def init(params):
        return inner.init(_flat(params))

    def update(updates, state, params=None, *, gradient=None, **extra):
        flat_params = None if params is None else _flat(params)
        flat_gradient = None if gradient is None else _flat(gradient)
        out, state = call(_flat(updates), state, flat_params, flat_gradient, extra)
        return _unflat(out, updates), state

    return GradientTransformation(
        init,
        update,
        name="flatten",
        preprocessing=is_preprocessing(inner),  # what it wraps decides
        children=(Child(None, inner, ()),),
    )
