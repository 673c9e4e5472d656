"""Live hyperparameters: change an optimizer's numbers between steps without recompiling.

A transform takes its hyperparameters as plain values and holds only its math. Liveness is
one layer above, once per optimizer: ``live`` turns a *factory* -- any function of
hyperparameters that returns a transform, such as ``adam`` -- into one whose numbers are kept
in the state under the factory's own argument names. Each step rebuilds the transform from
those numbers (at trace time: Python, not compiled work) and runs it, so ``b1`` is one 0-d
array however many transforms use it, and changing it never recompiles::

    @gradchain.live
    def my_adam(learning_rate, b1=0.9, b2=0.999):
        return chain(scale_by_momentum(b1, ema=True), bias_correct(b1),
                     scale_by_rms(b2, bias_correction=True),
                     scale_by_learning_rate(learning_rate))

    state = set_hyperparam(state, "b1", 0.95)      # the constructor's checks run first

Which arguments are live: a real number or a real 0-d array, kept as float32 (float64 under
x64) whatever the params' dtype -- an integer only where the argument's default is an integer
(``ns_steps=5`` stays a static Python int here; ``inject_hyperparams`` keeps it live as int32),
and an integer given for any other argument (``learning_rate=1``) is kept as a float -- and a
schedule (a function of the step count, or Optax's stateful schedule), whose value the
factory is called with each step and which is recorded in ``hyperparams`` beside the others,
read-only. Everything else (bools, dtypes, masks, ``None``, the names in ``static``) is fixed
at construction. A value that does not fit its slot is refused, naming the argument: one that
is not 0-d, one that is not finite in the dtype it is kept in (``1e39`` in float32), a
fraction for an integer. A value that is already traced (an optimizer built inside ``jit``)
is live one level up: it is used as given, and recorded. So is every value an
``inject_hyperparams`` (gradchain's or Optax's) hands the optimizer it wraps, traced or not:
the wrapper's state holds the number, the wrapped optimizer's state records it.
An argument whose default keeps it fixed (``decay_offset=0``, ``mu_dtype=jnp.float32``) stays
fixed when given as an array, traced or not (Optax's wrapper hands every number in as one),
so the state's structure does not depend on how a value was given.

Live inside live: a live optimizer (every named one) called while a live factory builds --
``gradchain.adamw(learning_rate, weight_decay=wd)`` inside the user's own ``@live`` factory --
is built as its plain chain from the values it is given, so the numbers are kept once, by the
outer factory's names. Its arguments the outer factory does not pass on (adamw's ``b1``,
``b2``) are constants of the outer optimizer. (A schedule given to it there, not through the
outer's arguments, keeps it live, with its own state.)
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain import _checks
from gradchain.base import Child, GradientTransformation, describe, hyperparam_dtype
from gradchain.transforms.moment_math import increment

__all__ = [
    "InjectHyperparamsState",
    "InjectStatefulHyperparamsState",
    "LiveState",
    "inject_hyperparams",
    "live",
]

# Never live, whatever their value: a mask may be a function of the params, not a schedule.
ALWAYS_STATIC = frozenset({"mask"})


@describe(
    count="steps taken so far (int32 scalar), the schedules' argument; None without schedules",
    hyperparams="live hyperparameters by the optimizer's argument names (0-d arrays; set with "
    "gradchain.set_hyperparam), and the value each schedule gave at the last step",
    scheduled="which hyperparameters a schedule sets: each one's schedule state (None for a "
    "function of the step count)",
    inner="the state of the transform built from these hyperparameters",
)
class LiveState(NamedTuple):
    count: Any
    hyperparams: dict[str, jax.Array]
    scheduled: dict[str, Any]
    inner: Any

    @property
    def inner_state(self) -> Any:
        """Optax's name for ``inner``."""
        return self.inner

    @property
    def hyperparams_states(self) -> dict[str, Any]:
        """Optax's name for ``scheduled``."""
        return self.scheduled

    def __getattr__(self, name: str) -> Any:
        """Code written for Optax reads a wrapper's state by its field names
        (``schedule_free(...)`` state ``.z``, ``mechanize(...)`` state ``.m``): a name that
        is not a field of this state is the inner state's attribute of that name, else the
        one slot of that name inside ``inner``, as ``gradchain.get_slot`` finds it. None, or
        several, is an ``AttributeError`` that lists the slots."""
        if name.startswith("_"):
            raise AttributeError(name)
        if hasattr(self.inner, name):  # the inner state's own field (muon's ``inner_states``)
            return getattr(self.inner, name)
        from gradchain.state import slots  # the slot reader sits above the states it reads

        every = [s for s in slots(self.inner) if not s.hyperparameter]
        found = [s for s in every if s.name == name]
        if len(found) == 1:
            return found[0].value
        listed = ", ".join(s.path for s in (found or every)) or "none"
        raise AttributeError(
            f"{type(self).__name__} has no field {name!r}"
            + (
                f" and {len(found)} slots of that name ({listed}): use gradchain.get_slot"
                if found
                else f"; the slots inside are: {listed}"
            )
        )


