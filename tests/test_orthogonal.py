"""The orthogonal family (transforms/orthogonal.py, optimizers/orthogonal.py): Newton-Schulz
orthogonalization and Muon."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from gradchain.transforms.orthogonal import newton_schulz
from tests.conftest import reference_promotion


def test_muon_keeps_one_momentum_for_matrices_and_adam_for_the_rest():
    params = {"w": jnp.zeros((64, 32)), "b": jnp.zeros(32)}
    report = gradchain.memory_report(gradchain.muon(0.01), params)
    assert report.per_parameter_elements == 64 * 32 + 2 * 32


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.complex64])
def test_newton_schulz_matches_optax_and_pushes_singular_values_towards_one(dtype):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 24)) + (
        1j * rng.normal(size=(40, 24)) if dtype == jnp.complex64 else 0
    )
    x = jnp.asarray(x, dtype)
    ours = newton_schulz(x)
    with reference_promotion():
        theirs = optax.contrib._muon.orthogonalize_via_newton_schulz(
            x, jnp.asarray(gradchain.transforms.orthogonal.NS_COEFFS), 5
        )
    assert ours.dtype == dtype
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=0, atol=2e-6)
    s = np.linalg.svd(np.asarray(ours), compute_uv=False)
    assert 0.6 < s.min() and s.max() < 1.25


def test_newton_schulz_refuses_a_non_matrix_leaf_with_a_remedy():
    opt = gradchain.scale_by_newton_schulz()
    with pytest.raises(gradchain.GradchainError, match="gradchain.partition"):
        opt.update({"t": jnp.ones((2, 3, 4))}, opt.init(None))


def test_muon_refuses_bad_coefficients():
    with pytest.raises(gradchain.GradchainError, match="ns_coeffs"):
        gradchain.muon(0.01, ns_coeffs=(1.0, 2.0))
    with pytest.raises(gradchain.GradchainError, match="ns_steps"):
        gradchain.muon(0.01, ns_coeffs=((3.0, -4.0, 2.0),) * 2, ns_steps=5)


def test_muon_passes_zero_size_matrices_through_as_empty_updates():
    # a (0, 3) leaf once divided by its fan_in of 0 (ZeroDivisionError); Optax 0.2.8's
    # contrib.muon still does. No elements: the update is empty, the other leaves step.
    params = {"w": jnp.zeros((0, 3)), "v": jnp.ones((3, 0)), "x": jnp.ones((4, 3))}
    opt = gradchain.muon(0.1)
    for update in (opt.update, jax.jit(opt.update)):
        out, _ = update(params, opt.init(params), params)
        assert {k: (u.shape, u.dtype) for k, u in out.items()} == {
            k: (p.shape, p.dtype) for k, p in params.items()
        }
        assert np.all(np.isfinite(np.asarray(out["x"]))) and np.any(np.asarray(out["x"]))
