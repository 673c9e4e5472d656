"""Read and replace optimizer state by name, without knowing the chain's layout.

A state is whatever ``init`` returned: a chain's flat tuple, one transform's NamedTuple, an
Optax state, or a wrapper's state that keeps inner states in its fields. Every NamedTuple
field that is not itself inner state is a *slot*: ``mu``, ``nu``, ``count``...

Names are the user's own. A slot's *path* is the labels of the parameter groups it sits in
(``gradchain.partition``), then its name: ``nu``, or ``backbone.nu``. Chains and the wrappers
the user did not name (``skip_non_finite``, ``accumulate``, ``masked``) add nothing. Where two
slots would get one path (Adam has a step count in its bias correction and in its second
moment), the owner's state type is added before the name: ``BiasCorrectState.count``; for a
hyperparameter, the optimizer's name (``adam.learning_rate`` beside ``sgd.learning_rate``).

Hyperparameters are kept once per optimizer, under its own argument names (see
``gradchain.live``): ``learning_rate``, ``b1``, or ``backbone.learning_rate`` in a group.
Each entry of Optax's ``inject_hyperparams`` dict is one as well. They are 0-d arrays;
``set_hyperparam`` keeps their dtype, so a jitted step is reused, not recompiled. One that a
schedule sets is listed (its value at the last step) but cannot be set.

A name given to these functions matches a slot by its path, by its bare name, or by the end
of its path (``"backbone.nu"``): a bare name that occurs once works unqualified.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain import _checks

__all__ = ["Slot", "get_hyperparams", "get_slot", "set_hyperparam", "set_slot", "slots"]

State = Any

# Foreign slots have no ``meanings``; these common names still say something true.
_GENERIC_MEANINGS = {
    "mu": "first moment (by its name)",
    "nu": "second moment (by its name)",
    "count": "steps taken so far (by its name)",
    "trace": "momentum buffer (by its name)",
    "sum_of_squares": "running sum of g**2 (by its name)",
}

# gradchain's ``LiveState`` and Optax's ``InjectHyperparamsState`` keep their hyperparameters
# in ``hyperparams``; the names a schedule sets are the keys of ``scheduled`` (ours, hidden: it
# holds the schedules' own states) or ``hyperparams_states`` (Optax's).
_HYPERPARAMETER_FIELD = "hyperparams"
_DRIVEN = "hyperparameter, recorded: the enclosing inject_hyperparams sets it"
_SCHEDULED_FIELDS = ("scheduled", "hyperparams_states")


class Slot(NamedTuple):
    """One named piece of state.

    path:   the user's name for it, unique within the state: group labels, then the name
            (``"backbone.nu"``); see the module docstring.
    route:  where it lives, as keys from the root (``(0, "inner", 2, "nu")``).
    owner:  the type name of the state that holds it, e.g. ``"RmsState"``.
    name:   the field name or hyperparameter name, e.g. ``"nu"``, ``"b1"``.
    meaning: its one-line meaning (from ``gradchain.describe``), or ``""`` when unknown.
    value:  the subtree (arrays, or ``jax.ShapeDtypeStruct`` under ``jax.eval_shape``).
    hyperparameter: True for a hyperparameter (live, or recorded from a schedule).
    labels: the parameter-group labels it sits in, outermost first.
    settable: True for a hyperparameter that ``set_hyperparam`` may change (not one that a
            schedule sets every step).
    owner_optimizer: for a hyperparameter, the name of the optimizer it belongs to.
    """

    path: str
    route: tuple[Any, ...]
    owner: str
    name: str
    meaning: str
    value: Any
    hyperparameter: bool
    labels: tuple[str, ...]
    settable: bool = False
    owner_optimizer: str = ""


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _is_state(x: Any) -> bool:
    """A NamedTuple known to be optimizer state: described by gradchain, or from Optax.

    Other NamedTuples met inside a slot (a quantized moment's codes and scales, a user's
    params class) are data, not inner states."""
    if not _is_namedtuple(x):
        return False
    cls = type(x)
    return hasattr(cls, "meanings") or cls.__module__.split(".")[0] == "optax"


def _holds_states(x: Any) -> bool:
    if _is_state(x):
        return True
    if isinstance(x, (tuple, list)) and not _is_namedtuple(x):
        return any(_holds_states(c) for c in x)
    if isinstance(x, dict):
        return any(_holds_states(c) for c in x.values())
    return False


def _ndim(x: Any) -> int:
    """The rank of an array leaf (an array, a ShapeDtypeStruct, a number); -1 for a tree."""
    if hasattr(x, "shape"):
        return len(x.shape)
    if x is None or isinstance(x, (tuple, list, dict)):
        return -1
    return np.ndim(x)


def _holds_hyperparameters(cls: type) -> bool:
    return hasattr(cls, "validate") or cls.__module__.split(".")[0] == "optax"


def _scheduled_names(node: Any) -> frozenset:
    """The hyperparameters of a live (or Optax's injected) state that a schedule sets."""
    for field in _SCHEDULED_FIELDS:
        found = getattr(node, field, None)
        if isinstance(found, dict):
            return frozenset(found)
    return frozenset()


def _driven(node: Any, value: Any) -> bool:
    """Whether ``value``, a field of the hyperparameter-holding state ``node``, is itself one
    whose hyperparameters ``node``'s optimizer sets: the state of the optimizer that an
    ``inject_hyperparams`` wraps (gradchain's or Optax's) sits directly as its inner state,
    rebuilt at every step from the wrapper's values, which it only records."""
    return (
        _is_namedtuple(value)
        and _holds_hyperparameters(type(value))
        and isinstance(getattr(value, _HYPERPARAMETER_FIELD, None), dict)
        and any(value is getattr(node, f, None) for f in ("inner", "inner_state"))
    )


def _map_slots(
    node: Any, fn: Callable[[Slot], Any], route=(), labels=(), top=True, driven=False
) -> Any:
    """Rebuild ``node`` with every slot's value replaced by ``fn(slot)``; ``Slot.path`` is
    left as the short path (labels and name) here, made unique by ``_unique``. ``driven``:
    ``node``'s hyperparameters are recorded copies of an enclosing optimizer's."""
    if _is_namedtuple(node) and (top or _is_state(node)):
        cls = type(node)
        meanings = getattr(cls, "meanings", {})
        fields = []
        hyperparameters = _holds_hyperparameters(cls)
        scheduled = _scheduled_names(node) if hyperparameters else frozenset()
        for field, value in zip(cls._fields, node):
            here = (*route, field)
            if value is None:
                fields.append(None)
            elif hyperparameters and field == "scheduled" and hasattr(cls, "validate"):
                fields.append(value)  # the schedules' own states: not slots
            elif hyperparameters and _driven(node, value):
                fields.append(_map_slots(value, fn, here, labels, top=True, driven=True))
            elif _holds_states(value):
                fields.append(_map_slots(value, fn, here, labels, top=True))
            elif hyperparameters and field == _HYPERPARAMETER_FIELD and isinstance(value, dict):
                fields.append(
                    {
                        k: fn(
                            Slot(
                                ".".join(
                                    (*labels, getattr(cls, "optimizer", cls.__name__), str(k))
                                    if driven
                                    else (*labels, str(k))
                                ),
                                (*here, k),
                                cls.__name__,
                                str(k),
                                _DRIVEN
                                if driven
                                else "hyperparameter, set by a schedule"
                                if k in scheduled
                                else "hyperparameter",
                                v,
                                _ndim(v) == 0,
                                labels,
                                not driven and k not in scheduled and _ndim(v) == 0,
                                getattr(cls, "optimizer", ""),
                            )
                        )
                        for k, v in value.items()
                    }
                )
            else:
                meaning = meanings.get(field) or _GENERIC_MEANINGS.get(field, "")
                short = ".".join((*labels, field))
                fields.append(
                    fn(Slot(short, here, cls.__name__, field, meaning, value, False, labels))
                )
        return cls._make(fields)
    if isinstance(node, (tuple, list)) and not _is_namedtuple(node):
        children = [_map_slots(c, fn, (*route, i), labels, True) for i, c in enumerate(node)]
        return type(node)(children)
    if isinstance(node, dict):
        return type(node)(
            (k, _map_slots(v, fn, (*route, k), (*labels, str(k)), True)) for k, v in node.items()
        )
    if node is None:
        return None
    # A bare array where a state was expected: a slot named after its place.
    name = str(route[-1]) if route else "state"
    return fn(Slot(".".join((*labels, name)), route, "", name, "", node, False, labels))


def _qualifier(slot: Slot) -> str:
    """What tells two slots of one name apart: the optimizer that owns a hyperparameter
    (``adam.learning_rate``), the state type that holds any other slot."""
    if slot.hyperparameter and slot.owner_optimizer:
        return slot.owner_optimizer
    return slot.owner or "state"


def _unique(found: list[Slot]) -> list[Slot]:
    """Make paths unique: where a path is shared, add the owner's type before the name, and
    then, if still shared, the position among them."""
    counts: dict[str, int] = {}
    for s in found:
        counts[s.path] = counts.get(s.path, 0) + 1
    found = [
        s if counts[s.path] == 1 else s._replace(path=".".join((*s.labels, _qualifier(s), s.name)))
        for s in found
    ]
    seen: dict[str, int] = {}
    out = []
    for s in found:
        n = seen.get(s.path, 0)
        seen[s.path] = n + 1
        out.append(s if n == 0 else s._replace(path=f"{s.path}#{n + 1}"))
    return out


def slots(state: State) -> list[Slot]:
    """Every slot of ``state``, in order (depth first), skipping slots that are ``None``.

    >>> import jax.numpy as jnp, gradchain
    >>> state = gradchain.adam(1e-3).init({"w": jnp.zeros(3)})
    >>> [s.path for s in gradchain.slots(state) if not s.hyperparameter]
    ['mu', 'BiasCorrectState.count', 'nu', 'RmsState.count']
    """
    found: list[Slot] = []

    def record(slot: Slot) -> Any:
        found.append(slot)
        return slot.value

    _map_slots(state, record)
    return _unique(found)


def _matches(slot: Slot, name: str) -> bool:
    return name in (slot.name, slot.path) or slot.path.endswith("." + name)


def _unknown(what: str, name: str, known: list[Slot]) -> _checks.GradchainError:
    names = sorted({s.path for s in known})
    listed = ", ".join(names) if names else "none"
    return _checks.GradchainError(f"this state has no {what} named {name!r}; it has: {listed}")


def get_slot(state: State, name: str) -> dict[str, Any]:
    """Every slot called ``name`` (a bare name, a path, or the end of a path), keyed by path.

    Returns: ``{path: subtree}``, e.g. ``get_slot(adam_state, "nu") == {"nu": {...}}``; a
             chain with two second moments, or a parameter group per subtree, gives one
             entry each (``{"backbone.nu": ..., "head.nu": ...}``).
    Raises:  GradchainError naming the slots the state has, when none matches.
    """
    every = slots(state)
    found = [s for s in every if _matches(s, name)]
    if not found:
        raise _unknown("slot", name, every)
    return {s.path: s.value for s in found}


def _cast_like(path: str, old: Any, new: Any) -> Any:
    """``new`` with ``old``'s tree and dtypes: a state's dtypes never change, so a jitted
    step keeps its compiled program."""
    _checks.check_same_structure(f"the state's slot {path}", old, "the new value", new)
    return jax.tree.map(lambda o, n: jnp.asarray(n, dtype=jnp.result_type(o)), old, new)


def _replace_at(state: State, routes: dict[tuple, Callable[[Slot], Any]]) -> State:
    def replace(slot: Slot) -> Any:
        fn = routes.get(slot.route)
        return slot.value if fn is None else fn(slot)

    return _map_slots(state, replace)


def set_slot(state: State, name: str, value_or_fn: Any) -> State:
    """A new state with every slot called ``name`` (as in ``get_slot``) replaced.

    Args:    value_or_fn -- the new subtree, or a function of the old subtree returning it
             (e.g. ``lambda nu: jax.tree.map(jnp.zeros_like, nu)`` to reset a moment).
             The result must have the slot's tree and shapes; it is cast to the slot's
             dtypes, so a jitted step is reused.
    Raises:  GradchainError when no slot matches, or the new value does not fit.
    """
    every = slots(state)
    found = [s for s in every if _matches(s, name)]
    if not found:
        raise _unknown("slot", name, every)
    paths = {s.route: s.path for s in found}

    def new_value(slot: Slot) -> Any:
        new = value_or_fn(slot.value) if callable(value_or_fn) else value_or_fn
        return _cast_like(paths[slot.route], slot.value, new)

    return _replace_at(state, {route: new_value for route in paths})


def get_hyperparams(state: State) -> dict[str, jax.Array]:
    """The hyperparameters of ``state`` by path: each optimizer's argument names, behind the
    labels of the parameter group it sits in (``"learning_rate"``, ``"backbone.b1"``).

    Values a schedule sets are included (the value of the last step, for logging). The copies
    that the optimizer wrapped by an ``inject_hyperparams`` records of the wrapper's values
    are not: the wrapper's own are the ones to read and set.

    >>> import gradchain
    >>> sorted(gradchain.get_hyperparams(gradchain.adam(1e-3).init(1.0)))
    ['b1', 'b2', 'eps', 'eps_root', 'learning_rate']
    """
    return {s.path: s.value for s in slots(state) if s.hyperparameter and s.meaning != _DRIVEN}


def _probe(value: Any) -> Any:
    """A concrete float array as float64 numpy for the checks (which use numpy's dtype
    classes, where bfloat16 is not a number); anything else as given."""
    dtype = getattr(value, "dtype", None)
    if dtype is None or isinstance(value, jax.core.Tracer):
        return value
    if jnp.issubdtype(dtype, jnp.floating):
        return np.asarray(value).astype(np.float64)
    return value


def _validate(state: State, slot: Slot, value: Any) -> None:
    """The constructor's checks for a new value: the owning optimizer's own, when known."""
    holder = state
    for key in slot.route[:-2]:
        holder = getattr(holder, key) if isinstance(key, str) and _is_namedtuple(holder) else holder[key]
    validate = getattr(type(holder), "validate", None)
    if validate is None:  # an Optax state: the generic check
        _checks.check_hyperparam(slot.name, value)
        return
    validate(slot.name, value, dict(holder.hyperparams))


def set_hyperparam(state: State, name: str, value: Any) -> State:
    """A new state with hyperparameter ``name`` set to ``value``, in its stored dtype.

    The state's tree, shapes and dtypes are unchanged, so a jitted step that takes the
    state as an argument runs the same compiled program with the new value. The value goes
    through the checks the optimizer's constructor runs, with its message.

    Args:    name -- an argument name of the optimizer (``"b1"``) that occurs once in the
             state, or a path from ``get_hyperparams`` (``"backbone.learning_rate"``).
             value -- a real scalar (a Python number or a 0-d array, traced or not).
    Raises:  GradchainError naming the known hyperparameters when ``name`` is not one of
             them, listing the candidates when it is ambiguous, and refusing a value that a
             schedule sets (change the schedule instead), a value that is not 0-d (traced
             or not), one that is not finite in the stored dtype (``1e39`` in float32), and
             a fraction for an integer hyperparameter (never truncated).
    """
    hyper = [s for s in slots(state) if s.hyperparameter]
    found = [s for s in hyper if _matches(s, name)]
    if len(found) > 1 and any(s.meaning == _DRIVEN for s in found):
        found = [s for s in found if s.meaning != _DRIVEN]  # the copies follow the original
    if not found:
        known = ", ".join(s.path for s in hyper) or "none"
        raise _checks.GradchainError(
            f"unknown hyperparameter {name!r}; this state's hyperparameters are: {known}"
        )
    if len(found) > 1:
        where = ", ".join(s.path for s in found)
        raise _checks.GradchainError(
            f"hyperparameter {name!r} is ambiguous in this state: it could be {where}. "
            f"Name one by its path, e.g. set_hyperparam(state, {found[0].path!r}, value)"
        )
    slot = found[0]
    if slot.meaning == _DRIVEN:
        raise _checks.GradchainError(
            f"hyperparameter {slot.path!r} is the inject_hyperparams wrapper's value, recorded "
            "in the wrapped optimizer's state at every step; set the wrapper's own (the same "
            "name without this path)"
        )
    if not slot.settable:
        raise _checks.GradchainError(
            f"hyperparameter {slot.path!r} is set by a schedule at every step (its value is "
            "recorded for logging); change the schedule instead"
        )
    kept_in = jnp.result_type(slot.value)
    _checks.check_kept_in(slot.name, value, kept_in)  # 0-d, fits, not truncated
    _validate(state, slot, _probe(value))

    def new_value(s: Slot) -> Any:
        return jnp.asarray(value, dtype=kept_in)

    return _replace_at(state, {slot.route: new_value})
