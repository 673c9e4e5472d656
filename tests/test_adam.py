"""The Adam family (transforms/adam.py, optimizers/adam.py)."""

import chex
import jax
import jax.numpy as jnp

import gradchain
from tests.problems import descent_gap, grads_sequence, max_abs_diff, small_tree


def test_live_alpha_changes_without_recompiling():
    params = small_tree(jnp.float32)
    grads = jax.tree.map(lambda g: g[0], grads_sequence(params, jnp.float32, steps=1))
    opt = gradchain.ademamix(0.01)
    step = jax.jit(chex.assert_max_traces(opt.update, n=1))  # alpha is live: no retrace
    state = opt.init(params)
    u5, _ = step(grads, state, params)
    state = gradchain.set_hyperparam(state, "alpha", 0.0)  # the live alpha
    u0, _ = step(grads, state, params)
    reference = gradchain.ademamix(0.01, alpha=0.0)
    want0, _ = reference.update(grads, reference.init(params), params)
    assert max_abs_diff(u0, want0) <= 1e-7 and max_abs_diff(u0, u5) > 1e-6  # 5e-6 at step 1
"""Adam's family additions (transforms/adam.py, optimizers/adam.py): ACProp and simplified
AdEMAMix against Optax's functions of the same name, 120 steps in one compiled scan, float32
and float64. Tolerances measured once and frozen, the measured numbers beside them."""

import optax
import pytest

STEPS = 120
oc = optax.contrib


def problem(dtype):
    scales = jnp.linspace(0.5, 4.0, 6, dtype=dtype).reshape(2, 3)

    def f(p):
        return 0.5 * jnp.sum(scales * (p["w"] - 1.0) ** 2) + jnp.sum(p["b"] ** 4) + 0.1

    return f, {"w": jnp.full((2, 3), 2.0, dtype), "b": jnp.asarray([1.0, -0.5, 0.25], dtype)}


def descend(lib, opt, f, params):
    def body(carry, _):
        p, s = carry
        grad = jax.grad(f)(p)
        u, s = opt.update(grad, s, p)
        return (lib.apply_updates(p, u), s), f(p)

    (p, _), values = jax.lax.scan(body, (params, opt.init(params)), None, length=STEPS)
    return p, values


