"""What a step costs to trace: the chain's state check reads what ``init`` built instead of
tracing every member's ``init`` again, and a leaf already in the compute dtype is not cast.
Counted, never timed (times live in benchmarks/bench.py)."""

import collections

import jax
import jax.numpy as jnp
import optax
import pytest

import gradchain
from gradchain.base import EmptyState, GradientTransformation
from tests.conftest import reference_promotion


def counting(calls):
    """An identity transform that counts how often its ``init`` runs."""

    def init(params):
        calls.append(1)
        return EmptyState()

    return GradientTransformation(init, lambda u, s, p=None, **extra: (u, s), name="counting")


@gradchain.live
def counted_sgd(learning_rate: float = 0.1, calls: list | None = None):
    return gradchain.chain(
        counting(calls),
        gradchain.scale_by_momentum(0.9),
        gradchain.scale_by_learning_rate(learning_rate),
    )


PARAMS = {"w": jnp.ones((3, 2)), "b": jnp.zeros((2,))}


@pytest.mark.parametrize("make", ["chain", "live"])
def test_the_first_update_does_not_run_init_again(make):
    calls = []
    if make == "chain":
        opt = gradchain.chain(counting(calls), gradchain.sgd(0.1, momentum=0.9))
    else:
        opt = counted_sgd(0.1, calls=calls)
    state = opt.init(PARAMS)
    assert len(calls) == 1
    jax.jit(opt.update)(PARAMS, state, PARAMS)
    assert len(calls) == 1  # before: 2 (eval_shape of init inside the state check)
    # Another params tree is new to the chain: its state check traces init once for it.
    other = {"w": jnp.ones((4, 2)), "b": jnp.zeros((2,))}
    with pytest.raises(gradchain.GradchainError, match="shape"):
        opt.update(other, state, other)


def test_a_state_built_for_other_params_is_still_refused_after_init():
    opt = gradchain.adamw(1e-3)
    opt.init(PARAMS)
    small = {"w": jnp.ones((2, 2)), "b": jnp.zeros((2,))}
    with pytest.raises(gradchain.GradchainError, match="another params tree"):
        opt.update(PARAMS, opt.init(small), PARAMS)


@pytest.mark.parametrize("name", ["adam", "adamw", "rmsprop", "sgd"])
def test_float32_steps_trace_no_cast_per_leaf(name):
    params = {f"w{i}": jnp.ones((4, 4), jnp.float32) for i in range(10)}
    opt = getattr(gradchain, name)(1e-3)
    state = opt.init(params)
    jaxpr = jax.make_jaxpr(opt.update)(params, state, params)
    counts = collections.Counter(e.primitive.name for e in jaxpr.jaxpr.eqns)
    # Scalars may be cast once per step (the step count to float); never once per leaf.
    assert counts["convert_element_type"] <= 2, counts


def test_the_state_check_cache_is_consistent_with_optax_results():
    params = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(3, 2)}
    grads = jax.tree.map(lambda p: 0.5 * p + 0.1, params)
    ours, theirs = gradchain.adamw(1e-2), optax.adamw(1e-2)
    s1, s2 = ours.init(params), theirs.init(params)
    for _ in range(3):
        u1, s1 = jax.jit(ours.update)(grads, s1, params)
        with reference_promotion():  # Optax mixes int and float scalars
            u2, s2 = theirs.update(grads, s2, params)
    # float32, 3 steps: measured max |diff| 0 to 3e-9.
    assert jnp.max(jnp.abs(u1["w"] - u2["w"])) < 1e-7
