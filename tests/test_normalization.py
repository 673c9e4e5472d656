"""centralize and normalize_by_update_norm (transforms/normalization.py) against Optax's
functions of the same name, float32 and float64; tolerances measured once and frozen."""

import jax
import jax.numpy as jnp
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion


def updates(dtype):
    k = jax.random.split(jax.random.key(3), 4)
    return {
        "conv": jax.random.normal(k[0], (3, 3, 2, 4), dtype),
        "w": jax.random.normal(k[1], (5, 3), dtype),
        "b": jax.random.normal(k[2], (3,), dtype),
        "s": jax.random.normal(k[3], (), dtype),
    }


CASES = {
    "centralize": (gradchain.centralize, optax.centralize),
    "normalize_by_update_norm": (
        gradchain.normalize_by_update_norm,
        optax.normalize_by_update_norm,
    ),
    "normalize_by_update_norm-tuned": (
        lambda: gradchain.normalize_by_update_norm(-2.0, 1e-3),
        lambda: optax.normalize_by_update_norm(-2.0, 1e-3),
    ),
}
# max |difference| of one update (entries ~1), float32 and float64; measured:
# centralize 0.0 / 0.0; normalize_by_update_norm 3.0e-8 / 5.6e-17; -tuned 3.0e-8 / 1.1e-16
BOUND = {jnp.float32: 2e-7, jnp.float64: 4e-16}


def diff(name, dtype):
    ours, theirs = CASES[name]
    u = updates(dtype)
    got, _ = jax.jit(ours().update)(u, ours().init(u))
    with reference_promotion():
        want, _ = theirs().update(u, theirs().init(u))
    for g, x in zip(jax.tree.leaves(got), jax.tree.leaves(u)):
        assert g.dtype == x.dtype and g.shape == x.shape
    return max(
        float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want))
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_optax(dtype, name):
    assert diff(name, dtype) <= BOUND[dtype]


def test_centralize_means_are_zero_and_vectors_pass():
    u = updates(jnp.float32)
    out, _ = gradchain.centralize().update(u, gradchain.centralize().init(u))
    assert float(jnp.max(jnp.abs(out["w"].mean(1)))) < 1e-6
    assert (out["b"] == u["b"]).all() and (out["s"] == u["s"])


def test_normalize_by_update_norm_has_the_scale_factor_as_norm():
    u = updates(jnp.float32)
    t = gradchain.normalize_by_update_norm(3.0, 0.0)
    out, _ = t.update(u, t.init(u))
    assert abs(float(gradchain.global_norm(out)) - 3.0) < 1e-5


def test_bad_input_names_the_argument():
    with pytest.raises(gradchain.GradchainError, match="eps"):
        gradchain.normalize_by_update_norm(1.0, -1.0)
