"""The public API: every name in ``gradchain.__all__`` once, each importable from ``gradchain``,
and every module's ``__all__`` names only what the module has."""

import importlib
import pkgutil

import gradchain


def test_every_public_name_is_listed_once_and_exists():
    names = gradchain.__all__
    assert len(names) == len(set(names)), sorted(n for n in set(names) if names.count(n) > 1)
    assert [n for n in names if not hasattr(gradchain, n)] == []


def test_every_module_lists_only_what_it_has():
    missing = []
    for info in pkgutil.walk_packages(gradchain.__path__, "gradchain."):
        if info.name.endswith("__main__"):  # running it is the command line
            continue
        module = importlib.import_module(info.name)
        listed = getattr(module, "__all__", ())
        missing += [f"{info.name}.{n}" for n in listed if not hasattr(module, n)]
    assert missing == []


def test_optaxs_transforms_namespace_spellings_resolve_to_gradchains_objects():
    # ``from optax.transforms import freeze`` (Optax's freezing_parameters notebook) ports to
    # ``from gradchain.transforms import freeze``: the same object as ``gradchain.freeze``
    from gradchain import transforms
    from gradchain.transforms import MultiSteps, freeze, selective_transform

    assert freeze is gradchain.freeze and selective_transform is gradchain.selective_transform
    assert MultiSteps is gradchain.MultiSteps and transforms.chain is gradchain.chain
    assert "masked" in dir(transforms) and "masked" not in transforms.__all__  # one path
    try:
        transforms.no_such_name  # noqa: B018
    except AttributeError as error:
        assert "no_such_name" in str(error)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_optaxs_tree_utils_module_name_imports():
    # ``from optax.tree_utils import tree_norm`` (Optax's adversarial-training notebook)
    import importlib

    from gradchain.tree_utils import tree_norm

    assert tree_norm is gradchain.tree_norm
    assert importlib.import_module("gradchain.tree_utils") is gradchain.tree


# Optax's public names, per namespace gradchain also has, that gradchain lacks (measured with
# Optax 0.2.8): the list shrinks as they are added; a name added must leave it.
MISSING_FROM_OPTAX_NAMESPACES = {
    "transforms": set(),
    "schedules": {  # in gradchain, inject_hyperparams and its states are gradchain.<name>
        "InjectHyperparamsState",
        "InjectStatefulHyperparamsState",
        "StatefulSchedule",
        "inject_hyperparams",
        "inject_stateful_hyperparams",
    },
    "contrib": {  # chains of generic slots, no state class of their own (see gradchain.contrib)
        "MuonState",
        "ScaleBySimplifiedAdEMAMixState",
    },
    "losses": {  # gradchain.losses: the most used of Optax's (see its docstring)
        "binary_dice_loss",
        "ctc_loss",
        "ctc_loss_with_forward_probs",
        "dice_loss",
        "make_fenchel_young_loss",
        "multiclass_generalized_dice_loss",
        "multiclass_sparsemax_loss",
        "ntxent",
        "ranking_softmax_loss",
    },
    "tree": set(),
    "tree_utils": set(),
}


def test_optaxs_namespaces_have_gradchains_names_except_the_listed():
    import types

    import optax

    for space, listed in MISSING_FROM_OPTAX_NAMESPACES.items():
        theirs, ours = getattr(optax, space), getattr(gradchain, space)
        names = [n for n in dir(theirs) if not n.startswith("_")]
        public = [n for n in names if not isinstance(getattr(theirs, n), types.ModuleType)]
        missing = {n for n in public if not hasattr(ours, n)}
        assert missing <= listed, f"optax.{space} names gradchain.{space} lacks: {missing - listed}"
        stale = sorted(listed - missing)  # added to gradchain (or gone from Optax)
        assert not stale, f"gradchain.{space} has these now: remove them from the list: {stale}"
