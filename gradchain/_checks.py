"""The checks that most user-facing errors go through (hyperparameters, trees, dtypes, states),
so that their sentences read alike; a few errors that belong to one module are raised there.

Hyperparameter checks run at construction. A value that is a traced array (an optimizer
built inside ``jit`` or by ``optax.inject_hyperparams``) cannot be inspected and is skipped.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any

import jax
import numpy as np

from gradchain.errors import CheckpointError, GradchainError  # noqa: F401 -- re-exported


def _refuse(name: str, value: Any, message: str) -> GradchainError:
    """The error for a refused hyperparameter; ``message`` starts with ``name``."""
    error = GradchainError(message)
    error.argument, error.value = name, value
    return error


def names_arguments(factory: Any) -> Any:
    """Decorator for a named optimizer: a hyperparameter refused by a transform inside it is
    reported under the optimizer's own argument name.

    ``adam(b2=1.0)`` reaches ``scale_by_rms``, which checks it as ``decay``; with this
    decorator the error reads ``b2 must be in [0, 1), got 1.0 (checked as decay by a
    transform inside adam)``. The argument is found by identity of the value refused.
    """
    signature = inspect.signature(factory)

    @functools.wraps(factory)
    def build(*args: Any, **kwargs: Any) -> Any:
        try:
            return factory(*args, **kwargs)
        except GradchainError as error:
            inner = error.argument
            if inner is None:
                raise
            bound = signature.bind_partial(*args, **kwargs)
            bound.apply_defaults()
            checked_as, said = getattr(error, "checked_as", None), getattr(error, "said", None)
            if inner in bound.arguments and bound.arguments[inner] is error.value:
                if checked_as is None:
                    raise  # already under the user's name
                inner, message = checked_as, said  # relabelled by a direction inside: say ours
            else:
                names = [k for k, v in bound.arguments.items() if v is error.value]
                if not names or not str(error).startswith(inner):
                    raise
                message = " or ".join(names) + str(error)[len(inner) :]
            refused = _refuse(
                message.split(" ", 1)[0],
                error.value,
                f"{message} (checked as {inner} by a transform inside {factory.__name__})",
            )
            refused.checked_as, refused.said = inner, message
            raise refused from None

    return build

# While ``gradchain.live`` builds an optimizer this is a list, and each hyperparameter check
# below appends ``(check, args, kwargs)`` to it: ``set_hyperparam`` re-runs just these checks
# on a new value instead of building the optimizer again.
recording: list | None = None


def _recorded(check: Any) -> Any:
    @functools.wraps(check)
    def run(*args: Any, **kwargs: Any) -> None:
        if recording is not None:
            recording.append((check, args, kwargs))
        check(*args, **kwargs)

    return run


def _concrete(value: Any) -> float | None:
    """The value as a Python float, or None when it cannot be known (a traced array)."""
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, type) or callable(value):
        # jnp.float32 is callable: taken for a schedule it would silently set lr = step.
        raise GradchainError(f"expected a number, got {_kind(value)}")
    if isinstance(value, (str, bytes)) or value is None:
        raise GradchainError(f"expected a real number, got {value!r}")
    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001 - anything not array-like is reported below
        raise GradchainError(f"expected a real number, got {_kind(value)}") from None
    if array.shape != ():
        raise GradchainError(f"expected a scalar hyperparameter, got shape {array.shape}")
    if array.dtype == np.bool_:
        raise GradchainError(f"expected a number, got the bool {value!r}")
    # np.issubdtype does not know bfloat16 or the float8s; jax.numpy's does
    if not (
        jax.numpy.issubdtype(array.dtype, jax.numpy.floating)
        or jax.numpy.issubdtype(array.dtype, jax.numpy.integer)
    ):
        raise GradchainError(f"expected a real number, got {_kind(value)}")
    return float(array)


def _kind(value: Any) -> str:
    """A short, readable description of an unexpected value for an error message."""
    if isinstance(value, type):
        return f"the type {value.__name__}"
    if callable(value):
        return f"the function {getattr(value, '__name__', type(value).__name__)}"
    text = repr(value)
    return text if len(text) <= 60 else f"a {type(value).__name__}"


@_recorded
def check_hyperparam(name: str, value: Any, *, allow_inf: bool = False) -> None:
    """A hyperparameter must be a real, finite scalar (or a traced array): not a bool, not
    NaN, not a dtype or a function. ``allow_inf`` where infinity means "no limit"."""
    if isinstance(value, (bool, np.bool_)):
        raise _refuse(name, value, f"{name} must be a number, got the bool {value}")
    try:
        x = _concrete(value)
    except GradchainError as e:
        raise _refuse(name, value, f"{name}: {e}") from None
    if x is not None and math.isnan(x):
        raise _refuse(name, value, f"{name} must not be NaN")
    if x is not None and math.isinf(x) and not allow_inf:
        raise _refuse(name, value, f"{name} must be finite, got {x}")


@_recorded
def check_non_negative(name: str, value: Any, *, allow_inf: bool = False) -> None:
    check_hyperparam(name, value, allow_inf=allow_inf)
    x = _concrete(value)
    if x is not None and not x >= 0:
        raise _refuse(name, value, f"{name} must be >= 0, got {x}")


@_recorded
def check_positive(name: str, value: Any, *, allow_inf: bool = False) -> None:
    check_hyperparam(name, value, allow_inf=allow_inf)
    x = _concrete(value)
    if x is not None and not x > 0:
        raise _refuse(name, value, f"{name} must be > 0, got {x}")


@_recorded
def check_unit_interval(name: str, value: Any) -> None:
    """A decay or beta lives in [0, 1): 1 would never forget, and never leave zero bias."""
    check_hyperparam(name, value)
    x = _concrete(value)
    if x is not None and not 0.0 <= x < 1.0:
        raise _refuse(name, value, f"{name} must be in [0, 1), got {x}")


@_recorded
def check_closed_unit_interval(name: str, value: Any) -> None:
    check_hyperparam(name, value)
    x = _concrete(value)
    if x is not None and not 0.0 <= x <= 1.0:
        raise _refuse(name, value, f"{name} must be in [0, 1], got {x}")


@_recorded
def check_learning_rate(value: Any) -> None:
    """A learning rate is a number >= 0 or a schedule (a function of the step count)."""
    check_schedule_or("learning_rate", value, check_non_negative)


@_recorded
def check_schedule_or(name: str, value: Any, check: Any) -> None:
    """A hyperparameter that may also be a schedule (a function of the step count): a
    function passes, a type (``jnp.float32``, callable but no schedule) does not, and a
    number goes through ``check(name, value)``."""
    if callable(value) and not isinstance(value, type):
        return
    check(name, value)


@_recorded
def check_int(name: str, value: Any, minimum: int = 0, maximum: int | None = None) -> None:
    """A count or size: a Python or NumPy integer (not a bool), at least ``minimum`` and, if
    given, at most ``maximum`` (say, what an int32 counter can reach)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise _refuse(name, value, f"{name} must be an integer >= {minimum}, got {_kind(value)}")
    if value < minimum:
        raise _refuse(name, value, f"{name} must be an integer >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise _refuse(
            name,
            value,
            f"{name} must be an integer <= {maximum:,}, got {value:,}{_why_max(maximum)}",
        )


