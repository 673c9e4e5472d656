"""Muon's new keywords (transforms/orthogonal.py, optimizers/orthogonal.py): adaptive,
preconditioning, the ns_coeffs presets and MuonDimensionNumbers, against Optax's
``contrib.muon`` / ``contrib.scale_by_muon``: 60 steps in one compiled scan, float32 and
float64. Tolerances measured once and frozen, the measured numbers beside them."""

import jax
import jax.numpy as jnp
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion

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
    def body(carry, _):
        p, s = carry
        value, grad = jax.value_and_grad(f)(p)
        u, s = opt.update(grad, s, p)
        return (lib.apply_updates(p, u), s), value

    (p, _), values = jax.lax.scan(body, (params, opt.init(params)), None, length=STEPS)
    return p, values


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
    got = jax.jit(lambda p: descend(gradchain, ours(), f, p))(p0)
    with reference_promotion():
        want = jax.jit(lambda p: descend(optax, theirs(), f, p))(p0)
    assert float(got[1][-1]) < 0.5 * float(got[1][0])  # it descended: not vacuous
    for a, x in zip(jax.tree.leaves(got[0]), jax.tree.leaves(p0)):
        assert a.dtype == x.dtype
    return max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(got[0]), jax.tree.leaves(want[0]))
    )


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