# Optax's names for the state of its inject_hyperparams: the same fields, ours named.
InjectHyperparamsState = LiveState
InjectStatefulHyperparamsState = LiveState


# How many live builds are running on this thread: a live optimizer made inside one is built
# as its plain chain, and the outer one keeps the numbers.
_builds = threading.local()


@contextlib.contextmanager
def _building() -> Any:
    _builds.depth = getattr(_builds, "depth", 0) + 1
    try:
        yield
    finally:
        _builds.depth -= 1


def _is_number(value: Any) -> bool:
    """A real number or a real 0-d array (traced or not); not a bool."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, float, np.integer, np.floating)):
        return True
    dtype, shape = getattr(value, "dtype", None), getattr(value, "shape", None)
    if dtype is None or shape != ():
        return False
    return jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)


def _is_integer(value: Any) -> bool:
    if isinstance(value, (int, np.integer)):
        return True
    return hasattr(value, "dtype") and jnp.issubdtype(value.dtype, jnp.integer)


def _may_be_fractional(value: Any, parameter: inspect.Parameter) -> bool:
    """An integer is live only where the argument is not an integer by default."""
    if not _is_integer(value):
        return True
    default = parameter.default
    return not isinstance(default, (int, np.integer)) or isinstance(default, bool)


def _live_by_default(parameter: inspect.Parameter, only_floats: bool) -> bool:
    """Whether a plain value of this argument can be live, judged by its default: none,
    ``None`` or a number (an integer default only when integers are live)."""
    default = parameter.default
    if default is parameter.empty or default is None:
        return True
    return _is_number(default) and (not only_floats or _may_be_fractional(default, parameter))


def _is_stateful_schedule(value: Any) -> bool:
    """Optax's ``StatefulSchedule``: ``init()``, ``update(state, **extra)``, ``(state, **extra)``."""
    return (
        callable(value)
        and callable(getattr(value, "init", None))
        and callable(getattr(value, "update", None))
    )


def _is_schedule(value: Any) -> bool:
    """A function of the step count, or a stateful schedule; not a type, not a transform."""
    if not callable(value) or isinstance(value, type):
        return False
    return not hasattr(value, "init") or _is_stateful_schedule(value)


class _Arguments(NamedTuple):
    numbers: dict[str, Any]  # live, kept in the state
    schedules: dict[str, Callable[..., Any]]  # live, recomputed each step
    fixed: dict[str, Any]  # everything else, as given


def _sort_arguments(
    signature: inspect.Signature,
    arguments: dict[str, Any],
    static: frozenset,
    only_floats: bool,
    own_schedules: frozenset = frozenset(),
) -> _Arguments:
    numbers, schedules, fixed = {}, {}, {}
    for name, value in arguments.items():
        parameter = signature.parameters[name]
        variadic = parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        if variadic or name in static or (name in own_schedules and _is_schedule(value)):
            fixed[name] = value
        elif _is_number(value) and not _live_by_default(parameter, only_floats):
            fixed[name] = value  # an array (traced by Optax's wrapper) where a number is fixed
        elif _is_number(value) and (not only_floats or _may_be_fractional(value, parameter)):
            numbers[name] = value
        elif _is_schedule(value):
            schedules[name] = value
        else:
            fixed[name] = value
    return _Arguments(numbers, schedules, fixed)


