"""State by name: slots, get/set of slots and live hyperparameters, through chains, wrappers
(NamedTuple fields and dicts of inner states) and Optax states."""

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion


def params():
    return {"w": jnp.ones((3, 2), jnp.float32), "b": jnp.ones((2,), jnp.bfloat16)}


def test_slots_of_adam_by_path_owner_and_meaning():
    state = gradchain.adam(1e-3).init(params())
    found = {s.path: s for s in gradchain.slots(state)}
    assert list(found) == [
        "learning_rate",
        "b1",
        "b2",
        "eps",
        "eps_root",
        "mu",
        "BiasCorrectState.count",  # "count" repeats: the owner's type is added
        "nu",
        "RmsState.count",
    ]  # nu_max is None (no AMSGrad): not a slot
    nu = found["nu"]
    assert (nu.owner, nu.name, nu.route, nu.hyperparameter) == (
        "RmsState",
        "nu",
        ("inner", 2, "nu"),
        False,
    )
    assert nu.meaning == gradchain.RmsState.meanings["nu"]
    assert found["eps"].hyperparameter and found["learning_rate"].hyperparameter
    assert found["b1"].route == ("hyperparams", "b1") and found["b1"].owner == "AdamLiveState"
    assert not found["BiasCorrectState.count"].hyperparameter


def test_get_slot_returns_every_match_keyed_by_path():
    state = gradchain.adam(1e-3).init(params())
    nu = gradchain.get_slot(state, "nu")
    assert list(nu) == ["nu"]
    assert nu["nu"]["b"].dtype == jnp.bfloat16
    assert list(gradchain.get_slot(state, "count")) == [
        "BiasCorrectState.count",
        "RmsState.count",
    ]
    assert list(gradchain.get_slot(state, "RmsState.count")) == ["RmsState.count"]


def test_get_slot_unknown_name_lists_the_slots():
    state = gradchain.momentum(0.1).init(params())
    with pytest.raises(gradchain.GradchainError, match=r"no slot named 'nu'; it has: learning_rate, momentum, mu"):
        gradchain.get_slot(state, "nu")


def test_set_slot_with_a_function_and_with_a_value_keeps_dtypes():
    state = gradchain.adam(1e-3).init(params())
    bumped = gradchain.set_slot(state, "nu", lambda nu: jax.tree.map(lambda x: x + 3, nu))
    nu = gradchain.get_slot(bumped, "nu")["nu"]
    np.testing.assert_array_equal(np.asarray(nu["w"]), 3.0)
    assert nu["b"].dtype == jnp.bfloat16
    assert gradchain.get_slot(bumped, "mu") == gradchain.get_slot(state, "mu")  # untouched
    # a float32 value for the bfloat16 leaf is cast to the slot's dtype
    value = {"w": np.full((3, 2), 2.0, np.float32), "b": np.full((2,), 5.0, np.float32)}
    replaced = gradchain.set_slot(state, "mu", value)
    mu = gradchain.get_slot(replaced, "mu")["mu"]
    assert mu["b"].dtype == jnp.bfloat16 and float(mu["b"][0]) == 5.0
    assert jax.tree.structure(replaced) == jax.tree.structure(state)


def test_set_slot_refuses_a_value_that_does_not_fit():
    state = gradchain.adam(1e-3).init(params())
    with pytest.raises(gradchain.GradchainError, match=r"slot nu.*shape"):
        gradchain.set_slot(state, "nu", {"w": jnp.zeros((2, 3)), "b": jnp.zeros(2)})
    with pytest.raises(gradchain.GradchainError, match="no slot named 'velocity'"):
        gradchain.set_slot(state, "velocity", 0.0)


