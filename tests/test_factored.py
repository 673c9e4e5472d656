"""scale_by_factored_rms under Optax's keyword names (step_offset, epsilon, decay_rate_fn), and
Adafactor's init on abstract params (jax.ShapeDtypeStruct), against Optax, float32 and
float64. Tolerances measured once and frozen, the measured numbers beside them."""

import jax
import jax.numpy as jnp
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion

STEPS = 40


def problem(dtype):
    k = jax.random.split(jax.random.key(2), 2)
    target = {
        "w": jax.random.normal(k[0], (130, 129), dtype),
        "b": jax.random.normal(k[1], (5,), dtype),
    }

    def f(p):
        return sum(0.5 * jnp.sum((p[n] - target[n]) ** 2) for n in p)

    return f, jax.tree.map(jnp.zeros_like, target)


def descend(lib, opt, f, params):
    def body(carry, _):
        p, s = carry
        u, s = opt.update(jax.grad(f)(p), s, p)
        return (lib.apply_updates(p, u), s), f(p)

    (p, _), values = jax.lax.scan(body, (params, opt.init(params)), None, length=STEPS)
    return p, values


def capped(step, decay_rate):  # Zhai et al.'s schedule: beta capped at 0.999
    t = jnp.asarray(step, jnp.float32) + 1  # the step arrives as an int32, as in Optax
    return jnp.minimum(1.0 - t ** (-decay_rate), 0.999)


CASES = {  # name: (gradchain's, Optax's); the direction, then a fixed step
    "optax-keywords": (
        lambda: gradchain.chain(
            gradchain.scale_by_factored_rms(True, 0.8, step_offset=0, epsilon=1e-20),
            gradchain.scale(-0.05),
        ),
        lambda: optax.chain(
            optax.scale_by_factored_rms(True, 0.8, step_offset=0, epsilon=1e-20), optax.scale(-0.05)
        ),
    ),
    "decay_rate_fn": (
        lambda: gradchain.chain(
            gradchain.scale_by_factored_rms(decay_rate_fn=capped), gradchain.scale(-0.05)
        ),
        lambda: optax.chain(optax.scale_by_factored_rms(decay_rate_fn=capped), optax.scale(-0.05)),
    ),
    "positional": (  # Optax's positions: factored, decay_rate, step_offset, min_dim, eps, fn
        lambda: gradchain.chain(
            gradchain.scale_by_factored_rms(True, 0.7, 0, 100, 1e-30, capped),
            gradchain.scale(-0.05),
        ),
        lambda: optax.chain(
            optax.scale_by_factored_rms(True, 0.7, 0, 100, 1e-30, capped), optax.scale(-0.05)
        ),
    ),
}
# max |params difference| after 40 steps (params ~1), float32 / float64, measured. Optax
# evaluates its power schedule in float32 even for float64 params (ours in the moment's dtype):
# 1.7e-9 in float64 where the power schedule runs; the capped schedule is the same function in both.
MEASURED = {
    "optax-keywords": (2.4e-7, 1.7e-9),
    "decay_rate_fn": (2.4e-7, 4.4e-16),
    "positional": (2.4e-7, 4.4e-16),
}
FLOOR = {jnp.float32: 1e-6, jnp.float64: 4e-15}  # room for another CPU's FMA choices


def diff(name, dtype):
    ours, theirs = CASES[name]
    f, p0 = problem(dtype)
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


def test_step_offset_shifts_the_schedule_as_optax(dtype):
    # (a descent from count 0 with an offset would start at t = 1 - offset <= 0: NaN in both)
    f, p = problem(dtype)
    g = jax.grad(f)(jax.tree.map(lambda x: x + 0.5, p))
    ours = gradchain.scale_by_factored_rms(step_offset=3, decay_rate_fn=capped)
    theirs = optax.scale_by_factored_rms(step_offset=3, decay_rate_fn=capped)
    got, _ = ours.update(g, ours.init(p)._replace(count=jnp.asarray(10, jnp.int32)), p)
    with reference_promotion():
        want, _ = theirs.update(g, theirs.init(p)._replace(count=jnp.asarray(10, jnp.int32)), p)
    # measured: float32 1.4e-6, float64 1.8e-15 (one update from fresh statistics: entries ~10)
    bound = 6e-6 if dtype == jnp.float32 else 8e-15
    assert (
        max(
            float(jnp.max(jnp.abs(a - b)))
            for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want))
        )
        <= bound
    )


def test_adafactor_init_on_abstract_params(dtype):
    params = {"w": jnp.ones((256, 130), dtype), "b": jnp.ones((3,), dtype)}
    abstract = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), params)
    for kw in ({}, {"momentum": 0.9, "weight_decay_rate": 0.1}):
        opt = gradchain.adafactor(0.1, **kw)
        got, want = opt.init(abstract), opt.init(params)
        assert jax.tree.structure(got) == jax.tree.structure(want)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            assert a.shape == b.shape and a.dtype == b.dtype
        assert all(
            float(jnp.max(jnp.abs(a - b))) == 0
            for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want))
        )
        opt.update(params, got, params)  # the abstract init's state is a working state


def test_both_spellings_refused():
    with pytest.raises(gradchain.GradchainError, match="step_offset"):
        gradchain.scale_by_factored_rms(decay_offset=2, step_offset=2)
    with pytest.raises(gradchain.GradchainError, match="epsilon"):
        gradchain.scale_by_factored_rms(eps=1e-10, epsilon=1e-20)
    with pytest.raises(gradchain.GradchainError, match="decay_rate_fn"):
        gradchain.scale_by_factored_rms(decay_rate_fn=0.8)
