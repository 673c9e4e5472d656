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
