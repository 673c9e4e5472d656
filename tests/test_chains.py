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


def test_named_chain_takes_python_float_leaves_as_optax_does():
    # Optax's named_chain docstring: params and updates are plain Python floats
    ours = gc.named_chain(("scale", gc.scale(0.1)), ("sgd", gc.polyak_sgd()))
    theirs = optax.named_chain(("scale", optax.scale(0.1)), ("sgd", optax.polyak_sgd()))
    with reference_promotion():
        u1, s1 = ours.update(0.7, ours.init(0.5), 0.7, value=1.0)
        u2, _ = theirs.update(0.7, theirs.init(0.5), 0.7, value=1.0)
    assert tuple(s1.keys()) == ("scale", "sgd")
    assert abs(float(u1) - float(u2)) <= 1e-7 and abs(float(u1) + 0.07) <= 1e-7


def test_scale_takes_a_python_float_update_under_jit_too():
    step = jax.jit(gc.scale(0.5).update)
    out, _ = step(3.0, gc.EmptyState())
    assert float(out) == 1.5
    assert float(gc.scale(0.5).update(3.0, gc.EmptyState())[0]) == 1.5