INT32_MAX = 2**31 - 1


def _why_max(maximum: int) -> str:
    return " (it is counted in an int32)" if maximum == INT32_MAX else ""


@_recorded
def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        raise _refuse(name, value, f"{name} must be one of {choices}, got {value!r}")


def check_dtype(name: str, dtype: Any) -> None:
    """A moment's dtype must be a floating (or complex) dtype, or None for the params'."""
    if dtype is None:
        return
    try:
        d = np.dtype(dtype)
    except (TypeError, ValueError):
        raise _refuse(
            name, dtype, f"{name} must be a dtype such as jnp.bfloat16, got {_kind(dtype)}"
        ) from None
    if not jax.numpy.issubdtype(d, jax.numpy.inexact):  # np.issubdtype misses bfloat16
        raise _refuse(name, dtype, f"{name} must be a floating dtype, got {d}")


def path_str(path: tuple[Any, ...]) -> str:
    """A tree path as users write it, e.g. ``['layers'][0].w``; the root is ``<root>``."""
    return jax.tree_util.keystr(path) or "<root>"


# The checks below run at trace time on every update of a chain: the common case (all is
# well) flattens each tree once and compares treedefs and shapes; tree paths, which are slow
# to spell, are computed only to name the leaf in an error.


def _is_none(x: Any) -> bool:
    return x is None


