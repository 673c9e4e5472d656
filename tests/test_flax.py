"""gradchain inside Flax: NNX's ``nnx.Optimizer`` and Linen's ``TrainState``, jitted, against
the same steps with Optax's optimizer of the same math (float64, |diff| <= 1e-12), with
parameter groups and masks whose labels come from the paths (``.../bias``, ``.../scale``)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from flax.training import train_state

import gradchain

from .conftest import reference_promotion

STEPS = 5
TOL = 1e-12
NO_DECAY = ("bias", "scale")  # biases and LayerNorm scales: no weight decay


def leaf_name(path) -> str:
    """The parameter's own name: the last dict key of its path. (NNX hands ``init`` a tree of
    Variables, whose paths end in ``.value``, and ``update`` the bare arrays: read the last
    dict key, not the last path entry, so that both see the same labels.)"""
    return [k.key for k in path if isinstance(k, jax.tree_util.DictKey)][-1]


def decay_labels(params):
    return jax.tree_util.tree_map_with_path(
        lambda path, _: "no_decay" if leaf_name(path) in NO_DECAY else "decay", params
    )


def decay_mask(params):
    return jax.tree_util.tree_map_with_path(lambda path, _: leaf_name(path) not in NO_DECAY, params)


def _batches(seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(16, 3)), rng.normal(size=(16, 2))) for _ in range(STEPS)]


# Pairs (gradchain optimizer, Optax optimizer of the same math), built lazily: under x64.
PAIRS = {
    "adam": lambda: (gradchain.adam(1e-2), optax.adam(1e-2)),
    "adamw-mask-by-path": lambda: (
        gradchain.adamw(1e-2, weight_decay=0.1, mask=decay_mask),
        optax.adamw(1e-2, weight_decay=0.1, mask=decay_mask),
    ),
    "groups-by-path": lambda: (
        gradchain.partition(
            {"decay": gradchain.adamw(1e-2, weight_decay=0.1), "no_decay": gradchain.adam(1e-2)},
            decay_labels,
        ),
        optax.multi_transform(
            {"decay": optax.adamw(1e-2, weight_decay=0.1), "no_decay": optax.adam(1e-2)},
            decay_labels,
        ),
    ),
    "masked-decay-by-path": lambda: (
        gradchain.chain(
            gradchain.masked(gradchain.add_decayed_weights(0.1), decay_mask),
            gradchain.adam(1e-2),
        ),
        optax.chain(optax.masked(optax.add_decayed_weights(0.1), decay_mask), optax.adam(1e-2)),
    ),
}


# --- Flax NNX ------------------------------------------------------------------------------


class NnxMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.dense1 = nnx.Linear(3, 8, param_dtype=jnp.float64, rngs=rngs)
        self.norm = nnx.LayerNorm(8, param_dtype=jnp.float64, rngs=rngs)
        self.dense2 = nnx.Linear(8, 2, param_dtype=jnp.float64, rngs=rngs)

    def __call__(self, x):
        return self.dense2(self.norm(jax.nn.relu(self.dense1(x))))


def _nnx_train(tx):
    model = NnxMLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x, y):
        def loss_fn(model):
            with reference_promotion():  # Flax's LayerNorm promotes; the optimizer runs strict
                return jnp.mean((model(x) - y) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(train_step(model, optimizer, jnp.asarray(x), jnp.asarray(y)))
              for x, y in _batches()]  # fmt: skip
    return jax.tree.leaves(nnx.state(model, nnx.Param)), losses, optimizer


_NNX_RUNS = {}


def _nnx_run(pair, which):
    """Each training run once per session (the tests below read the same runs)."""
    if (pair, which) not in _NNX_RUNS:
        ours, theirs = PAIRS[pair]()
        if which == "ours":
            _NNX_RUNS[pair, which] = _nnx_train(ours)
        else:
            with reference_promotion():
                _NNX_RUNS[pair, which] = _nnx_train(theirs)
    return _NNX_RUNS[pair, which]


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_nnx_optimizer_steps_equal_optax(pair, x64):
    got, losses, _ = _nnx_run(pair, "ours")
    expected, expected_losses, _ = _nnx_run(pair, "optax")
    assert max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(got, expected)) <= TOL
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-12)
    assert losses[-1] < losses[0]


def test_nnx_optimizer_keeps_gradchains_named_state(x64):
    _, _, optimizer = _nnx_run("adam", "ours")
    state = nnx.as_pure(optimizer.opt_state)
    assert type(state).__name__ == "AdamLiveState"
    names = [type(s).__name__ for s in state.inner]
    assert names == ["MomentumState", "BiasCorrectState", "RmsState", "EmptyState"]
    assert int(state.inner[1].count) == STEPS and state.inner[2].nu_max is None
    assert float(gradchain.get_hyperparams(state)["learning_rate"]) == pytest.approx(1e-2)
    assert int(optimizer.step[...]) == STEPS


def test_nnx_groups_by_path_put_bias_and_scale_in_the_no_decay_group(x64):
    _, _, optimizer = _nnx_run("groups-by-path", "ours")
    state = nnx.as_pure(optimizer.opt_state)
    decayed = state.groups["decay"].inner[0].mu  # MomentumState.mu over the "decay" group
    assert gradchain.get_slot(state, "decay.mu")["decay.mu"] is decayed
    kept = {leaf_name(p) for p, x in jax.tree_util.tree_flatten_with_path(decayed)[0]}
    assert kept == {"kernel"}


# --- Flax Linen ------------------------------------------------------------------------------


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(8, param_dtype=jnp.float64)(x))
        x = nn.LayerNorm(param_dtype=jnp.float64)(x)
        return nn.Dense(2, param_dtype=jnp.float64)(x)


def _linen_train(tx):
    model = LinenMLP()
    with reference_promotion():
        params = model.init(jax.random.key(0), jnp.zeros((1, 3), jnp.float64))["params"]
    state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)

    @jax.jit
    def train_step(state, x, y):
        def loss_fn(params):
            with reference_promotion():  # Flax's LayerNorm promotes; the optimizer runs strict
                return jnp.mean((state.apply_fn({"params": params}, x) - y) ** 2)

        return state.apply_gradients(grads=jax.grad(loss_fn)(state.params))

    for x, y in _batches():
        state = train_step(state, jnp.asarray(x), jnp.asarray(y))
    return state


# masked-decay-by-path runs in NNX only: Linen's dict paths add nothing to adamw-mask-by-path.
@pytest.mark.parametrize("pair", ["adam", "adamw-mask-by-path", "groups-by-path"])
def test_linen_train_state_steps_equal_optax(pair, x64):
    ours, theirs = PAIRS[pair]()
    got = _linen_train(ours)
    with reference_promotion():
        expected = _linen_train(theirs)
    diffs = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), got.params, expected.params)
    assert max(jax.tree.leaves(diffs)) <= TOL
    assert int(got.step) == STEPS


def test_linen_labels_from_paths_name_the_linen_leaves(x64):
    with reference_promotion():
        params = LinenMLP().init(jax.random.key(0), jnp.zeros((1, 3), jnp.float64))["params"]
    labels = decay_labels(params)
    assert labels["LayerNorm_0"] == {"bias": "no_decay", "scale": "no_decay"}
    assert labels["Dense_0"] == {"bias": "no_decay", "kernel": "decay"}