SCHEDULED = {  # scale_by_ademamix's b3 and alpha as schedules of the step, the rest tuned
    "b1": 0.8,
    "b2": 0.99,
    "b3": optax.linear_schedule(0.9, 0.999, 60),
    "alpha": optax.linear_schedule(0.0, 5.0, 60),
    "eps": 1e-6,
    "eps_root": 1e-8,
}
CASES = {  # name: (gradchain's, Optax's)
    "acprop": (lambda: gradchain.acprop(0.02), lambda: oc.acprop(0.02)),
    "acprop-tuned": (
        lambda: gradchain.acprop(0.02, 0.8, 0.99, 1e-8, 1e-10, 1e-2, {"w": True, "b": False}),
        lambda: oc.acprop(0.02, 0.8, 0.99, 1e-8, 1e-10, 1e-2, {"w": True, "b": False}),
    ),
    "simplified_ademamix": (
        lambda: gradchain.simplified_ademamix(0.01),
        lambda: oc.simplified_ademamix(0.01),
    ),
    "simplified_ademamix-tuned": (
        lambda: gradchain.simplified_ademamix(0.01, 0.9, 0.99, 2.0, 1e-6, 1e-8, 1e-2),
        lambda: oc.simplified_ademamix(0.01, 0.9, 0.99, 2.0, 1e-6, 1e-8, 1e-2),
    ),
    "simplified_ademamix-alpha-schedule": (
        lambda: gradchain.simplified_ademamix(0.01, alpha=optax.linear_schedule(0.0, 5.0, 60)),
        lambda: oc.simplified_ademamix(0.01, alpha=optax.linear_schedule(0.0, 5.0, 60)),
    ),
    # the direction alone, the schedule read by its own count, inside Optax's chain
    "scale_by_simplified_ademamix-in-optax-chain": (
        lambda: optax.chain(
            gradchain.scale_by_simplified_ademamix(alpha=optax.linear_schedule(0.0, 5.0, 60)),
            optax.scale(-0.01),
        ),
        lambda: optax.chain(
            oc.scale_by_simplified_ademamix(alpha=optax.linear_schedule(0.0, 5.0, 60)),
            optax.scale(-0.01),
        ),
    ),
    "scale_by_ademamix-in-optax-chain": (
        lambda: optax.chain(gradchain.scale_by_ademamix(), optax.scale(-0.01)),
        lambda: optax.chain(oc.scale_by_ademamix(), optax.scale(-0.01)),
    ),
    "scale_by_ademamix-schedules": (
        lambda: optax.chain(gradchain.scale_by_ademamix(**SCHEDULED), optax.scale(-0.05)),
        lambda: optax.chain(oc.scale_by_ademamix(**SCHEDULED), optax.scale(-0.05)),
    ),
    "scale_by_adopt-in-optax-chain": (
        lambda: optax.chain(gradchain.scale_by_adopt(), optax.scale(-0.01)),
        lambda: optax.chain(oc.scale_by_adopt(), optax.scale(-0.01)),
    ),
    "scale_by_adopt-nesterov": (
        lambda: optax.chain(gradchain.scale_by_adopt(0.8, nesterov=True), optax.scale(-0.01)),
        lambda: optax.chain(oc.scale_by_adopt(0.8, nesterov=True), optax.scale(-0.01)),
    ),
    "scale_by_adopt-no-clipping": (
        lambda: optax.chain(
            gradchain.scale_by_adopt(b2=0.99, eps=1e-4, use_clipping=False), optax.scale(-0.01)
        ),
        lambda: optax.chain(
            oc.scale_by_adopt(b2=0.99, eps=1e-4, use_clipping=False), optax.scale(-0.01)
        ),
    ),
}
# max |params difference| after 120 steps (params ~1), float32 / float64, measured (simplified
# AdEMAMix's default b1 = 0.99 sums ~100 gradients undamped: the one case above 1e-6):
MEASURED = {
    "acprop": (6.7e-7, 0.0),
    "acprop-tuned": (4.5e-8, 0.0),
    "simplified_ademamix": (2.5e-6, 2.4e-15),
    "simplified_ademamix-tuned": (6.0e-8, 4.2e-17),
    "simplified_ademamix-alpha-schedule": (3.0e-8, 2.2e-16),
    "scale_by_simplified_ademamix-in-optax-chain": (3.0e-8, 2.2e-16),
    # AdEMAMix: float32 rounding of the bias corrections (Optax computes 1 - b**t in float32;
    # the same runs agree exactly in float64)
    "scale_by_ademamix-in-optax-chain": (7.4e-6, 0.0),
    "scale_by_ademamix-schedules": (1.2e-6, 0.0),
    "scale_by_adopt-in-optax-chain": (0.0, 0.0),
    "scale_by_adopt-nesterov": (0.0, 0.0),
    "scale_by_adopt-no-clipping": (0.0, 0.0),
}
FLOOR = {jnp.float32: 1e-6, jnp.float64: 4e-15}  # room for another CPU's FMA choices


def bound(name, dtype):
    return max(4 * MEASURED[name][dtype == jnp.float64], FLOOR[dtype])


def diff(name, dtype):
    ours, theirs = CASES[name]
    return descent_gap(ours(), theirs(), problem(dtype), descend)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_optax(dtype, name):
    assert diff(name, dtype) <= bound(name, dtype)


def test_acprop_first_step_is_the_gradient():
    t = gradchain.scale_by_acprop()
    g = jnp.asarray([1.0, -2.0])
    out, _ = t.update(g, t.init(g))
    assert jnp.allclose(out, g)


def test_bad_input_names_the_argument():
    with pytest.raises(gradchain.GradchainError, match="b3"):
        gradchain.scale_by_ademamix(b3=1.5)
    with pytest.raises(gradchain.GradchainError, match="b2"):
        gradchain.scale_by_adopt(b2=-0.5)
    with pytest.raises(gradchain.GradchainError, match="b2"):
        gradchain.acprop(0.1, b2=1.5)
    with pytest.raises(gradchain.GradchainError, match="b1"):
        gradchain.simplified_ademamix(0.1, b1=-0.1)