def _call(factory: Callable, signature: inspect.Signature, arguments: dict[str, Any]) -> Any:
    bound = inspect.BoundArguments(signature, dict(arguments))
    with _building():
        return factory(*bound.args, **bound.kwargs)


def _reuse(built: dict[Any, tuple], inner: Any) -> None:
    """Hand the chain rebuilt for this step what ``init``'s chain built, so its state check
    reads that instead of tracing ``init`` again (a third of the trace on 1000 leaves).
    Only for the same members: a factory that chose other members checks on its own."""
    expected, members = _expected_states(inner), _member_names(inner)
    expected.update({k: v for k, (names, v) in built.items() if names == members})


def _expected_states(transform: Any) -> dict:
    found = getattr(transform, "expected_states", None)
    return found if isinstance(found, dict) else {}


def _member_names(transform: Any) -> tuple[str, ...]:
    return tuple(repr(m) for m in getattr(transform, "members", ()))


def _schedule_start(schedule: Callable) -> Any:
    return schedule.init() if _is_stateful_schedule(schedule) else None


def _schedule_next(schedule: Callable, state: Any, extra: dict[str, Any]) -> Any:
    return schedule.update(state, **extra) if _is_stateful_schedule(schedule) else None


def _scheduled_value(
    name: str, schedule: Callable, state: Any, count: jax.Array, dtype: Any, extra: dict
) -> jax.Array:
    if _is_stateful_schedule(schedule):
        value = jnp.asarray(schedule(state, **extra))
    else:
        value = jnp.asarray(schedule(count))
    if value.shape != ():
        raise _checks.GradchainError(
            f"the schedule given as {name} returned shape {value.shape} at a step; a schedule "
            "must return a scalar"
        )
    return value.astype(dtype)


def _accepted(update: Callable, extra: dict[str, Any]) -> dict[str, Any]:
    """The extra arguments ``update`` takes: all for gradchain's ``**extra``; for a foreign
    ``update(updates, state, params=None)`` (an Optax transform) only those it names."""
    if not extra:
        return extra
    try:
        parameters = inspect.signature(update).parameters
    except (TypeError, ValueError):
        return extra
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return extra
    return {k: v for k, v in extra.items() if k in parameters}


_GIVEN = object()  # where a recorded check took the argument being checked


def _recorded_checks(log: list, numbers: dict[str, Any]) -> dict[str, tuple | None]:
    """For each live argument, the checks its construction ran on its value (found by
    identity), with the value left as a hole; ``None`` where that is unsure: no check took
    it as given, or another argument held the very same object."""
    holders: dict[int, list[str]] = {}
    for name, value in numbers.items():
        holders.setdefault(id(value), []).append(name)
    found: dict[str, list] = {name: [] for name in numbers}
    for check, args, kwargs in log:
        for name in {n for a in (*args, *kwargs.values()) for n in holders.get(id(a), ())}:
            value = numbers[name]
            found[name].append(
                (
                    check,
                    tuple(_GIVEN if a is value else a for a in args),
                    {k: _GIVEN if a is value else a for k, a in kwargs.items()},
                )
            )
    return {
        name: tuple(dict.fromkeys((c, a, tuple(k.items())) for c, a, k in checks))
        if checks and len(holders[id(numbers[name])]) == 1
        else None
        for name, checks in found.items()
    }


def _state_class(factory: Callable, validate: Callable) -> type:
    """A ``LiveState`` subclass for one factory: ``AdamLiveState`` for ``adam``. Its class knows
    how to check a value for ``set_hyperparam`` (the constructor's checks, by construction),
    and the type is the same for every optimizer this factory builds, so states compare."""
    words = "".join(c if c.isalnum() else " " for c in getattr(factory, "__name__", "live"))
    name = "".join(w[:1].upper() + w[1:] for w in words.split()) or "Live"
    return type(
        f"{name}LiveState",
        (LiveState,),
        {
            "__slots__": (),
            "__module__": __name__,
            "validate": staticmethod(validate),
            "optimizer": getattr(factory, "__name__", "live"),
        },
    )


