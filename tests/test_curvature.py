"""The curvature family (transforms/curvature.py, optimizers/curvature.py): Sophia against
optax.contrib.sophia."""

import jax.numpy as jnp
import optax
import pytest

import gradchain
from tests.problems import compare, tol


def with_objective(f, value):
    return {"obj_fn": f}


@pytest.mark.parametrize("kwargs", [{}, {"update_interval": 3, "gamma": 0.05, "weight_decay": 0.0}])
def test_sophia_equals_optax(kwargs, dtype):
    diff, _, _ = compare(
        lambda: gradchain.sophia(0.05, **kwargs),
        lambda: optax.contrib.sophia(0.05, **kwargs),
        dtype,
        with_objective,
    )
    # measured: float32 3.2e-6 (defaults), 1.8e-6 (interval 3); float64 0.0 and 0.0
    assert diff <= tol(dtype, 1e-5, 1e-14)


def test_sophia_needs_the_objective_and_keeps_optax_keywords():
    opt = gradchain.sophia(0.1)
    p = {"w": jnp.ones(3)}
    with pytest.raises(gradchain.GradchainError, match="obj_fn"):
        opt.update(p, opt.init(p), p)
    mask = {"w": False}
    opt = gradchain.sophia(0.1, weight_decay=0.5, weight_decay_mask=mask, clip_threshold=None)
    u, _ = opt.update(p, opt.init(p), p, obj_fn=lambda q: jnp.sum(q["w"] ** 2))
    assert float(jnp.max(jnp.abs(u["w"]))) > 1.0  # no clip, no decay: 0.1 * 1 / eps-ish
    hp = gradchain.get_hyperparams(opt.init(p))
    assert {"b1", "b2", "gamma", "weight_decay", "learning_rate"} <= set(hp)
