"""Read and replace optimizer state by slot name, without knowing the chain's layout.

A state is whatever ``init`` returned: a chain's flat tuple, one transform's NamedTuple, an
Optax state, or a wrapper's state that keeps inner states in its fields (a NamedTuple, or a
dict, list or tuple of them). Every NamedTuple field that is not itself inner state is a
*slot*: ``mu``, ``nu``, ``count``, ``learning_rate``...

Each slot has a *path*: the route from the root, joined by dots. Tuple and list entries are
numbered, NamedTuple fields and dict keys are named. In Adam's state
``(MomentumState, BiasCorrectState, RmsState, LearningRateState)`` the second moment is at
``"2.nu"`` and the step size at ``"3.learning_rate"``; inside a wrapper it might be
``"1.inner_state.2.nu"``. A bare name (``"nu"``) means every slot of that name.

Hyperparameters are the slots a training loop may change between steps: a gradchain state
field whose meaning starts with "hyperparameter" (see ``gradchain.describe``) or is named
``learning_rate``, and each entry of Optax's ``inject_hyperparams`` dict. They are 0-d
arrays; ``set_hyperparam`` keeps their dtype, so a jitted step is reused, not recompiled.
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


class Slot(NamedTuple):
    """One named piece of state.

    path:   route from the root, e.g. ``"2.nu"``; unique within the state.
    route:  the same route as a tuple, e.g. ``(2, "nu")``.
    owner:  the type name of the state that holds it, e.g. ``"RmsState"``.
    name:   the field name, e.g. ``"nu"``.
    meaning: its one-line meaning (from ``gradchain.describe``), or ``""`` when unknown.
    value:  the subtree (arrays, or ``jax.ShapeDtypeStruct`` under ``jax.eval_shape``).
    hyperparameter: True for a live hyperparameter (see the module docstring).
    outer:  type names of the enclosing states, outermost first (empty at the top level).
    """

    path: str
    route: tuple[Any, ...]
    owner: str
    name: str
    meaning: str
    value: Any
    hyperparameter: bool
    outer: tuple[str, ...]


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


def _is_hyperparameter(name: str, meaning: str, value: Any) -> bool:
    if _ndim(value) != 0:
        return False
    return meaning.lower().startswith("hyperparameter") or name == "learning_rate"


def _path(route: tuple[Any, ...]) -> str:
    return ".".join(str(r) for r in route) or "<root>"


def _map_slots(node: Any, fn: Callable[[Slot], Any], route=(), outer=(), top=True) -> Any:
    """Rebuild ``node`` with every slot's value replaced by ``fn(slot)``."""
    if _is_namedtuple(node) and (top or _is_state(node)):
        cls = type(node)
        meanings = getattr(cls, "meanings", {})
        inner_outer = (*outer, cls.__name__)
        fields = []
        for field, value in zip(cls._fields, node):
            here = (*route, field)
            if value is None:
                fields.append(None)
            elif _holds_states(value):
                fields.append(_map_slots(value, fn, here, inner_outer, top=True))
            elif field == "hyperparams" and isinstance(value, dict) and not meanings:
                # Optax's inject_hyperparams: one live scalar per key.
                fields.append(
                    {
                        k: fn(
                            Slot(
                                _path((*here, k)),
                                (*here, k),
                                cls.__name__,
                                str(k),
                                "hyperparameter (optax.inject_hyperparams)",
                                v,
                                _ndim(v) == 0,
                                outer,
                            )
                        )
                        for k, v in value.items()
                    }
                )
            else:
                meaning = meanings.get(field) or _GENERIC_MEANINGS.get(field, "")
                hyper = _is_hyperparameter(field, meaning, value)
                fields.append(
                    fn(Slot(_path(here), here, cls.__name__, field, meaning, value, hyper, outer))
                )
        return cls._make(fields)
    if isinstance(node, (tuple, list)) and not _is_namedtuple(node):
        children = [_map_slots(c, fn, (*route, i), outer, True) for i, c in enumerate(node)]
        return type(node)(children)
    if isinstance(node, dict):
        return type(node)((k, _map_slots(v, fn, (*route, k), outer, True)) for k, v in node.items())
    if node is None:
        return None
    # A bare array where a state was expected: a slot named after its place.
    name = str(route[-1]) if route else "state"
    return fn(Slot(_path(route), route, "", name, "", node, False, outer))


def slots(state: State) -> list[Slot]:
    """Every slot of ``state``, in order (depth first), skipping slots that are ``None``.

    >>> import jax.numpy as jnp, gradchain
    >>> state = gradchain.adam(1e-3).init({"w": jnp.zeros(3)})
    >>> [s.path for s in gradchain.slots(state) if not s.hyperparameter]
    ['0.mu', '1.count', '2.nu', '2.count', '3.count']
    """
    found: list[Slot] = []

    def record(slot: Slot) -> Any:
        found.append(slot)
        return slot.value

    _map_slots(state, record)
    return found


def _matching(state: State, name: str, only_hyper: bool = False) -> list[Slot]:
    every = [s for s in slots(state) if s.hyperparameter or not only_hyper]
    return [s for s in every if name in (s.name, s.path)]


