"""gradchain.contrib: Optax's contrib names, as gradchain's own implementations (no copies), and
Optax's state-class names as aliases of gradchain's."""

import jax.numpy as jnp
import optax
import optax.contrib

import gradchain
from gradchain import contrib


def test_every_contrib_name_is_gradchains_object_of_that_name():
    assert contrib.__all__, "gradchain.contrib exports nothing"
    for name in contrib.__all__:
        ours = getattr(contrib, name)
        assert hasattr(optax.contrib, name), f"{name} is not an optax.contrib name"
        assert ours is getattr(gradchain, name, ours), f"{name} differs from gradchain.{name}"


def test_contrib_optimizer_matches_its_optax_contrib_namesake_on_one_step():
    params = {"w": jnp.linspace(-1, 1, 4)}
    for name in ("madgrad", "prodigy", "schedule_free_sgd"):
        ours, theirs = getattr(contrib, name)(0.1), getattr(optax.contrib, name)(0.1)
        u1, _ = ours.update(params, ours.init(params), params)
        u2, _ = theirs.update(params, theirs.init(params), params)
        # measured max difference 0.0 (madgrad, schedule_free_sgd) and 3.7e-9 (prodigy)
        assert float(jnp.max(jnp.abs(u1["w"] - u2["w"]))) <= 1e-7, name


def test_optax_state_names_are_aliases_of_gradchains_states():
    aliases = {
        "TraceState": "MomentumState", "ScaleByRmsState": "RmsState",
        "ScaleByRStdDevState": "StddevState", "ScaleByRssState": "RssState",
        "ScaleByRpropState": "RpropState", "ScaleBySM3State": "Sm3State",
        "ScaleByAdaDeltaState": "AdadeltaState", "ScaleByLBFGSState": "LbfgsState",
        "FactoredState": "FactoredRmsState", "ScaleByScheduleState": "LearningRateState",
        "ScaleState": "EmptyState", "ClipState": "EmptyState",
        "ClipByGlobalNormState": "EmptyState", "AddDecayedWeightsState": "EmptyState",
        "MultiTransformState": "PartitionState",
    }  # fmt: skip
    for optax_name, ours in aliases.items():
        assert hasattr(optax, optax_name)
        assert getattr(gradchain, optax_name) is getattr(gradchain, ours)
    assert isinstance(gradchain.rmsprop(0.1).init(jnp.ones(2)).inner[0], gradchain.ScaleByRmsState)
