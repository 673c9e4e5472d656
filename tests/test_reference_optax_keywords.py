"""Optax's keywords on gradchain's named optimizers and wrappers (issue 16, item 2): each
against Optax's function called the same way, 100 steps of a noisy quadratic, float32 and
float64; tolerances measured (in the comments) and rounded up by about 3x."""

import jax
import jax.numpy as jnp
import optax
import pytest

import gradchain as gc
from tests.problems import final_gap, final_params


def _tree_mask(params):
    return {"w": True, "b": False}


# issue 16, item 2: Optax's keywords on the named optimizers. (ours, Optax's, tol32, tol64)
KEYWORDS = {
    "sgd_accumulator_dtype": (
        lambda: gc.sgd(0.05, 0.9, accumulator_dtype=jnp.float32),
        lambda: optax.sgd(0.05, 0.9, accumulator_dtype=jnp.float32),
        1e-07,
        1e-07,  # measured 0, 3.1e-08
    ),
    "adan_mask": (
        lambda: gc.adan(0.01, weight_decay=0.1, mask=_tree_mask),
        lambda: optax.adan(0.01, weight_decay=0.1, mask=_tree_mask),
        2e-06,
        4e-16,  # measured 3.9e-07, 1.1e-16
    ),
    "nadamw_mask": (
        lambda: gc.nadamw(0.01, weight_decay=0.1, mask=_tree_mask),
        lambda: optax.nadamw(0.01, weight_decay=0.1, mask=_tree_mask),
        9e-06,
        2e-16,  # measured 2.8e-06, 6.2e-17
    ),
    "nadamw_nesterov_false": (
        lambda: gc.nadamw(0.01, nesterov=False),
        lambda: optax.nadamw(0.01, nesterov=False),
        2e-05,
        4e-16,  # measured 3.4e-06, 1.1e-16
    ),
    "adamaxw_mask": (
        lambda: gc.adamaxw(0.01, weight_decay=0.1, mask=_tree_mask),
        lambda: optax.adamaxw(0.01, weight_decay=0.1, mask=_tree_mask),
        3e-07,
        4e-16,  # measured 8.9e-08, 1.1e-16
    ),
    "lamb_mask": (
        lambda: gc.lamb(0.01, weight_decay=0.1, mask=_tree_mask),
        lambda: optax.lamb(0.01, weight_decay=0.1, mask=_tree_mask),
        4e-07,
        4e-16,  # measured 1.2e-07, 1.1e-16
    ),
    "ademamix_mask": (
        lambda: gc.ademamix(0.01, weight_decay=0.1, mask=_tree_mask),
        lambda: optax.contrib.ademamix(0.01, weight_decay=0.1, mask=_tree_mask),
        2e-05,
        9e-17,  # measured 5.9e-06, 2.8e-17
    ),
    "nadam_nesterov_false": (
        lambda: gc.nadam(0.01, nesterov=False),
        lambda: optax.nadam(0.01, nesterov=False),
        1e-05,
        3e-16,  # measured 3.2e-06, 6.9e-17
    ),
    "adabelief_nesterov": (
        lambda: gc.adabelief(0.01, nesterov=True),
        lambda: optax.adabelief(0.01, nesterov=True),
        4e-06,
        2e-17,  # measured 1.1e-06, 3.5e-18
    ),
    "amsgrad_bias_correction": (
        lambda: gc.amsgrad(0.01, bias_correction_mu=False, bias_correction_nu=False),
        lambda: optax.amsgrad(0.01, bias_correction_mu=False, bias_correction_nu=False),
        3e-06,
        1e-15,  # measured 9.1e-07, 0
    ),
    "schedule_free_adamw_state_dtype": (
        lambda: gc.schedule_free_adamw(0.01, state_dtype=jnp.float32),
        lambda: optax.contrib.schedule_free_adamw(0.01, state_dtype=jnp.float32),
        9e-06,
        7e-08,  # measured 2.9e-06, 2.2e-08
    ),
    "adafactor_dtype_momentum": (
        lambda: gc.adafactor(0.01, momentum=0.9, dtype_momentum=jnp.float32),
        lambda: optax.adafactor(0.01, momentum=0.9, dtype_momentum=jnp.float32),
        4e-07,
        3e-07,  # measured 1.2e-07, 7.9e-08
    ),
    "masked_inner_keyword": (
        lambda: gc.chain(gc.masked(inner=gc.scale_by_adam(), mask=_tree_mask), gc.scale(-0.01)),
        lambda: optax.chain(
            optax.masked(inner=optax.scale_by_adam(), mask=_tree_mask), optax.scale(-0.01)
        ),
        1e-05,
        1e-15,  # measured 3.2e-06, 0
    ),
    "add_decayed_weights_mask": (
        lambda: gc.chain(gc.add_decayed_weights(0.1, mask=_tree_mask), gc.sgd(0.01)),
        lambda: optax.chain(optax.add_decayed_weights(0.1, mask=_tree_mask), optax.sgd(0.01)),
        1e-07,
        1e-15,  # measured 0, 0
    ),
    "multi_transform": (
        lambda: gc.multi_transform(
            {"x": gc.adam(0.05), "y": gc.sgd(0.1)}, param_labels={"w": "x", "b": "y"}
        ),
        lambda: optax.multi_transform(
            {"x": optax.adam(0.05), "y": optax.sgd(0.1)}, param_labels={"w": "x", "b": "y"}
        ),
        3e-06,
        1e-15,  # measured 9.5e-07, 0
    ),
    "partition_param_labels": (
        lambda: gc.partition(
            {"x": gc.adam(0.05), "y": gc.sgd(0.1)}, param_labels={"w": "x", "b": "y"}
        ),
        lambda: optax.partition(
            {"x": optax.adam(0.05), "y": optax.sgd(0.1)}, param_labels={"w": "x", "b": "y"}
        ),
        3e-06,
        1e-15,  # measured 9.5e-07, 0
    ),
}


