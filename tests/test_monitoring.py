"""gradchain.combine.monitoring against Optax: snapshot, monitor, measure_with_ema pass the
updates through unchanged and keep the same measurements (measured difference 0.0 for the
norms in float32 and float64; the EMA through gradchain.ema: see the tolerance below)."""

import jax
import jax.numpy as jnp
import optax

import gradchain as gc
from tests.conftest import reference_promotion


def _steps(opt, dtype, n=4):
    params = {"w": jnp.ones((2, 3), dtype), "b": jnp.zeros(2, dtype)}
    state = opt.init(params)
    for i in range(n):
        g = jax.tree.map(lambda x, i=i: x * (i + 1) - 0.5, params)
        out, state = opt.update(g, state, params)
        assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), out, g))
    return state


def test_snapshot_matches_optax(dtype):
    with reference_promotion():
        ours = _steps(gc.snapshot("norm", optax.tree.norm), dtype)
        theirs = _steps(optax.transforms.snapshot("norm", optax.tree.norm), dtype)
    assert float(ours.measurement["norm"]) == float(theirs.measurement["norm"])


def test_monitor_with_functions_and_ema_matches_optax(dtype):
    def measures(m):
        return {"norm": optax.tree.norm, "avg": m(optax.tree.norm, 0.9)}

    with reference_promotion():
        ours = _steps(gc.monitor(measures(gc.measure_with_ema)), dtype)
        theirs = _steps(
            optax.transforms.monitor(measures(optax.transforms.measure_with_ema)), dtype
        )
    assert float(ours.measurements["norm"]) == float(theirs.measurements["norm"])
    # measured |difference| 0.0 (float32 and float64): the same EMA and bias correction
    gap = abs(float(ours.measurements["avg"]) - float(theirs.measurements["avg"]))
    assert gap <= 1e-6 * float(theirs.measurements["avg"])


def test_measure_with_ema_without_debias(dtype):
    with reference_promotion():
        ours = _steps(
            gc.monitor({"m": gc.measure_with_ema(optax.tree.norm, 0.5, debias=False)}), dtype
        )
        theirs = _steps(
            optax.transforms.monitor(
                {"m": optax.transforms.measure_with_ema(optax.tree.norm, 0.5, debias=False)}
            ),
            dtype,
        )
    assert abs(float(ours.measurements["m"]) - float(theirs.measurements["m"])) <= 1e-6


def test_monitor_refuses_a_measure_that_is_neither_naming_it():
    import pytest

    with pytest.raises(gc.GradchainError, match="measures\\['x'\\]"):
        gc.monitor({"x": 3.0})


def test_a_boolean_measure_is_averaged_as_a_fraction_as_optax_does(dtype):
    # Optax's monitor docstring: the EMA of ``norm(u) > threshold`` (how often a clip bites)
    def measures(m):
        return {"clipped": m(lambda u: optax.tree.norm(u) > 2.0, 0.9)}

    with reference_promotion():
        ours = _steps(gc.monitor(measures(gc.measure_with_ema)), dtype)
        theirs = _steps(
            optax.transforms.monitor(measures(optax.transforms.measure_with_ema)), dtype
        )
    got, want = ours.measurements["clipped"], theirs.measurements["clipped"]
    assert jnp.issubdtype(got.dtype, jnp.floating)
    assert 0.0 < float(want) < 1.0  # some steps clipped, some not: a fraction
    assert abs(float(got) - float(want)) <= 1e-6


def test_a_boolean_measure_keeps_one_state_structure_under_jit():
    opt = gc.monitor({"big": gc.measure_with_ema(lambda u: optax.tree.norm(u) > 1.0, 0.5)})
    params = jnp.ones(3)
    state = opt.init(params)
    step = jax.jit(opt.update)
    for g in (jnp.ones(3), jnp.zeros(3)):
        _, new = step(g, state, params)
        assert jax.tree.structure(new) == jax.tree.structure(state)
        assert [x.dtype for x in jax.tree.leaves(new)] == [
            x.dtype for x in jax.tree.leaves(state)
        ]
        state = new
    # True then False: the average 0.5 * 0.5 = 0.25, debiased by 1 - 0.5**2: one third
    assert abs(float(state.measurements["big"]) - 1 / 3) <= 1e-7
