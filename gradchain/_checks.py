"""Every user-facing error sentence of gradchain, so that they read alike.

Hyperparameter checks run at construction. A value that is a traced array (an optimizer
built inside ``jit`` or by ``optax.inject_hyperparams``) cannot be inspected and is skipped.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np


class GradchainError(ValueError):
    """Raised for input that gradchain refuses: wrong trees, wrong states, wrong values."""


def _concrete(value: Any) -> float | None:
    """The value as a Python float, or None when it cannot be known (traced, callable)."""
    if callable(value) or isinstance(value, jax.core.Tracer):
        return None
    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001 - anything not array-like is reported below
        return None
    if array.shape != ():
        raise GradchainError(f"expected a scalar hyperparameter, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise GradchainError(f"expected a real number, got {value!r}")
    return float(array)


def check_hyperparam(name: str, value: Any) -> None:
    """A hyperparameter must be a real scalar (or a traced array)."""
    if isinstance(value, bool):
        raise GradchainError(f"{name} must be a number, got the bool {value}")
    try:
        x = _concrete(value)
    except GradchainError as e:
        raise GradchainError(f"{name}: {e}") from None
    if x is not None and math.isnan(x):
        raise GradchainError(f"{name} must not be NaN")


def check_non_negative(name: str, value: Any) -> None:
    check_hyperparam(name, value)
    x = _concrete(value)
    if x is not None and not x >= 0:
        raise GradchainError(f"{name} must be >= 0, got {x}")


def check_positive(name: str, value: Any) -> None:
    check_hyperparam(name, value)
    x = _concrete(value)
    if x is not None and not x > 0:
        raise GradchainError(f"{name} must be > 0, got {x}")


def check_unit_interval(name: str, value: Any) -> None:
    """A decay or beta lives in [0, 1): 1 would never forget, and never leave zero bias."""
    check_hyperparam(name, value)
    x = _concrete(value)
    if x is not None and not 0.0 <= x < 1.0:
        raise GradchainError(f"{name} must be in [0, 1), got {x}")


def check_closed_unit_interval(name: str, value: Any) -> None:
    check_hyperparam(name, value)
    x = _concrete(value)
    if x is not None and not 0.0 <= x <= 1.0:
        raise GradchainError(f"{name} must be in [0, 1], got {x}")


def check_learning_rate(value: Any) -> None:
    """A learning rate is a number >= 0 or a schedule (a function of the step count)."""
    if callable(value):
        return
    check_non_negative("learning_rate", value)


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        raise GradchainError(f"{name} must be one of {choices}, got {value!r}")


def check_dtype(name: str, dtype: Any) -> None:
    """A moment's dtype must be a floating (or complex) dtype, or None for the params'."""
    if dtype is None:
        return
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise GradchainError(
            f"{name} must be a dtype such as jnp.bfloat16, got {dtype!r}"
        ) from None
    if not np.issubdtype(d, np.inexact):
        raise GradchainError(f"{name} must be a floating dtype, got {d}")


def path_str(path: tuple[Any, ...]) -> str:
    """A tree path as users write it, e.g. ``['layers'][0].w``; the root is ``<root>``."""
    return jax.tree_util.keystr(path) or "<root>"


def check_same_structure(name_a: str, a: Any, name_b: str, b: Any) -> None:
    """Two trees must have the same structure and leaf shapes; the error names the first path
    where they differ, instead of a broadcast or a bare treedef dump."""
    leaves_a, def_a = jax.tree_util.tree_flatten_with_path(a, is_leaf=lambda x: x is None)
    leaves_b, def_b = jax.tree_util.tree_flatten_with_path(b, is_leaf=lambda x: x is None)
    paths_a = [path_str(p) for p, _ in leaves_a]
    paths_b = [path_str(p) for p, _ in leaves_b]
    if def_a != def_b:
        only_a = [p for p in paths_a if p not in set(paths_b)]
        only_b = [p for p in paths_b if p not in set(paths_a)]
        detail = []
        if only_a:
            detail.append(f"only in {name_a}: {', '.join(only_a[:5])}")
        if only_b:
            detail.append(f"only in {name_b}: {', '.join(only_b[:5])}")
        if not detail:
            detail.append(f"{name_a} is {def_a}, {name_b} is {def_b}")
        raise GradchainError(
            f"{name_a} and {name_b} have different tree structures ({'; '.join(detail)})"
        )
    for (path, x), (_, y) in zip(leaves_a, leaves_b):
        if x is None or y is None:
            if (x is None) != (y is None):
                raise GradchainError(f"at {path_str(path)}: None in one of {name_a}, {name_b} only")
            continue
        sx, sy = np.shape(x), np.shape(y)
        if sx != sy:
            raise GradchainError(
                f"at {path_str(path)}: {name_a} has shape {sx} but {name_b} has shape {sy}"
            )


def check_float_leaves(name: str, tree: Any) -> None:
    """Optimizers need floating (or complex) leaves: an integer leaf cannot take a step."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        dtype = getattr(leaf, "dtype", None)
        if dtype is None:
            dtype = np.asarray(leaf).dtype
        if not np.issubdtype(dtype, np.inexact) and not str(dtype).startswith(("bfloat", "float")):
            raise GradchainError(
                f"at {path_str(path)}: {name} has a {dtype} leaf; optimizers need floating "
                "leaves (freeze integer leaves with gradchain.partition or mask them out)"
            )