@pytest.mark.parametrize("name", KEYWORDS)
def test_optax_keyword_equals_optax(name, dtype):
    ours, theirs, tol32, tol64 = KEYWORDS[name]
    gap = final_gap(ours(), theirs(), dtype)
    assert gap <= (tol32 if dtype == jnp.float32 else tol64), gap


@pytest.mark.parametrize(
    "optax_keyword, ours_keyword",
    [
        (
            lambda: gc.signum(0.01, accumulator_dtype=jnp.bfloat16),
            lambda: gc.signum(0.01, mu_dtype=jnp.bfloat16),
        ),
        (
            lambda: gc.adafactor(0.01, momentum=0.9, dtype_momentum=jnp.bfloat16),
            lambda: gc.adafactor(0.01, momentum=0.9, mu_dtype=jnp.bfloat16),
        ),
        (
            lambda: gc.schedule_free_adamw(0.01, state_dtype=jnp.bfloat16),
            lambda: gc.schedule_free_adamw(0.01, z_dtype=jnp.bfloat16),
        ),
        (
            lambda: gc.sgd(0.01, 0.9, accumulator_dtype=jnp.bfloat16),
            lambda: gc.chain(gc.trace(0.9, accumulator_dtype=jnp.bfloat16), gc.scale(-0.01)),
        ),
    ],
    ids=["signum", "adafactor", "schedule_free_adamw", "sgd"],
)
def test_optax_dtype_keyword_is_ours_bit_for_bit(optax_keyword, ours_keyword):
    """A bfloat16 slot: Optax multiplies decay * slot in bfloat16 (sgd: 1.4e-3 apart after 100
    steps, adafactor 4.7e-3), gradchain in float32; the keyword itself is ours exactly."""
    a, _ = final_params(optax_keyword(), jnp.float32)
    b, _ = final_params(ours_keyword(), jnp.float32)
    assert jax.tree.all(jax.tree.map(lambda x, y: bool(jnp.all(x == y)), a, b))
