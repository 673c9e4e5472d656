"""State by name: slots, get/set of slots and live hyperparameters, through chains, wrappers
(NamedTuple fields and dicts of inner states) and Optax states."""

from typing import Any, NamedTuple

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
        "0.mu",
        "0.decay",
        "1.count",
        "1.decay",
        "2.nu",
        "2.count",
        "2.decay",
        "2.eps",
        "2.eps_root",
        "3.count",
        "3.learning_rate",
    ]  # nu_max is None (no AMSGrad): not a slot
    nu = found["2.nu"]
    assert (nu.owner, nu.name, nu.route, nu.hyperparameter) == ("RmsState", "nu", (2, "nu"), False)
    assert nu.meaning == gradchain.RmsState.meanings["nu"]
    assert found["2.eps"].hyperparameter and found["3.learning_rate"].hyperparameter
    assert not found["1.count"].hyperparameter


def test_get_slot_returns_every_match_keyed_by_path():
    state = gradchain.adam(1e-3).init(params())
    nu = gradchain.get_slot(state, "nu")
    assert list(nu) == ["2.nu"]
    assert nu["2.nu"]["b"].dtype == jnp.bfloat16
    assert list(gradchain.get_slot(state, "count")) == ["1.count", "2.count", "3.count"]
    assert list(gradchain.get_slot(state, "2.count")) == ["2.count"]


def test_get_slot_unknown_name_lists_the_slots():
    state = gradchain.momentum(0.1).init(params())
    with pytest.raises(gradchain.GradchainError, match=r"no slot named 'nu'; it has: count, .*mu"):
        gradchain.get_slot(state, "nu")


def test_set_slot_with_a_function_and_with_a_value_keeps_dtypes():
    state = gradchain.adam(1e-3).init(params())
    bumped = gradchain.set_slot(state, "nu", lambda nu: jax.tree.map(lambda x: x + 3, nu))
    nu = gradchain.get_slot(bumped, "nu")["2.nu"]
    np.testing.assert_array_equal(np.asarray(nu["w"]), 3.0)
    assert nu["b"].dtype == jnp.bfloat16
    assert gradchain.get_slot(bumped, "mu") == gradchain.get_slot(state, "mu")  # untouched
    # a float32 value for the bfloat16 leaf is cast to the slot's dtype
    value = {"w": np.full((3, 2), 2.0, np.float32), "b": np.full((2,), 5.0, np.float32)}
    replaced = gradchain.set_slot(state, "0.mu", value)
    mu = gradchain.get_slot(replaced, "mu")["0.mu"]
    assert mu["b"].dtype == jnp.bfloat16 and float(mu["b"][0]) == 5.0
    assert jax.tree.structure(replaced) == jax.tree.structure(state)


def test_set_slot_refuses_a_value_that_does_not_fit():
    state = gradchain.adam(1e-3).init(params())
    with pytest.raises(gradchain.GradchainError, match=r"slot 2.nu.*shape"):
        gradchain.set_slot(state, "nu", {"w": jnp.zeros((2, 3)), "b": jnp.zeros(2)})
    with pytest.raises(gradchain.GradchainError, match="no slot named 'velocity'"):
        gradchain.set_slot(state, "velocity", 0.0)


def test_get_hyperparams_uses_paths_only_for_repeated_names():
    hp = gradchain.get_hyperparams(gradchain.adamw(1e-3, weight_decay=0.1).init(params()))
    assert set(hp) == {
        "0.decay",
        "1.decay",
        "2.decay",
        "eps",
        "eps_root",
        "weight_decay",
        "learning_rate",
    }
    assert float(hp["2.decay"]) == pytest.approx(0.999) and float(hp["0.decay"]) == pytest.approx(
        0.9
    )
    assert float(hp["weight_decay"]) == pytest.approx(0.1)
    assert all(v.shape == () and v.dtype == jnp.float32 for v in hp.values())


