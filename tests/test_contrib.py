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


def test_optax_contrib_state_names_are_aliases_of_gradchains_states():
    aliases = {
        "DoGState": "DogState", "DoWGState": "DowgState", "NormalizeState": "EmptyState",
        "ScaleByAdemamixState": "SlowMomentumState", "SophiaState": "HessianDiagonalState",
    }  # fmt: skip
    for optax_name, ours in aliases.items():
        assert hasattr(optax.contrib, optax_name)
        assert getattr(contrib, optax_name) is getattr(gradchain, ours)
    params = jnp.ones(3)
    assert isinstance(gradchain.scale_by_dog(("distance", 1e-6)).init(params), contrib.DoGState)
    assert isinstance(gradchain.scale_by_dowg().init(params), contrib.DoWGState)
    assert isinstance(gradchain.normalize().init(params), contrib.NormalizeState)
    assert contrib.DoGState._fields == optax.contrib.DoGState._fields
    assert contrib.DoWGState._fields == optax.contrib.DoWGState._fields
    assert any(isinstance(s, contrib.ScaleByAdemamixState)
               for s in gradchain.scale_by_ademamix().init(params))  # fmt: skip
    assert any(isinstance(s, contrib.SophiaState) for s in gradchain.scale_by_sophia().init(params))


def test_optax_transforms_type_names_resolve():
    from gradchain.transforms import ConditionFn, NonNegativeParamsState, ShouldSkipUpdateFunction

    assert NonNegativeParamsState is gradchain.EmptyState
    assert isinstance(gradchain.keep_params_nonnegative().init(jnp.ones(2)), NonNegativeParamsState)
    assert ConditionFn is gradchain.ConditionFn
    assert ShouldSkipUpdateFunction is gradchain.ShouldSkipUpdateFunction

    def every_other(step: jnp.ndarray, **extra) -> jnp.ndarray:
        return step % 2 == 0

    rule: ShouldSkipUpdateFunction = gradchain.skip_not_finite  # the protocol's shape
    should: ConditionFn = every_other
    assert callable(rule) and callable(should)