def test_get_hyperparams_uses_paths_only_for_repeated_names():
    # One optimizer: its own argument names, each once (b1 is one number however many
    # transforms use it).
    hp = gradchain.get_hyperparams(gradchain.adamw(1e-3, weight_decay=0.1).init(params()))
    assert set(hp) == {"learning_rate", "b1", "b2", "eps", "eps_root", "weight_decay"}
    assert float(hp["b2"]) == pytest.approx(0.999) and float(hp["b1"]) == pytest.approx(0.9)
    assert float(hp["weight_decay"]) == pytest.approx(0.1)
    assert all(v.shape == () and v.dtype == jnp.float32 for v in hp.values())
    # A name repeated across parameter groups: the group's label goes before it.
    p = {"a": jnp.zeros(2), "b": jnp.zeros(3)}
    grouped = gradchain.partition(
        {"x": gradchain.adam(1e-3), "y": gradchain.sgd(0.1)}, {"a": "x", "b": "y"}
    )
    hp = gradchain.get_hyperparams(grouped.init(p))
    assert set(hp) == {
        "x.learning_rate",
        "x.b1",
        "x.b2",
        "x.eps",
        "x.eps_root",
        "y.learning_rate",
    }
    assert float(hp["y.learning_rate"]) == pytest.approx(0.1)


def test_set_hyperparam_round_trip_keeps_the_stored_dtype():
    state = gradchain.adam(1e-3).init(params())
    new = gradchain.set_hyperparam(state, "learning_rate", 0.5)
    assert float(gradchain.get_hyperparams(new)["learning_rate"]) == 0.5
    assert gradchain.get_hyperparams(new)["learning_rate"].dtype == jnp.float32
    new = gradchain.set_hyperparam(new, "b2", jnp.asarray(0.99, jnp.bfloat16))
    assert gradchain.get_hyperparams(new)["b2"].dtype == jnp.float32
    # the bfloat16 value, widened: 0.99 in bfloat16 is 0.98828125
    assert float(gradchain.get_hyperparams(new)["b2"]) == 0.98828125
    assert float(gradchain.get_hyperparams(new)["b1"]) == pytest.approx(0.9)
    assert jax.tree.map(jnp.result_type, new) == jax.tree.map(jnp.result_type, state)


def test_set_hyperparam_keeps_float64_under_x64(x64):
    state = gradchain.sgd(0.1).init(jnp.zeros(3, jnp.float64))
    new = gradchain.set_hyperparam(state, "learning_rate", 0.25)
    assert gradchain.get_hyperparams(new)["learning_rate"].dtype == jnp.float64


def test_set_hyperparam_unknown_name_names_it_and_lists_the_known_ones():
    state = gradchain.adam(1e-3).init(params())
    with pytest.raises(gradchain.GradchainError) as err:
        gradchain.set_hyperparam(state, "lr", 0.1)
    message = str(err.value)
    assert "unknown hyperparameter 'lr'" in message
    assert "learning_rate" in message and "eps" in message and "b2" in message


def test_set_hyperparam_ambiguous_name_lists_the_paths():
    p = {"a": jnp.zeros(2), "b": jnp.zeros(3)}
    grouped = gradchain.partition(
        {"x": gradchain.adam(1e-3), "y": gradchain.sgd(0.1)}, {"a": "x", "b": "y"}
    )
    state = grouped.init(p)
    with pytest.raises(
        gradchain.GradchainError,
        match=r"'learning_rate' is ambiguous.*x\.learning_rate, y\.learning_rate",
    ):
        gradchain.set_hyperparam(state, "learning_rate", 0.5)
    new = gradchain.set_hyperparam(state, "y.learning_rate", 0.5)  # the path works
    assert float(gradchain.get_hyperparams(new)["y.learning_rate"]) == 0.5
    assert float(gradchain.get_hyperparams(new)["x.learning_rate"]) == pytest.approx(1e-3)


def test_set_hyperparam_refuses_non_scalars():
    state = gradchain.sgd(0.1).init(params())
    with pytest.raises(gradchain.GradchainError, match="learning_rate"):
        gradchain.set_hyperparam(state, "learning_rate", np.ones(2))


