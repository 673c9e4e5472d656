"""gradchain.combine.conditions against Optax: conditionally_transform, conditionally_mask,
apply_every, and MultiSteps' skip rules skip_not_finite / skip_large_updates. The wrapped
transforms are the same Optax ones on both sides, so the outputs are equal exactly (measured
difference 0.0 in float32 and float64)."""

import functools

import jax
import jax.numpy as jnp
import optax
import pytest

import gradchain as gc
from tests.conftest import reference_promotion


def _run(opt, grads, params):
    state = opt.init(params)
    outs = []
    for g in grads:
        u, state = jax.jit(opt.update)(g, state, params)
        outs.append(u)
    return outs, state


def _grads(dtype, n=6):
    return [
        {"w": jnp.full((2, 2), float(i + 1), dtype), "b": jnp.arange(2, dtype=dtype) - i}
        for i in range(n)
    ]


@pytest.mark.parametrize("name", ["conditionally_transform", "conditionally_mask"])
def test_conditional_wrappers_match_optax(name, dtype):
    grads, params = _grads(dtype), _grads(dtype)[0]
    every_other = lambda step: step % 2 == 0  # noqa: E731
    ours = getattr(gc, name)(optax.adam(0.1), every_other)
    theirs = getattr(optax.transforms, name)(optax.adam(0.1), every_other)
    with reference_promotion():
        got, got_state = _run(ours, grads, params)
        want, want_state = _run(theirs, grads, params)
    for a, b in zip(got, want):
        assert jax.tree.all(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), a, b))
    assert int(got_state.step) == int(want_state.step) == len(grads)
    assert jax.tree.all(
        jax.tree.map(
            lambda x, y: bool(jnp.array_equal(x, y)), got_state.inner_state, want_state.inner_state
        )
    )


def test_conditionally_transform_forwards_extra_args_only_when_asked():
    seen = []

    def cond(step, **extra):
        seen.append(sorted(extra))
        return step >= 0

    p = jnp.ones(2)
    for forward in (False, True):
        t = gc.conditionally_transform(gc.scale(2.0), cond, forward_extra_args=forward)
        t.update(p, t.init(p), p, loss=1.0)
    assert seen == [[], ["loss"]]


def test_conditionally_transform_refuses_a_non_function_naming_it():
    with pytest.raises(gc.GradchainError, match="should_transform_fn"):
        gc.conditionally_transform(gc.scale(2.0), True)


@pytest.mark.parametrize("k", [1, 3])
def test_apply_every_matches_optax(k, dtype):
    grads, params = _grads(dtype, 7), _grads(dtype)[0]
    with reference_promotion():
        got, _ = _run(gc.apply_every(k), grads, params)
        want, _ = _run(optax.apply_every(k), grads, params)
    for a, b in zip(got, want):
        assert jax.tree.all(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), a, b))


def test_apply_every_refuses_k_zero_naming_it():
    with pytest.raises(gc.GradchainError, match="k"):
        gc.apply_every(0)


def test_skip_rules_match_optax_and_drive_multisteps(dtype):
    good = {"a": jnp.array([3.0, 4.0], dtype)}
    bad = {"a": jnp.array([jnp.nan, jnp.inf], dtype)}
    for u in (good, bad):
        skip, info = gc.skip_not_finite(u, 0, None)
        want, want_info = optax.transforms.skip_not_finite(u, 0, None)
        assert bool(skip) == bool(want) and int(info["num_not_finite"]) == int(
            want_info["num_not_finite"]
        )
        for limit in (10.0, 30.0):
            skip, info = gc.skip_large_updates(u, 0, None, limit)
            want, want_info = optax.transforms.skip_large_updates(u, 0, None, limit)
            assert bool(skip) == bool(want)
    rule = functools.partial(gc.skip_large_updates, max_squared_norm=10.0)
    opt = gc.MultiSteps(gc.sgd(1.0), every_k_schedule=1, should_skip_update_fn=rule)
    state = opt.init(good)
    u, state = opt.update(good, state, good)  # squared norm 25 >= 10: skipped, no step
    assert float(jnp.abs(u["a"]).sum()) == 0.0