def _make_live(
    factory: Callable,
    static: Iterable[str],
    only_floats: bool,
    dtype: Any,
    own_schedules: Iterable[str] = (),
) -> Callable[..., GradientTransformation]:
    static = frozenset(static) | ALWAYS_STATIC
    own_schedules = frozenset(own_schedules)
    signature = inspect.signature(factory)
    checked = _checks.names_arguments(factory)  # refusals under the user's argument names
    # per argument name: the checks the latest construction ran on it, to run on a new value
    checks_of: dict[str, tuple | None] = {}

    def rerun(**arguments: Any) -> None:
        for name, value in arguments.items():
            for check, args, kwargs in checks_of[name]:
                check(
                    *(value if a is _GIVEN else a for a in args),
                    **{k: value if a is _GIVEN else a for k, a in kwargs},
                )

    rerun.__signature__ = signature  # type: ignore[attr-defined]
    rerun.__name__ = getattr(factory, "__name__", "live")
    rerun_checked = _checks.names_arguments(rerun)  # the same messages as the constructor's

    def validate(name: str, value: Any, current: dict[str, Any]) -> None:
        """The constructor's checks on ``value`` for argument ``name``: those its latest
        construction ran on that argument, re-run alone; where they are not known, the
        factory is built with the other live values as they are now and the fixed
        arguments at their defaults."""
        if checks_of.get(name) is not None:
            rerun_checked(**{name: value})
            return
        try:
            with _building():
                checked(**{**current, name: value})
        except TypeError:  # a fixed argument without a default: the generic check only
            _checks.check_hyperparam(name, value)

    state_class = _state_class(factory, validate)

    @functools.wraps(factory)
    def build(*args: Any, **kwargs: Any) -> GradientTransformation:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{factory.__name__}(): {error}") from None
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        given = _sort_arguments(signature, arguments, static, only_floats, own_schedules)
        # built by inject_hyperparams for its inner state: the wrapper keeps the numbers and
        # hands them in at every step; this one uses them as given and records them
        driven = getattr(_builds, "driven", False) or _called_by_optax()
        _builds.driven = False
        if getattr(_builds, "depth", 0) and not given.schedules:
            # inside another live factory: that one keeps the numbers, this is its plain chain
            return checked(*bound.args, **bound.kwargs)
        store = dtype or hyperparam_dtype()

        def kept_as(name: str, value: Any) -> Any:
            if not _may_be_fractional(value, signature.parameters[name]):
                return jnp.int32  # an integer by default (a count): stays an integer
            strong = isinstance(value, jax.Array) and not getattr(value, "weak_type", True)
            if strong and dtype is None and not only_floats:
                return value.dtype  # Optax's rule: an array given with a dtype keeps it
            return store

        dtypes = {k: kept_as(k, v) for k, v in given.numbers.items()}
        for k, v in given.numbers.items():
            _checks.check_kept_in(k, v, dtypes[k])

        def start() -> tuple[dict[str, Any], dict[str, jax.Array]]:
            states = {k: _schedule_start(s) for k, s in given.schedules.items()}
            values = {
                k: _scheduled_value(k, s, states[k], jnp.zeros([], jnp.int32), store, {})
                for k, s in given.schedules.items()
            }
            return states, values

        # The constructor's checks, on the schedules' first values; what they check, recorded.
        outer_log, _checks.recording = _checks.recording, []
        try:
            example = _call(checked, signature, {**arguments, **start()[1]})
        finally:
            log, _checks.recording = _checks.recording, outer_log
            if outer_log is not None:
                outer_log.extend(log)
        checks_of.update(_recorded_checks(log, given.numbers))

        def init(params):
            states, values = start()
            inner = _call(factory, signature, {**arguments, **values})
            inner_state = inner.init(params)
            members = _member_names(inner)
            if len(built) >= 8:  # as the chain's own record: a few params trees at most
                built.clear()
            built.update({k: (members, v) for k, v in _expected_states(inner).items()})
            numbers = {k: jnp.asarray(v, dtypes[k]) for k, v in given.numbers.items()}
            return state_class(
                count=jnp.zeros([], jnp.int32) if given.schedules else None,
                hyperparams={**numbers, **values},
                scheduled=states,
                inner=inner_state,
            )

        def update(updates, state, params=None, **extra):
            names = {*given.numbers, *given.schedules}
            if (
                type(state) is not state_class
                or set(state.hyperparams) != names
                or set(state.scheduled) != set(given.schedules)
            ):
                found = type(state).__name__
                if isinstance(state, LiveState):
                    found += f" with hyperparameters {sorted(state.hyperparams)}"
                raise _checks.GradchainError(
                    f"this state does not belong to this optimizer: {factory.__name__} expects "
                    f"its {state_class.__name__} (hyperparameters {sorted(names)}), "
                    f"got {found} (was it built by another optimizer's init?)"
                )
            # a value traced when the optimizer was built, or handed in by an inject_hyperparams
            # (ours or Optax's), is live one level up: used as given
            numbers = {
                k: v
                if driven or isinstance(v, jax.core.Tracer)
                else jnp.asarray(state.hyperparams[k], dtypes[k])
                for k, v in given.numbers.items()
            }
            values = {
                k: _scheduled_value(k, s, state.scheduled[k], state.count, store, extra)
                for k, s in given.schedules.items()
            }
            states = {
                k: _schedule_next(s, state.scheduled[k], extra) for k, s in given.schedules.items()
            }
            inner = _call(factory, signature, {**given.fixed, **numbers, **values})
            _reuse(built, inner)
            updates, inner_state = inner.update(
                updates, state.inner, params, **_accepted(inner.update, extra)
            )
            kept = {k: jnp.asarray(v, dtypes[k]) for k, v in numbers.items()}
            count = increment(state.count) if given.schedules else None
            return updates, state_class(count, {**kept, **values}, states, inner_state)

        built: dict[Any, tuple] = {}  # what the inner chain's init built, per params

        transform = GradientTransformation(
            init,
            update,
            name=getattr(factory, "__name__", "live"),
            preprocessing=getattr(example, "preprocessing", False),
            children=(Child(None, example, ("inner",)),),
        )
        transform.hyperparameters = (*given.numbers, *given.schedules)
        return transform

    build.__wrapped__ = factory
    build.__signature__ = _shown_signature(factory, signature)
    build.live = True
    return build