def _path_at(tree: Any, index: int, is_leaf: Any = None) -> str:
    """The path of ``tree``'s ``index``-th leaf, spelled for an error message."""
    return path_str(jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)[0][index][0])


def _structure_detail(name_a: str, a: Any, name_b: str, b: Any, is_leaf: Any) -> str:
    paths_a = [path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(a, is_leaf)[0]]
    paths_b = [path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(b, is_leaf)[0]]
    only_a = [p for p in paths_a if p not in set(paths_b)]
    only_b = [p for p in paths_b if p not in set(paths_a)]
    detail = [
        f"{label}: {', '.join(paths[:5])}"
        for label, paths in ((f"only in {name_a}", only_a), (f"only in {name_b}", only_b))
        if paths
    ]
    if not detail:
        detail = [f"{name_a} is {jax.tree.structure(a)}, {name_b} is {jax.tree.structure(b)}"]
    return "; ".join(detail)


def none_covers(a: Any, b: Any) -> Any:
    """``b`` with each subtree that sits where ``a`` has ``None`` replaced by ``None`` (Optax's
    rule: a ``None`` parameter or update stands for its whole subtree in the other tree).
    ``b`` unchanged when ``a`` is not a prefix of it (``check_same_structure`` then names the
    difference)."""
    if not any(x is None for x in jax.tree.leaves(a, is_leaf=_is_none)):
        return b
    try:
        return jax.tree.map(lambda x, y: None if x is None else y, a, b, is_leaf=_is_none)
    except (ValueError, TypeError):
        return b


def check_same_structure(name_a: str, a: Any, name_b: str, b: Any) -> None:
    """Two trees must have the same structure and leaf shapes; the error names the first path
    where they differ, instead of a broadcast or a bare treedef dump."""
    leaves_a, def_a = jax.tree_util.tree_flatten(a, is_leaf=_is_none)
    leaves_b, def_b = jax.tree_util.tree_flatten(b, is_leaf=_is_none)
    if def_a != def_b:
        detail = _structure_detail(name_a, a, name_b, b, _is_none)
        raise GradchainError(f"{name_a} and {name_b} have different tree structures ({detail})")
    for i, (x, y) in enumerate(zip(leaves_a, leaves_b)):
        if x is None or y is None:
            if (x is None) != (y is None):
                where = _path_at(a, i, _is_none)
                raise GradchainError(f"at {where}: None in one of {name_a}, {name_b} only")
            continue
        sx, sy = np.shape(x), np.shape(y)
        if sx != sy:
            raise GradchainError(
                f"at {_path_at(a, i, _is_none)}: {name_a} has shape {sx} but {name_b} has "
                f"shape {sy}"
            )


def _leaf_dtype(leaf: Any) -> Any:
    """The dtype of a tree leaf, or None when the leaf is not array-like (a str, an object)."""
    dtype = getattr(leaf, "dtype", None)
    if dtype is not None:
        return dtype
    if isinstance(leaf, (int, float, complex, np.generic)):  # bool is an int
        return np.asarray(leaf).dtype
    return None


@functools.cache
def _kind_of(dtype: Any) -> str:
    """The kind of a dtype: real, complex, float0, or other (integers, bools, strings...)."""
    if dtype == jax.dtypes.float0:
        return "float0"
    if jax.numpy.issubdtype(dtype, jax.numpy.complexfloating):
        return "complex"
    if jax.numpy.issubdtype(dtype, jax.numpy.inexact):
        return "real"
    return "other"


