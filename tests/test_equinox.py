"""gradchain in Equinox's standard filtered loop (``eqx.filter(model, eqx.is_array)``,
``eqx.filter_jit``, ``eqx.apply_updates``) against the same loop with Optax's optimizer of the
same math (float64, |diff| <= 1e-12), including parameter groups labelled from paths."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain

from .conftest import reference_promotion

STEPS = 5
TOL = 1e-12


def leaf_name(path) -> str:
    """The field name of a leaf in an Equinox module: ``.weight``, ``.bias``."""
    return [k.name for k in path if isinstance(k, jax.tree_util.GetAttrKey)][-1]


def weight_labels(params):
    return jax.tree_util.tree_map_with_path(
        lambda path, _: "weights" if leaf_name(path) == "weight" else "biases", params
    )


PAIRS = {
    "adam": lambda: (gradchain.adam(1e-2), optax.adam(1e-2)),
    "adamw": lambda: (gradchain.adamw(1e-2, weight_decay=0.1), optax.adamw(1e-2, weight_decay=0.1)),
    "groups-by-path": lambda: (
        gradchain.partition(
            {"weights": gradchain.adamw(1e-2, weight_decay=0.1), "biases": gradchain.sgd(0.05)},
            weight_labels,
        ),
        optax.multi_transform(
            {"weights": optax.adamw(1e-2, weight_decay=0.1), "biases": optax.sgd(0.05)},
            weight_labels,
        ),
    ),
}


def _train(optimizer):
    model = eqx.nn.MLP(3, 2, width_size=8, depth=2, key=jax.random.key(0), dtype=jnp.float64)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def train_step(model, opt_state, x, y):
        def loss_fn(model):
            return jnp.mean((jax.vmap(model)(x) - y) ** 2)

        loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
        updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    rng = np.random.default_rng(0)
    losses = []
    for _ in range(STEPS):
        x, y = jnp.asarray(rng.normal(size=(16, 3))), jnp.asarray(rng.normal(size=(16, 2)))
        model, opt_state, loss = train_step(model, opt_state, x, y)
        losses.append(float(loss))
    return model, opt_state, losses


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_filtered_loop_steps_equal_optax(pair, x64):
    ours, theirs = PAIRS[pair]()
    model, state, losses = _train(ours)
    with reference_promotion():
        expected, _, expected_losses = _train(theirs)
    got = jax.tree.leaves(eqx.filter(model, eqx.is_array))
    want = jax.tree.leaves(eqx.filter(expected, eqx.is_array))
    assert max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(got, want)) <= TOL
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-12)
    assert losses[-1] < losses[0]
    if pair == "adam":
        # A named optimizer keeps its numbers once, by its argument names, and the chain's
        # state in ``inner``; the constant learning rate needs no state of its own.
        assert type(state).__name__ == "AdamLiveState"
        hyperparams = sorted(gradchain.get_hyperparams(state))
        assert hyperparams == ["b1", "b2", "eps", "eps_root", "learning_rate"]
        assert [type(s).__name__ for s in state.inner] == [
            "MomentumState",
            "BiasCorrectState",
            "RmsState",
            "EmptyState",
        ]
        # The moments are Equinox modules of the same shape as the model, arrays only.
        assert isinstance(state.inner[0].mu, eqx.nn.MLP)
        assert gradchain.get_slot(state, "mu")["mu"] is state.inner[0].mu