def test_set_hyperparam_round_trip_keeps_the_stored_dtype():
    state = gradchain.adam(1e-3).init(params())
    new = gradchain.set_hyperparam(state, "learning_rate", 0.5)
    assert float(gradchain.get_hyperparams(new)["learning_rate"]) == 0.5
    assert gradchain.get_hyperparams(new)["learning_rate"].dtype == jnp.float32
    new = gradchain.set_hyperparam(new, "2.decay", jnp.asarray(0.99, jnp.bfloat16))
    assert gradchain.get_hyperparams(new)["2.decay"].dtype == jnp.float32
    assert float(gradchain.get_hyperparams(new)["0.decay"]) == pytest.approx(0.9)
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
    assert "learning_rate" in message and "eps" in message and "2.decay" in message


def test_set_hyperparam_ambiguous_name_lists_the_paths():
    state = gradchain.adam(1e-3).init(params())
    with pytest.raises(gradchain.GradchainError, match=r"'decay' occurs 3 times.*0\.decay"):
        gradchain.set_hyperparam(state, "decay", 0.95)


def test_set_hyperparam_refuses_non_scalars():
    state = gradchain.sgd(0.1).init(params())
    with pytest.raises(gradchain.GradchainError, match="learning_rate"):
        gradchain.set_hyperparam(state, "learning_rate", np.ones(2))


def test_changing_the_learning_rate_changes_the_step_without_recompiling():
    optimizer = gradchain.sgd(0.1)
    g = jnp.asarray([1.0, -2.0])

    @jax.jit
    def step(state):
        return optimizer.update(g, state)

    state = optimizer.init(jnp.zeros(2))
    u1, state = step(state)
    u2, _ = step(gradchain.set_hyperparam(state, "learning_rate", 0.01))
    np.testing.assert_allclose(np.asarray(u1), [-0.1, 0.2], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(u2), [-0.01, 0.02], rtol=1e-6)
    assert step._cache_size() == 1


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
    assert list(gradchain.get_slot(state, "nu")) == ["0.inner.2.nu"]
    assert list(gradchain.get_slot(state, "skipped")) == ["0.skipped"]
    assert list(gradchain.get_slot(state, "mu")) == ["0.inner.0.mu", "1.groups.body.0.mu"]
    hp = gradchain.get_hyperparams(state)
    assert {"1.groups.head.0.learning_rate", "1.groups.body.1.learning_rate"} <= set(hp)
    new = gradchain.set_hyperparam(state, "1.groups.head.0.learning_rate", 0.5)
    assert float(gradchain.get_hyperparams(new)["1.groups.head.0.learning_rate"]) == 0.5
    assert float(gradchain.get_hyperparams(new)["1.groups.body.1.learning_rate"]) == pytest.approx(
        0.1
    )
    owners = {s.path: s.outer for s in gradchain.slots(state)}
    assert owners["0.inner.2.nu"] == ("_WrapperState",)


class Point(NamedTuple):  # a user's params class: data, not an optimizer state
    x: Any
    y: Any


def test_namedtuple_params_inside_a_slot_are_data():
    state = gradchain.momentum(0.1).init(Point(jnp.zeros(2), jnp.zeros(3)))
    mu = gradchain.get_slot(state, "mu")
    assert list(mu) == ["0.mu"] and isinstance(mu["0.mu"], Point)


def test_optax_states_plain_and_with_injected_hyperparameters():
    p = params()
    with reference_promotion():
        state = optax.adam(1e-3).init(p)
        injected = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3).init(p)
    assert list(gradchain.get_slot(state, "nu")) == ["0.nu"]
    assert gradchain.get_hyperparams(state) == {}
    hp = gradchain.get_hyperparams(injected)
    assert {"learning_rate", "b1", "b2", "eps"} <= set(hp)
    new = gradchain.set_hyperparam(injected, "learning_rate", 0.5)
    assert float(new.hyperparams["learning_rate"]) == 0.5
    assert new.hyperparams["learning_rate"].dtype == injected.hyperparams["learning_rate"].dtype
    assert list(gradchain.get_slot(injected, "mu")) == ["inner_state.0.mu"]


def test_a_single_transform_state_has_bare_paths():
    state = gradchain.scale_by_rms(0.9).init(params())
    assert list(gradchain.get_slot(state, "nu")) == ["nu"]
    assert set(gradchain.get_hyperparams(state)) == {"decay", "eps", "eps_root"}