def _shown_signature(factory: Callable, signature: inspect.Signature) -> inspect.Signature:
    """The factory's signature with its annotations as objects, not strings (a module with
    ``from __future__ import annotations`` keeps strings): code that inspects a factory, as
    Optax's tests do, finds ``learning_rate: ScalarOrSchedule`` itself."""
    try:
        return inspect.signature(factory, eval_str=True)
    except (NameError, TypeError, SyntaxError):  # a name only a type checker imports
        return signature


def live(
    factory: Callable[..., Any] | None = None,
    *,
    static: Iterable[str] = (),
    own_schedules: Iterable[str] = (),
) -> Any:
    """Decorator: make a factory's hyperparameters live, under its own argument names.

    ``factory`` is any function of hyperparameters returning a transform (a chain, a named
    optimizer, one transform). The decorated function takes the same arguments, checks them
    as the factory does, and returns a transform whose state is ``<Name>LiveState(count,
    hyperparams, scheduled, inner)`` (a ``LiveState``, e.g. ``AdamLiveState``): one 0-d array
    per live argument (see the module docstring for which are live), read with
    ``gradchain.get_hyperparams`` and set with ``gradchain.set_hyperparam``. A scheduled
    argument's value at the last step is in ``hyperparams`` too (read-only); ``scheduled``
    names those and holds each schedule's own state (``None`` for a function of the step).

    Setting a value re-runs the checks that the factory's latest construction ran on that
    argument (recorded then; the optimizer is not built again), with the constructor's
    message. Where none was recorded, or two arguments held the very same object, the factory
    is built with the new value instead. A check a factory makes on a value derived from the
    argument (``1 - b1``) is not recorded.

    Args:   static -- argument names that are never live (besides ``mask``): shapes, counts,
            choices that change the program.
            own_schedules -- arguments whose schedule the factory reads itself (it needs
            more than this step's value, e.g. the next step's): a function given for one is
            passed through as it is; a number given for one is still live.
    A named optimizer called inside the factory is built as its plain chain (see "Live
    inside live" in the module docstring): ``adamw(learning_rate)`` there, no
    ``adamw.__wrapped__`` needed. The undecorated factory stays reachable as
    ``decorated.__wrapped__``.

    >>> import gradchain
    >>> opt = gradchain.live(lambda learning_rate: gradchain.scale_by_learning_rate(learning_rate))(0.1)
    >>> sorted(gradchain.get_hyperparams(opt.init(1.0)))
    ['learning_rate']
    """
    if factory is None:
        return functools.partial(live, static=static, own_schedules=own_schedules)
    factory = (
        getattr(factory, "__wrapped__", factory) if getattr(factory, "live", False) else factory
    )
    return _make_live(factory, static, only_floats=True, dtype=None, own_schedules=own_schedules)


