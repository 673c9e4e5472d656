"""The orthogonal family (transforms/orthogonal.py, optimizers/orthogonal.py): Newton-Schulz
orthogonalization and Muon."""

import jax
import jax.numpy as jnp
import numpy as np

"""Muon's new keywords (transforms/orthogonal.py, optimizers/orthogonal.py): adaptive,
preconditioning, the ns_coeffs presets and MuonDimensionNumbers, against Optax's
``contrib.muon`` / ``contrib.scale_by_muon``: 60 steps in one compiled scan, float32 and
float64. Tolerances measured once and frozen, the measured numbers beside them."""

import optax
import pytest

import gradchain
from gradchain.transforms.orthogonal import newton_schulz
from tests import problems
from tests.conftest import reference_promotion
from tests.problems import descent_gap


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

STEPS = 60
oc = optax.contrib


def problem(dtype):
    """A matrix, a stack of matrices (3-D), a 4-D kernel and a vector, least squares each."""
    k = jax.random.split(jax.random.key(5), 4)
    target = {
        "w": jax.random.normal(k[0], (6, 4), dtype),
        "heads": jax.random.normal(k[1], (3, 5, 4), dtype),
        "conv": jax.random.normal(k[2], (2, 2, 3, 4), dtype),
        "b": jax.random.normal(k[3], (4,), dtype),
    }

    def f(p):
        return sum(0.5 * jnp.sum((p[n] - target[n]) ** 2) for n in p)

    return f, jax.tree.map(jnp.zeros_like, target)


def descend(lib, opt, f, params):
    return problems.descend(lib, opt, f, params, steps=STEPS)


def dims(lib):
    """Muon for the 2-D leaf, the stack (batch axis 0) and the kernel (fan-in HWI); AdamW for b."""
    D = lib.MuonDimensionNumbers
    return {"w": D(), "heads": D(1, 2), "conv": D((0, 1, 2), 3), "b": None}


def pair(lr=0.02, **kw):
    def ours():
        return gradchain.muon(lr, **{k: v(gradchain) if callable(v) else v for k, v in kw.items()})

    def theirs():
        return oc.muon(lr, **{k: v(oc) if callable(v) else v for k, v in kw.items()})

    return ours, theirs


CASES = {
    "adaptive": pair(adaptive=True),
    "spectral": pair(preconditioning="spectral"),
    "aol": pair(preconditioning="aol"),
    "schatten": pair(preconditioning="schatten", ns_steps=4),
    "dion": pair(ns_coeffs="dion"),
    "dimension-numbers": pair(muon_weight_dimension_numbers=dims),
    # adaptive scales by <m, O> summed over the whole stack: a smaller learning rate keeps it stable
    "dimension-numbers-adaptive": pair(0.003, muon_weight_dimension_numbers=dims, adaptive=True),
    "dimension-numbers-rms-decay": pair(
        0.1, muon_weight_dimension_numbers=dims, consistent_rms=0.2, weight_decay=0.01
    ),
    "dimension-numbers-function": pair(
        muon_weight_dimension_numbers=lambda lib: lambda params: dims(lib)
    ),
    "scale_by_muon-in-optax-chain": (
        lambda: optax.chain(
            gradchain.scale_by_muon(
                preconditioning="aol",
                weight_dimension_numbers={
                    "w": gradchain.MuonDimensionNumbers(),
                    "heads": gradchain.MuonDimensionNumbers(1, 2),
                },
            ),
            optax.scale(-0.02),
        ),
        lambda: optax.chain(
            oc.scale_by_muon(
                preconditioning="aol",
                weight_dimension_numbers={
                    "w": oc.MuonDimensionNumbers(),
                    "heads": oc.MuonDimensionNumbers(1, 2),
                },
            ),
            optax.scale(-0.02),
        ),
    ),
}
# max |params difference| after 60 steps (params ~1), float32 / float64, measured (five
# Newton-Schulz steps amplify an ulp of the momentum ~100x in float32):
MEASURED = {
    "adaptive": (1.3e-5, 1.3e-15),
    "spectral": (7.3e-6, 2.8e-16),
    "aol": (7.3e-6, 5.6e-16),
    "schatten": (7.3e-6, 4.4e-16),
    "dion": (7.3e-6, 6.7e-16),
    "dimension-numbers": (4.9e-6, 1.0e-15),
    "dimension-numbers-adaptive": (1.5e-6, 1.4e-15),
    "dimension-numbers-rms-decay": (1.2e-6, 3.1e-15),
    "dimension-numbers-function": (4.9e-6, 1.0e-15),
    "scale_by_muon-in-optax-chain": (4.8e-7, 5.6e-16),
}
FLOOR = {jnp.float32: 1e-6, jnp.float64: 4e-15}  # room for another CPU's FMA choices


def diff(name, dtype):
    ours, theirs = CASES[name]
    f, p0 = problem(dtype)
    if name.startswith("scale_by_muon"):
        p0 = {"w": p0["w"], "heads": p0["heads"]}
    return descent_gap(ours(), theirs(), (f, p0), descend)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_optax(dtype, name):
    assert diff(name, dtype) <= max(4 * MEASURED[name][dtype == jnp.float64], FLOOR[dtype])


def test_bad_input_names_the_argument():
    with pytest.raises(gradchain.GradchainError, match="preconditioning"):
        gradchain.muon(0.1, preconditioning="svd")
    with pytest.raises(gradchain.GradchainError, match="ns_coeffs"):
        gradchain.muon(0.1, ns_coeffs="polar")
    t = gradchain.scale_by_newton_schulz(
        weight_dimension_numbers=gradchain.MuonDimensionNumbers(0, 0)
    )
    with pytest.raises(gradchain.GradchainError, match="overlap"):
        t.update(jnp.ones((2, 3, 4)), t.init(jnp.ones((2, 3, 4))))
