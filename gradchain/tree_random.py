"""Random trees: keys split to a tree's shape, and random leaves shaped like another tree's
(``optax.tree.random_like`` and its helpers; exported from ``gradchain.tree``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax

__all__ = ["tree_random_like", "tree_split_key_like", "tree_unwrap_random_key_data"]


def tree_split_key_like(rng_key: jax.Array, target_tree: Any) -> Any:
    """``rng_key`` split into one key per leaf of ``target_tree``, in its structure."""
    structure = jax.tree.structure(target_tree)
    return jax.tree.unflatten(structure, list(jax.random.split(rng_key, structure.num_leaves)))


def tree_random_like(
    rng_key: jax.Array,
    target_tree: Any,
    sampler: Callable[..., jax.Array] = jax.random.normal,
    dtype: Any = None,
) -> Any:
    """A tree shaped like ``target_tree`` whose leaves are ``sampler(key, shape, dtype)``, one
    split key per leaf; ``dtype`` None keeps each leaf's dtype. A sampler that takes
    ``out_sharding`` is given each leaf's sharding."""
    keys = tree_split_key_like(rng_key, target_tree)
    takes_sharding = "out_sharding" in inspect.signature(sampler).parameters

    def draw(leaf, key):
        kind = dtype or leaf.dtype
        if takes_sharding:
            return sampler(key, leaf.shape, kind, out_sharding=jax.typeof(leaf).sharding)
        return sampler(key, leaf.shape, kind)

    return jax.tree.map(draw, target_tree, keys)


def tree_unwrap_random_key_data(input_tree: Any) -> Any:
    """Every typed key (``jax.random.key``) replaced by its raw data, for comparing trees."""

    def unwrap(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.key_data(x)
        return x

    return jax.tree.map(unwrap, input_tree)