def _unknown(what: str, name: str, known: list[Slot]) -> _checks.GradchainError:
    names = sorted({s.name for s in known})
    listed = ", ".join(names) if names else "none"
    return _checks.GradchainError(f"this state has no {what} named {name!r}; it has: {listed}")


def get_slot(state: State, name: str) -> dict[str, Any]:
    """Every slot called ``name`` (or the one at path ``name``), keyed by path.

    Returns: ``{path: subtree}``, e.g. ``get_slot(adam_state, "nu") == {"2.nu": {...}}``:
             the paths say where each one lives, so a chain with two second moments (or a
             parameter group per subtree) gives one entry each.
    Raises:  GradchainError naming the slots the state has, when none matches.
    """
    found = _matching(state, name)
    if not found:
        raise _unknown("slot", name, slots(state))
    return {s.path: s.value for s in found}


def _cast_like(path: str, old: Any, new: Any) -> Any:
    """``new`` with ``old``'s tree and dtypes: a state's dtypes never change, so a jitted
    step keeps its compiled program."""
    _checks.check_same_structure(f"the state's slot {path}", old, "the new value", new)
    return jax.tree.map(lambda o, n: jnp.asarray(n, dtype=jnp.result_type(o)), old, new)


def set_slot(state: State, name: str, value_or_fn: Any) -> State:
    """A new state with every slot called ``name`` (or at path ``name``) replaced.

    Args:    value_or_fn -- the new subtree, or a function of the old subtree returning it
             (e.g. ``lambda nu: jax.tree.map(jnp.zeros_like, nu)`` to reset a moment).
             The result must have the slot's tree and shapes; it is cast to the slot's
             dtypes, so a jitted step is reused.
    Raises:  GradchainError when no slot matches, or the new value does not fit.
    """
    if not _matching(state, name):
        raise _unknown("slot", name, slots(state))

    def replace(slot: Slot) -> Any:
        if name not in (slot.name, slot.path):
            return slot.value
        new = value_or_fn(slot.value) if callable(value_or_fn) else value_or_fn
        return _cast_like(slot.path, slot.value, new)

    return _map_slots(state, replace)


def get_hyperparams(state: State) -> dict[str, jax.Array]:
    """The live hyperparameters of ``state``, each a 0-d array.

    Keys are bare names (``"learning_rate"``, ``"eps"``) when the name occurs once in the
    state, and paths (``"0.decay"``, ``"2.decay"``) for a name that occurs more than once --
    in Adam, ``decay`` is b1 for the momentum and the bias correction and b2 for ``nu``.
    """
    found = [s for s in slots(state) if s.hyperparameter]
    counts: dict[str, int] = {}
    for s in found:
        counts[s.name] = counts.get(s.name, 0) + 1
    return {(s.name if counts[s.name] == 1 else s.path): s.value for s in found}


def _probe(value: Any) -> Any:
    """A concrete float array as float64 numpy for the checks (which use numpy's dtype
    classes, where bfloat16 is not a number); anything else as given."""
    dtype = getattr(value, "dtype", None)
    if dtype is None or isinstance(value, jax.core.Tracer):
        return value
    if jnp.issubdtype(dtype, jnp.floating):
        return np.asarray(value).astype(np.float64)
    return value


def set_hyperparam(state: State, name: str, value: Any) -> State:
    """A new state with hyperparameter ``name`` set to ``value``, in its stored dtype.

    The state's tree, shapes and dtypes are unchanged, so a jitted step that takes the
    state as an argument runs the same compiled program with the new value.

    Args:    name -- a bare name (``"learning_rate"``) that occurs once in the state, or a
             path (``"2.decay"``) from ``get_hyperparams``.  value -- a real scalar (a Python
             number or a 0-d array, traced or not).
    Raises:  GradchainError naming the known hyperparameters when ``name`` is not one of
             them, or listing the paths when a bare name is ambiguous.
    Note:    a ``learning_rate`` that a schedule drives is recomputed from the step count
             every step; setting it changes only the recorded value.
    """
    hyper = [s for s in slots(state) if s.hyperparameter]
    found = [s for s in hyper if name in (s.name, s.path)]
    if not found:
        known = ", ".join(get_hyperparams(state)) or "none"
        raise _checks.GradchainError(
            f"unknown hyperparameter {name!r}; this state's hyperparameters are: {known}"
        )
    if len(found) > 1:
        where = "; ".join(f"{s.path} ({s.owner}: {s.meaning})" for s in found)
        raise _checks.GradchainError(
            f"hyperparameter {name!r} occurs {len(found)} times in this state: {where}. "
            f"Name one by its path, e.g. set_hyperparam(state, {found[-1].path!r}, value)"
        )
    _checks.check_hyperparam(name, _probe(value))
    target = found[0].path

    def replace(slot: Slot) -> Any:
        if slot.path != target:
            return slot.value
        return jnp.asarray(value, dtype=jnp.result_type(slot.value))

    return _map_slots(state, replace)