def _python_number_as_array(leaf: Any) -> Any:
    if isinstance(leaf, (float, complex)):
        return jax.numpy.asarray(leaf)  # weakly typed, as JAX types a Python number
    return leaf


def python_numbers_as_arrays(tree: Any) -> Any:
    """``tree`` with its Python float (and complex) leaves as JAX scalars: ``init`` accepts
    them, and the transforms read ``leaf.dtype``. Other leaves are returned as they are."""
    if tree is None:
        return None
    return jax.tree_util.tree_map(_python_number_as_array, tree)


def check_float_leaves(name: str, tree: Any) -> None:
    """Optimizers need floating (or complex) leaves: an integer leaf cannot take a step, and
    lr * g cast back to int would silently truncate to 0."""
    for i, leaf in enumerate(jax.tree_util.tree_leaves(tree)):
        dtype = _leaf_dtype(leaf)
        if dtype is None:
            raise GradchainError(
                f"at {_path_at(tree, i)}: {name} has a leaf of type {type(leaf).__name__}; "
                "leaves must be arrays (or Python floats)"
            )
        kind = _kind_of(dtype)
        if kind in ("real", "complex"):
            continue
        if kind == "float0":
            what = "a float0 leaf (the gradient of an integer input under allow_int=True)"
        else:
            what = f"a leaf of dtype {np.dtype(dtype).name}"
        raise GradchainError(
            f"at {_path_at(tree, i)}: {name} has {what}; optimizers need floating leaves: "
            "keep integer and boolean leaves out of the optimizer (gradchain.partition or "
            "a mask), or cast them to a float dtype"
        )


def check_array(name: str, x: Any, ndim: int | None = None) -> None:
    """One floating array (not a tree, a number, a string or None), of ``ndim`` dimensions."""
    dtype = getattr(x, "dtype", None)
    if dtype is None or _kind_of(dtype) not in ("real", "complex"):
        got = f"a {type(x).__name__}" if dtype is None else f"dtype {np.dtype(dtype).name}"
        raise GradchainError(f"{name} must be a floating-point array, got {got}")
    if ndim is not None and np.ndim(x) != ndim:
        raise GradchainError(f"{name} must have {ndim} dimensions, got shape {np.shape(x)}")


def check_update_dtypes(params: Any, updates: Any) -> None:
    """What ``params + updates`` may not do silently: drop an imaginary part, or truncate a
    float step into an integer parameter. The trees have the same structure (checked before)."""
    param_leaves = jax.tree_util.tree_leaves(params, is_leaf=_is_none)
    update_leaves = jax.tree_util.tree_leaves(updates, is_leaf=_is_none)
    for i, (p, u) in enumerate(zip(param_leaves, update_leaves)):
        if p is None:
            continue
        dp, du = _leaf_dtype(p), _leaf_dtype(u)
        if dp is None or du is None:
            bad = p if dp is None else u
            raise GradchainError(
                f"at {_path_at(params, i, _is_none)}: a leaf of type {type(bad).__name__}; "
                "params and updates must hold arrays"
            )
        kp, ku = _kind_of(dp), _kind_of(du)
        if ku == "float0" or (ku == kp) or (kp == "complex" and ku == "real"):
            continue  # float0: "no change", from jax.grad(allow_int=True); kept as is
        if kp == "other" and ku in ("real", "complex"):
            raise GradchainError(
                f"at {_path_at(params, i, _is_none)}: a {np.dtype(du).name} update for a "
                f"parameter of dtype {np.dtype(dp).name} would be truncated; keep integer "
                "leaves out of the optimizer"
            )
        if ku == "complex" and kp == "real":
            raise GradchainError(
                f"at {_path_at(params, i, _is_none)}: a complex update for a real "
                f"({np.dtype(dp).name}) parameter would lose its imaginary part"
            )


