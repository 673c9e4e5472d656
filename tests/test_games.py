"""The games family (transforms/games.py, optimizers/games.py): the optimistic methods."""

import jax
import jax.numpy as jnp
import pytest

import gradchain
from tests.problems import descend, max_diff, quadratic


def test_optimistic_adam_is_deprecated_for_v2_as_in_optax_and_is_v2_with_its_rate_inside():
    """Optax deprecates optimistic_adam for optimistic_adam_v2 (its alias suite expects the
    warning); the first version is v2 with alpha = learning_rate, beta = optimism and a unit
    learning rate: 5 steps, measured bit for bit."""
    with pytest.warns(DeprecationWarning, match="use `optimistic_adam_v2` instead"):
        first = gradchain.optimistic_adam(0.02, optimism=0.01)
    second = gradchain.optimistic_adam_v2(1.0, alpha=0.02, beta=0.01)
    f, p0 = quadratic(jnp.float32)
    got, want = (jax.jit(lambda p, o=o: descend(gradchain, o, f, p))(p0) for o in (first, second))
    assert max_diff(got[0], want[0]) == 0.0
