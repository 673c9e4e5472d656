"""The tree utilities (gradchain/tree.py) against optax.tree_utils, and finding slots."""

import jax
import jax.numpy as jnp
import optax
import pytest

import gradchain


def test_tree_utilities_equal_optax_and_find_slots(x64):
    x = {"a": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array([[0.5, 4.0]])}
    y = jax.tree.map(lambda v: v * 0.5 - 1, x)
    tu = optax.tree_utils
    for ours, theirs in [
        (gradchain.tree_add(x, y, x), tu.tree_add(x, y, x)),
        (gradchain.tree_sub(x, y), tu.tree_sub(x, y)),
        (gradchain.tree_scale(2.0, x), tu.tree_scale(2.0, x)),
        (gradchain.tree_vdot(x, y), tu.tree_vdot(x, y)),
        (gradchain.tree_sum(x), tu.tree_sum(x)),
        (gradchain.tree_norm(x), tu.tree_norm(x)),
        (gradchain.tree_l2_norm(x, squared=True), tu.tree_norm(x, squared=True)),
        (gradchain.tree_norm(x, ord=1), tu.tree_norm(x, ord=1)),
        (gradchain.tree_norm(x, ord=jnp.inf), tu.tree_norm(x, ord=jnp.inf)),
        (gradchain.tree_max(x), tu.tree_max(x)),
        (gradchain.tree_zeros_like(x), tu.tree_zeros_like(x)),
        (gradchain.tree_ones_like(x), tu.tree_ones_like(x)),
        (gradchain.tree.add_scale(x, 3.0, y), tu.tree_add_scale(x, 3.0, y)),
        (gradchain.tree_utils.tree_bias_correction(x, 0.9, 3), tu.tree_bias_correction(x, 0.9, 3)),
    ]:
        assert jax.tree.all(
            jax.tree.map(lambda a, b: bool(jnp.allclose(a, b, rtol=1e-15)), ours, theirs)
        )
    params = {"w": jnp.zeros(3)}
    # Optax's own state: the same answer as optax.tree_utils.tree_get
    ostate = optax.adam(0.1).init(params)
    assert int(gradchain.tree_get(ostate, "count")) == int(tu.tree_get(ostate, "count"))
    assert type(gradchain.tree_get(ostate, "ScaleByAdamState")).__name__ == "ScaleByAdamState"
    # gradchain's: named slots and hyperparameters, and slot paths where a name repeats
    state = gradchain.adam(0.1).init(params)
    assert float(gradchain.tree_get(state, "learning_rate")) == pytest.approx(0.1)
    assert gradchain.tree_get(state, "mu")["w"].shape == (3,)
    with pytest.raises(KeyError, match="BiasCorrectState.count, RmsState.count"):
        gradchain.tree_get(state, "count")
    assert gradchain.tree_get(state, "nothing", default="absent") == "absent"
    state = gradchain.tree_set(state, learning_rate=0.5, **{"RmsState.count": 7})
    assert float(gradchain.get_hyperparams(state)["learning_rate"]) == 0.5
    assert int(gradchain.tree_get(state, "RmsState.count")) == 7
    assert gradchain.tree_get(state, "learning_rate").dtype == jnp.float64  # the stored dtype kept
    with pytest.raises(KeyError, match="no value"):
        gradchain.tree_set(state, missing=1.0)
