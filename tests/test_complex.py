"""split_real_and_imaginary (combine/complex.py) against Optax's function of the same name:
100 steps of Adam on a complex least-squares problem, float32/complex64 and
float64/complex128. Tolerances measured once and frozen, the measured numbers beside them."""

import jax
import jax.numpy as jnp
import optax
import pytest

import gradchain
from tests.problems import descent_gap

STEPS = 100


def problem(dtype):
    cdtype = jnp.complex64 if dtype == jnp.float32 else jnp.complex128
    k = jax.random.split(jax.random.key(0), 3)
    a = jax.lax.complex(
        jax.random.normal(k[0], (5, 3), dtype), jax.random.normal(k[1], (5, 3), dtype)
    )
    y = jax.random.normal(k[2], (5,), dtype).astype(cdtype)

    def f(p):
        r = 0.5 * (a @ p["z"]) - y
        return jnp.sum((r * jnp.conj(r)).real) + jnp.sum((p["x"] - 1.0) ** 2)

    return f, {"z": jnp.zeros(3, cdtype), "x": jnp.zeros(2, dtype)}


def descend(lib, opt, f, params):
    def body(carry, _):
        p, s = carry
        value, grad = jax.value_and_grad(f)(p)
        u, s = opt.update(jax.tree.map(jnp.conj, grad), s, p)
        return (lib.apply_updates(p, u), s), value

    (p, _), values = jax.lax.scan(body, (params, opt.init(params)), None, length=STEPS)
    return p, values


CASES = {
    "adam": (
        lambda: gradchain.split_real_and_imaginary(gradchain.adam(0.05)),
        lambda: optax.contrib.split_real_and_imaginary(optax.adam(0.05)),
    ),
    "adamw-in-chain": (
        lambda: gradchain.chain(
            gradchain.clip_by_global_norm(1.0),
            gradchain.split_real_and_imaginary(gradchain.adamw(0.05)),
        ),
        lambda: optax.chain(
            optax.clip_by_global_norm(1.0),
            optax.contrib.split_real_and_imaginary(optax.adamw(0.05)),
        ),
    ),
}
# max |params difference| after 100 steps (params ~1), float32 / float64, measured:
# (the residual is scaled by 0.5 so that the steps stay stable: at full scale lr = 0.05
# oscillates and any ulp grows, for SGD as much as for Adam)
MEASURED = {"adam": (2.4e-7, 1.5e-16), "adamw-in-chain": (3.6e-7, 9.9e-16)}
FLOOR = {jnp.float32: 1e-6, jnp.float64: 4e-15}  # room for another CPU's FMA choices


def diff(name, dtype):
    ours, theirs = CASES[name]
    return descent_gap(ours(), theirs(), problem(dtype), descend)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_optax(dtype, name):
    assert diff(name, dtype) <= max(4 * MEASURED[name][dtype == jnp.float64], FLOOR[dtype])


def test_each_part_gets_its_own_statistics():
    opt = gradchain.split_real_and_imaginary(gradchain.scale_by_adam())
    z = jax.lax.complex(jnp.asarray([3.0]), jnp.asarray([0.01]))
    out, state = opt.update(z, opt.init(z))
    # Adam's first step is sign-like per real coordinate: both parts about 1 in size
    assert abs(float(out[0].real) - 1.0) < 1e-4 and abs(float(out[0].imag) - 1.0) < 1e-4
    assert type(state).__name__ == "SplitRealAndImaginaryState"