def check_state(index: int, member: str, expected: Any, given: Any) -> None:
    """A member's state must have the tree, NamedTuple types and leaf shapes that its ``init``
    builds for these params: otherwise it belongs to another optimizer or another params tree.
    ``expected`` is ``jax.eval_shape(init, params)``; the comparison is trace-time Python."""
    where = f"member {index} ({member})"
    if type(given) is not type(expected):
        raise GradchainError(
            f"this state does not belong to this optimizer: {where} expects a state of type "
            f"{type(expected).__name__}, got {type(given).__name__}"
        )
    want, want_def = jax.tree_util.tree_flatten(expected, is_leaf=_is_none)
    got, got_def = jax.tree_util.tree_flatten(given, is_leaf=_is_none)
    if want_def != got_def:
        detail = _structure_detail("the state", given, "the expected state", expected, _is_none)
        raise GradchainError(
            f"the state of {where} does not fit these updates ({detail}): was it built by "
            "another optimizer, or for another params tree?"
        )
    for i, (w, g) in enumerate(zip(want, got)):
        if w is None or g is None:
            if (w is None) != (g is None):
                raise GradchainError(
                    f"the state of {where} at {_path_at(given, i, _is_none)}: None where the "
                    "optimizer expects an array, or the reverse: was it built by another "
                    "optimizer?"
                )
            continue
        if np.shape(g) != tuple(w.shape):
            raise GradchainError(
                f"the state of {where} at {_path_at(given, i, _is_none)} has shape "
                f"{np.shape(g)} but these updates need {tuple(w.shape)}: was it built for "
                "another params tree?"
            )
        if _kind_of(w.dtype) == "complex" and _is_real_leaf(g):
            raise GradchainError(
                f"the state of {where} at {_path_at(given, i, _is_none)} is real but the "
                "updates are complex: the imaginary part would be dropped (init the optimizer "
                "with complex params)"
            )


def _is_real_leaf(leaf: Any) -> bool:
    dtype = _leaf_dtype(leaf)
    return dtype is not None and _kind_of(dtype) == "real"


def refuse_missing_params(who: str) -> None:
    raise GradchainError(f"{who} needs the params: call update(grads, state, params)")


def refuse_sharded_reduction(who: str, axes: list[str], remedy: str) -> None:
    """A reduction over a leaf inside ``shard_map`` would see only this device's shard."""
    raise GradchainError(
        f"{who} reduces over a leaf that is sharded over mesh axes {axes} inside shard_map, "
        f"so each device would see only its shard: {remedy}"
    )


def check_kept_in(name: str, value: Any, dtype: Any) -> None:
    """A live hyperparameter is kept as a 0-d array of ``dtype``: refuse a value that changes
    its shape, overflows there (``1e39`` in float32 would be ``inf``) or would be truncated
    (``0.5`` in an integer). A traced value is checked for its shape and kind only."""
    shape = np.shape(value) if not isinstance(value, jax.core.Tracer) else value.shape
    if shape != ():
        raise _refuse(name, value, f"{name} must be a scalar (0-d), got shape {tuple(shape)}")
    kind = jax.numpy.result_type(value) if isinstance(value, jax.core.Tracer) else None
    integer_slot = jax.numpy.issubdtype(dtype, jax.numpy.integer)
    if kind is not None:
        if integer_slot and not jax.numpy.issubdtype(kind, jax.numpy.integer):
            raise _refuse(
                name, value, f"{name} is kept as {np.dtype(dtype)}: a traced {kind} value would "
                "be truncated; give an integer"
            )
        return
    x = _concrete(value)
    if integer_slot:
        if not float(x).is_integer():
            raise _refuse(
                name, value, f"{name} is kept as {np.dtype(dtype)}: {x} would be truncated to "
                f"{int(x)}; give an integer"
            )
        return
    with np.errstate(over="ignore"):
        kept = np.asarray(x, np.float64).astype(dtype)
    if math.isfinite(x) and not np.isfinite(kept):
        raise _refuse(
            name, value, f"{name} = {x:g} is not finite in {np.dtype(dtype)}, the dtype it is "
            f"kept in (largest: {float(jax.numpy.finfo(dtype).max):g})"
        )