def _called_by_optax() -> bool:
    """Whether the live factory's caller is Optax's own code: its ``inject_hyperparams``
    calls the factory at every step with the values in its state, jitted or not, so those
    are the ones to use (as under jit, where they arrive traced)."""
    caller = sys._getframe(2)  # 0: here, 1: the live factory, 2: who called it
    return caller.f_globals.get("__name__", "").startswith("optax.")


def _driven(live_factory: Callable[..., Any]) -> Callable[..., Any]:
    """``live_factory`` (a named optimizer) built as itself, not as its plain chain, with
    the values it is given used as given at every step: the optimizer that an
    ``inject_hyperparams`` wraps, so the wrapper's ``inner_state`` is what that optimizer's
    own ``init`` gives (Optax's layout), and the wrapper's numbers are the ones used."""

    def build(*args: Any, **kwargs: Any) -> Any:
        saved = getattr(_builds, "depth", 0), getattr(_builds, "driven", False)
        _builds.depth, _builds.driven = 0, True
        try:
            return live_factory(*args, **kwargs)
        finally:
            _builds.depth, _builds.driven = saved

    build.__signature__ = inspect.signature(live_factory)  # type: ignore[attr-defined]
    build.__name__ = getattr(live_factory, "__name__", "live")
    return build


def inject_hyperparams(
    inner_factory: Callable[..., Any],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., GradientTransformation]:
    """Optax's ``inject_hyperparams``, for people coming from Optax: every numeric argument
    (integers included) and every callable of ``inner_factory`` is live -- a callable is a
    schedule, called with the step count (or an Optax ``StatefulSchedule``, given the extra
    arguments) -- except the names in ``static_args`` (a name ``inner_factory`` does not take
    is refused). The factory is called with the values, a schedule's evaluated for the step;
    ``state.hyperparams`` holds them all, the scheduled ones as of the last step, as in Optax.
    Values are kept in ``hyperparam_dtype``; by default float32 (float64 under x64), not the
    params' dtype as in Optax (in bfloat16, ``b2 = 0.999`` would be 1.0), except an array
    given with a dtype of its own, which keeps it, as in Optax. An integer for an argument
    whose default is an integer stays int32. The state is gradchain's ``LiveState``, which
    ``InjectHyperparamsState`` names here; it reads as Optax's (``hyperparams``,
    ``inner_state``, ``hyperparams_states``), and ``count`` is kept only with schedules.
    Wrapping a named optimizer, ``inner_state`` is that optimizer's own state, as in Optax:
    it records the wrapper's values at each step (for reading; ``get_hyperparams`` lists the
    wrapper's, and ``set_hyperparam`` sets the wrapper's).
    ``gradchain.live`` is the same with the named optimizers' rule for integers.
    """
    if isinstance(static_args, str):
        static_args = (static_args,)
    named = inner_factory.func if isinstance(inner_factory, functools.partial) else inner_factory
    if getattr(named, "live", False):  # a named optimizer, or one with arguments bound
        inner_factory = _driven(inner_factory)
    known = inspect.signature(inner_factory).parameters
    unknown = sorted(set(static_args) - set(known))
    if unknown:
        raise _checks.GradchainError(
            f"static_args names {unknown}, which {getattr(inner_factory, '__name__', 'the factory')} "
            f"does not take; its arguments are {list(known)}"
        )
    return _make_live(inner_factory, static_args, only_floats=False, dtype=hyperparam_dtype)
