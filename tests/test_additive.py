"""The additive family (transforms/additive.py, optimizers/additive.py): noisy SGD."""

import jax
import jax.numpy as jnp
import optax

import gradchain
from tests.problems import max_diff


def test_noisy_sgd_takes_its_seed_as_a_traced_integer_under_optax_inject_hyperparams():
    """optax.inject_hyperparams hands ``key=0`` in as a traced int32; it was refused as not
    an integer. The injected optimizer's step and inner state equal plain noisy_sgd's: 0.0."""
    params = [-jnp.ones((2, 3)), jnp.ones((4,))]
    plain = gradchain.noisy_sgd(1e-3, eta=1e-4, key=0)
    injected = optax.inject_hyperparams(gradchain.noisy_sgd)(1e-3, eta=1e-4, key=0)
    u, s = jax.jit(plain.update)(params, plain.init(params), params)
    v, t = jax.jit(injected.update)(params, jax.jit(injected.init)(params), params)
    assert max_diff(u, v) == 0.0 and max_diff(s, t.inner_state) == 0.0
    assert jax.tree.structure(s) == jax.tree.structure(t.inner_state)