def test_changing_the_learning_rate_changes_the_step_without_recompiling():
    optimizer = gradchain.sgd(0.1)
    g = jnp.asarray([1.0, -2.0])

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state):
        return optimizer.update(g, state)

    state = optimizer.init(jnp.zeros(2))
    u1, state = step(state)
    u2, _ = step(gradchain.set_hyperparam(state, "learning_rate", 0.01))
    np.testing.assert_allclose(np.asarray(u1), [-0.1, 0.2], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(u2), [-0.01, 0.02], rtol=1e-6)


# --- wrappers and foreign states -----------------------------------------------------------


@gradchain.describe(inner="the wrapped transform's state", skipped="steps skipped")
class _WrapperState(NamedTuple):
    inner: Any
    skipped: Any


@gradchain.describe(groups="one inner state per parameter group")
class _GroupsState(NamedTuple):
    groups: Any


def test_inner_states_in_namedtuple_fields_and_dicts():
    p = params()
    inner = gradchain.adam(1e-3).init(p)
    groups = {"head": gradchain.sgd(0.1).init(p), "body": gradchain.momentum(0.1).init(p)}
    state = (_WrapperState(inner, jnp.zeros([], jnp.int32)), _GroupsState(groups))
    # Wrappers and chains add nothing to a path; a dict's keys are group labels.
    assert list(gradchain.get_slot(state, "nu")) == ["nu"]
    assert list(gradchain.get_slot(state, "skipped")) == ["skipped"]
    assert list(gradchain.get_slot(state, "mu")) == ["mu", "body.mu"]
    hp = gradchain.get_hyperparams(state)
    assert {"head.learning_rate", "body.learning_rate", "body.momentum"} <= set(hp)
    new = gradchain.set_hyperparam(state, "head.learning_rate", 0.5)
    assert float(gradchain.get_hyperparams(new)["head.learning_rate"]) == 0.5
    assert float(gradchain.get_hyperparams(new)["body.learning_rate"]) == pytest.approx(0.1)
    found = {s.path: s for s in gradchain.slots(state)}
    assert found["nu"].owner == "RmsState"
    assert found["nu"].route == (0, "inner", "inner", 2, "nu")  # found inside the wrapper
    assert found["body.mu"].labels == ("body",)


class Point(NamedTuple):  # a user's params class: data, not an optimizer state
    x: Any
    y: Any


def test_namedtuple_params_inside_a_slot_are_data():
    state = gradchain.momentum(0.1).init(Point(jnp.zeros(2), jnp.zeros(3)))
    mu = gradchain.get_slot(state, "mu")
    assert list(mu) == ["mu"] and isinstance(mu["mu"], Point)


def test_optax_states_plain_and_with_injected_hyperparameters():
    p = params()
    with reference_promotion():
        state = optax.adam(1e-3).init(p)
        injected = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3).init(p)
    assert list(gradchain.get_slot(state, "nu")) == ["nu"]
    assert gradchain.get_hyperparams(state) == {}
    hp = gradchain.get_hyperparams(injected)
    assert {"learning_rate", "b1", "b2", "eps"} <= set(hp)
    new = gradchain.set_hyperparam(injected, "learning_rate", 0.5)
    assert float(new.hyperparams["learning_rate"]) == 0.5
    assert new.hyperparams["learning_rate"].dtype == injected.hyperparams["learning_rate"].dtype
    assert list(gradchain.get_slot(injected, "mu")) == ["mu"]
    assert gradchain.get_slot(injected, "mu")["mu"]["w"].shape == (3, 2)


def test_a_single_transform_state_has_bare_paths():
    # A transform holds only its math; made live, its numbers are kept once, by its own
    # argument names, and its slots keep their bare names.
    state = gradchain.scale_by_rms(0.9).init(params())
    assert list(gradchain.get_slot(state, "nu")) == ["nu"]
    assert gradchain.get_hyperparams(state) == {}
    state = gradchain.live(gradchain.scale_by_rms)(0.9).init(params())
    assert list(gradchain.get_slot(state, "nu")) == ["nu"]
    assert set(gradchain.get_hyperparams(state)) == {"decay", "eps", "initial_scale", "eps_root"}
