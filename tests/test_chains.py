"""gradchain.combine.chains: named_chain against optax.named_chain (measured difference 0.0:
the same members, applied in the same order)."""

import jax
import jax.numpy as jnp
import optax
import pytest

import gradchain as gc
from tests.conftest import reference_promotion


def test_named_chain_matches_optax(dtype):
    params = {"w": jnp.linspace(-1, 1, 4, dtype=dtype)}
    ours = gc.named_chain(("clip", optax.clip(0.5)), ("adam", optax.adam(0.1)))
    theirs = optax.named_chain(("clip", optax.clip(0.5)), ("adam", optax.adam(0.1)))
    with reference_promotion():
        s1, s2 = ours.init(params), theirs.init(params)
        assert list(s1) == list(s2) == ["clip", "adam"]
        for i in range(3):
            g = jax.tree.map(lambda x, i=i: x * (i + 1), params)
            u1, s1 = ours.update(g, s1, params)
            u2, s2 = theirs.update(g, s2, params)
            assert bool(jnp.array_equal(u1["w"], u2["w"]))


def test_named_chain_refuses_duplicate_names_naming_them():
    with pytest.raises(gc.GradchainError, match="unique"):
        gc.named_chain(("a", gc.scale(1.0)), ("a", gc.scale(2.0)))
