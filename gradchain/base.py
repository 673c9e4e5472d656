"""The protocol: a transform is a pair of pure functions, and ``chain`` composes them.

Optax-compatible: ``init(params) -> state`` and ``update(updates, state, params=None, **extra)
-> (updates, new_state)``. A gradchain transform works inside ``optax.chain`` and an Optax
transform works inside ``gradchain.chain``.

The one addition to Optax's protocol is the ``gradient`` keyword. Some transforms need the
gradient itself while they act on a running update that is no longer a gradient: Adam's
``scale_by_rms`` builds its second moment from ``g**2`` but divides the bias-corrected
momentum that reaches it. ``chain`` hands every member the gradient in that keyword (see
``chain`` for exactly which gradient). The transforms that need it (``reads_gradient``: the
second moments, and the wrappers and chains holding them) read it as ``updates if gradient is
None else gradient`` -- so used alone, or inside ``optax.chain``, the gradient is simply what
it receives; the others ignore it. Which gradient depends on what each member declares:
``preprocessing`` (see ``GradientTransformation`` and ``chain``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks

__all__ = [
    "Child",
    "LearningRate",
    "OptState",
    "ParamsMark",
    "Params",
    "ScalarOrSchedule",
    "Schedule",
    "TransformInitFn",
    "TransformUpdateExtraArgsFn",
    "TransformUpdateFn",
    "Updates",
    "EmptyState",
    "GradientTransformation",
    "GradientTransformationExtraArgs",
    "Visit",
    "apply_updates",
    "at_route",
    "chain",
    "describe",
    "hyperparam_dtype",
    "all_preprocessing",
    "identity",
    "init_empty_state",
    "is_preprocessing",
    "reads_gradient_keyword",
    "stateless",
    "stateless_with_tree_map",
    "tree_map_split",
    "tree_zeros_like",
    "updater",
    "walk",
    "with_extra_args_support",
]

Params = Any
Updates = Any
State = Any
OptState = Any
Schedule = Callable[[jax.Array], jax.Array]
ScalarOrSchedule = float | jax.Array | Schedule
LearningRate = ScalarOrSchedule  # a number, or a schedule: a function of the step count
TransformInitFn = Callable[[Params], OptState]  # Optax's names for the two halves
TransformUpdateFn = Callable[..., tuple[Updates, OptState]]
TransformUpdateExtraArgsFn = TransformUpdateFn  # every gradchain update takes **extra


class _Pair(NamedTuple):
    init: Callable[..., State]
    update: Callable[..., tuple[Updates, State]]


class Child(NamedTuple):
    """A transform held inside another, and where its state lives in the holder's state.

    label:  the user's name for it (a parameter group's label), or None for a part the user
            did not name (a chain member, a wrapper's inner transform): None adds no segment
            to the paths that ``gradchain.slots``, the memory report and ``explain`` print.
    transform: the inner transform.
    route:  the keys from the holder's state to the inner state, e.g. ``(2,)`` for a chain's
            third member, ``("inner",)``, ``("groups", "backbone")``.
    """

    label: str | None
    transform: Any
    route: tuple[Any, ...]


class GradientTransformation(_Pair):
    """A pair ``(init, update)`` of pure functions, plus what gradchain knows about it.

    It unpacks and indexes as Optax's ``(init, update)`` tuple. The extra attributes are
    read by ``chain``, the memory report and ``explain``, never inside a traced step:

    - ``name``: the factory that built it (``"scale_by_rms"``, ``"adam"``).
    - ``preprocessing``: does its output still count as a gradient? True for a gradient
      filter (clipping, noise, an EMA filter, a variance-reduction correction, L2 decay);
      False for a direction (momentum, a preconditioner, the learning rate); None when not
      declared. ``chain`` refuses an undeclared transform where the answer matters: see
      ``chain``. Every gradchain transform declares it.
    - ``reads_gradient``: whether its update reads the ``gradient`` keyword. Inferred: True
      when ``update`` names a ``gradient`` parameter, or (for a wrapper or chain) when
      anything it holds reads it; pass it to say so for an update that reads
      ``extra["gradient"]``.
    - ``members``: for a chain, the transforms it is made of (flat).
    - ``children``: the transforms it holds, each a ``Child`` saying where its state lives;
      ``walk`` follows them. A chain's children are its members.
    """

    def __new__(
        cls,
        init: Callable[..., State],
        update: Callable[..., tuple[Updates, State]],
        *,
        name: str = "transform",
        preprocessing: bool | None = None,
        reads_gradient: bool | None = None,
        members: tuple[Any, ...] = (),
        children: tuple[Child, ...] = (),
    ):
        if not (callable(init) and callable(update)):
            raise TypeError(
                "GradientTransformation(init, update) takes two functions, got "
                f"{type(init).__name__} and {type(update).__name__}"
            )
        if preprocessing not in (None, True, False):
            raise TypeError(f"preprocessing must be True, False or None, got {preprocessing!r}")
        if not (members or children):  # a chain or a wrapper passes its own gradient on
            update = _with_gradient_default(update)
        self = super().__new__(cls, init, update)
        self.name = name
        self.preprocessing = preprocessing
        self.members = members
        self.children = children or tuple(Child(None, m, (i,)) for i, m in enumerate(members))
        if reads_gradient is None:
            reads_gradient = _names_gradient(self.update) if not self.children else any(
                reads_gradient_keyword(c.transform) for c in self.children
            )
        self.reads_gradient = bool(reads_gradient)
        return self

    def __repr__(self) -> str:
        if self.members:
            return f"chain({', '.join(_name_of(t) for t in self.members)})"
        if self.children:  # a wrapper or a live optimizer: what it holds
            held = ", ".join(
                repr(c.transform) if c.label is None else f"{c.label}={c.transform!r}"
                for c in self.children
            )
            return f"{self.name}({held})"
        return f"<{self.name}>"


# Optax splits transforms whose update takes extra keyword arguments into their own class.
# Every gradchain transform's update already takes ``**extra`` (and ignores what it does not
# use), so the name is the same class: ``isinstance(gradchain.adam(1e-3),
# GradientTransformationExtraArgs)`` is True, and ``GradientTransformationExtraArgs(init,
# update)`` builds a ``GradientTransformation``. An Optax transform is not an instance of it.
GradientTransformationExtraArgs = GradientTransformation


class Visit(NamedTuple):
    """One transform met by ``walk``: its ``labels`` (the user's names on the way down), the
    ``transform``, its ``route`` in the root state, and its ``depth`` (0 at the root)."""

    labels: tuple[str, ...]
    transform: Any
    route: tuple[Any, ...]
    depth: int


def walk(transform: Any, labels: tuple[str, ...] = (), route: tuple[Any, ...] = (), depth=0):
    """Every transform in ``transform``'s tree, depth first, the holder before what it holds.

    The one way gradchain walks a transform tree: it follows ``children`` (see ``Child``), so
    a transform from another library, which declares none, is a leaf.
    """
    yield Visit(labels, transform, route, depth)
    for child in getattr(transform, "children", ()):
        inner_labels = labels if child.label is None else (*labels, child.label)
        yield from walk(child.transform, inner_labels, (*route, *child.route), depth + 1)


def at_route(state: Any, route: tuple[Any, ...]) -> Any:
    """The part of ``state`` at ``route`` (keys or indices, or NamedTuple field names)."""
    for key in route:
        state = getattr(state, key) if isinstance(key, str) and hasattr(state, "_fields") else state[key]
    return state


def _name_of(transform: Any) -> str:
    return getattr(transform, "name", None) or type(transform).__name__


def _names_gradient(update: Callable) -> bool:
    try:
        return "gradient" in inspect.signature(update).parameters
    except (TypeError, ValueError):
        return False


def _takes_third_positional(update: Callable) -> bool:
    """Whether ``update`` has a place for ``params`` after ``updates, state``."""
    try:
        parameters = list(inspect.signature(update).parameters.values())
    except (TypeError, ValueError):
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3 or any(p.kind is p.VAR_POSITIONAL for p in parameters)


def _with_gradient_default(update: Callable) -> Callable:
    """``update``, called with ``gradient=updates`` when no caller passed one.

    ``chain`` always passes the gradient; ``optax.chain`` and a bare call do not. So a
    transform that reads ``extra["gradient"]`` works anywhere, and reads what reaches it where
    nobody says otherwise -- as an Optax transform does.
    """
    if _names_gradient(update) or not _accepts_extra_args(update):
        return update  # it reads ``gradient=None`` as "the updates" itself, or reads none

    takes_params = _takes_third_positional(update)

    @functools.wraps(update)
    def update_with_gradient(updates, state, params=None, **extra):
        if extra.get("gradient") is None:
            extra["gradient"] = updates
        if params is None and not takes_params:  # update(updates, state, **extra): Optax allows it
            return update(updates, state, **extra)
        return update(updates, state, params, **extra)

    return update_with_gradient


def is_preprocessing(transform: Any) -> bool | None:
    """Whether ``transform``'s output is still a gradient: its declaration (None if it made
    none). A transform from another library counts as pre-processing (see ``chain``)."""
    return getattr(transform, "preprocessing", True)


def all_preprocessing(transforms: Any) -> bool | None:
    """Whether a transform made of ``transforms`` pre-processes: False if one of them is a
    direction, None if one is undeclared, True if all are filters."""
    marks = [is_preprocessing(t) for t in transforms]
    return False if False in marks else (None if None in marks else True)


def reads_gradient_keyword(transform: Any) -> bool:
    """Whether ``transform`` (or anything it holds) reads the ``gradient`` keyword."""
    return bool(getattr(transform, "reads_gradient", False))


def describe(**meanings: str):
    """Class decorator for a state NamedTuple: one line of meaning for every field (slot).

    The memory report and ``gradchain.slots`` read ``State.meanings``; the decorator refuses a
    state whose fields and meanings disagree, so the documentation cannot drift.
    """

    def decorate(cls):
        if set(meanings) != set(cls._fields):
            raise TypeError(
                f"{cls.__name__}: meanings for {sorted(meanings)} but fields {cls._fields}"
            )
        cls.meanings = dict(meanings)
        return cls

    return decorate


@describe()
class EmptyState(NamedTuple):
    """The state of a stateless transform."""


def hyperparam_dtype() -> jnp.dtype:
    """The dtype hyperparameters are kept in as arrays: float64 under x64, else float32 --
    never the params' dtype, where b2 = 0.999 would round to 1.0 in bfloat16."""
    return jnp.dtype(jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)


def tree_map_split(fn: Callable[..., tuple], n: int, tree: Any, *rest: Any) -> tuple[Any, ...]:
    """Map ``fn`` (returning an n-tuple per leaf) over trees shaped like ``tree``; return n
    trees. Transforms use it to compute the update and the new moment in one pass per leaf."""
    leaves, treedef = jax.tree.flatten(tree)
    rest_leaves = [treedef.flatten_up_to(r) for r in rest]
    outs = [fn(*xs) for xs in zip(leaves, *rest_leaves)]
    columns = list(zip(*outs)) if outs else [()] * n
    return tuple(treedef.unflatten(list(col)) for col in columns)


def tree_zeros_like(tree: Any, dtype: Any = None) -> Any:
    """Zeros shaped like ``tree``. Each leaf gets its own buffer: donation and sharded
    placement fail (or crash) when two state leaves alias one array."""
    return jax.tree.map(lambda x: jnp.zeros_like(x, dtype or jnp.result_type(x)), tree)


# --- composition -------------------------------------------------------------------------


def _accepts_extra_args(update: Callable) -> bool:
    try:
        params = inspect.signature(update).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def updater(transform: Any) -> Callable[..., tuple[Updates, State]]:
    """``transform.update`` as a function of ``(updates, state, params, gradient, extra)``
    that gives it what it takes: gradchain's transforms get the ``gradient`` keyword and the
    extra arguments; a foreign one gets exactly what ``optax.chain`` would give it (the extra
    arguments if its update takes ``**kwargs``, never ``gradient``; nothing otherwise)."""
    update = transform.update
    if not _accepts_extra_args(update):
        return lambda u, s, p, gradient, extra: update(u, s, p)
    if isinstance(transform, GradientTransformation):
        return lambda u, s, p, gradient, extra: update(u, s, p, gradient=gradient, **extra)
    return lambda u, s, p, gradient, extra: update(u, s, p, **extra)


def _as_transform(t: Any) -> Any:
    if not (hasattr(t, "init") and hasattr(t, "update")):
        raise _checks.GradchainError(
            f"chain() takes gradient transformations (objects with init and update), got {t!r}"
        )
    return t


def chain(*transforms: Any) -> GradientTransformation:
    """Compose transforms: each one's output update is the next one's input.

    State:   a flat tuple with one entry per transform. Nested gradchain chains are flattened
             at construction, so ``chain(a, chain(b, c))`` *is* ``chain(a, b, c)``: the same
             state, the same updates -- composition is associative, exactly.

    Which gradient a member reads (the ``gradient`` keyword). A transform is *pre-processing*
    when its output is still a gradient, and says so: ``preprocessing=True`` (``clip``,
    ``clip_by_global_norm``, ``add_decayed_weights``, ``scale``, ``add_noise``, ``identity``,
    a user's gradient filter), ``preprocessing=False`` (momentum, preconditioners, the
    learning rate, a user's direction). A transform from another library counts as
    pre-processing. The gradient every member sees is the output of the chain's *leading
    run* of pre-processing transforms. So in

        chain(clip_by_global_norm(1.0), add_decayed_weights(1e-4),   # gradient := this
              scale_by_momentum(0.9, ema=True), bias_correct(0.9),
              scale_by_rms(0.999, 1e-8, bias_correction=True), scale_by_learning_rate(1e-3))

    the second moment is built from the clipped, L2-decayed gradient -- exactly Optax's
    ``chain(clip_by_global_norm(1.0), add_decayed_weights(1e-4), adam(1e-3))`` -- while
    ``add_decayed_weights`` placed after ``scale_by_rms`` is AdamW's decoupled decay.
    A gradchain chain that is called with ``gradient`` by an enclosing wrapper (masks,
    parameter groups) reads that gradient throughout.

    Refused at construction (``GradchainError`` naming the member and what to declare): a
    ``GradientTransformation`` built without ``preprocessing`` standing in the leading run in
    front of a member that reads the gradient (``reads_gradient``) -- whether that member
    should see the gradient before or after it is exactly what it did not say.

    A foreign transform receives exactly what ``optax.chain`` would give it: the extra
    keyword arguments if its ``update`` accepts ``**kwargs`` (never ``gradient``), nothing
    otherwise. Ours always take them, and ignore the ones they do not use.

    Checks (trace time only, ``GradchainError`` naming the leaf): ``init`` refuses integer,
    boolean and non-array leaves; ``update`` refuses such gradients, gradients whose tree or
    shapes differ from the params (no silent broadcast), complex gradients for real params,
    and a state that ``init`` would not have built for these params -- another optimizer's,
    or one built for another params tree (NamedTuple types, tree and leaf shapes are
    compared with ``jax.eval_shape(init, params)``, cached per tree signature). Inside
    ``shard_map``, on params that are shards, a member whose init refuses a shard (its state
    needs the whole shape, e.g. Adafactor's factored statistics) is not checked.
    """
    flat: list[Any] = []
    for t in transforms:
        t = _as_transform(t)
        flat.extend(t.members if getattr(t, "members", ()) else (t,))
    members = tuple(flat)
    calls = tuple(updater(t) for t in members)

    def init(params):
        _checks.check_float_leaves("params", params)
        states = tuple(t.init(params) for t in members)
        _remember(expected_states, _signature(params), [_shapes_of(s) for s in states])
        return states

    def update(updates, state, params=None, *, gradient=None, **extra):
        if not isinstance(state, tuple) or len(state) != len(members):
            found = len(state) if isinstance(state, tuple) else type(state).__name__
            raise _checks.GradchainError(
                f"this state does not belong to this optimizer: {chain_repr} expects a tuple of "
                f"{len(members)} member states, got {found}"
            )
        updates, params, gradient = map(
            _checks.python_numbers_as_arrays, (updates, params, gradient)
        )
        _check_inputs(members, updates, state, params, gradient, expected_states)
        new_state = []
        for t, s, call in zip(members, state, calls):
            incoming = updates
            updates, s = call(updates, s, params, gradient, extra)
            if gradient is None and not is_preprocessing(t):
                gradient = incoming  # the leading pre-processing run ends here
            new_state.append(s)
        return updates, tuple(new_state)

    _check_gradient_rule(members)
    result = GradientTransformation(
        init,
        update,
        name="chain",
        preprocessing=all_preprocessing(members),
        members=members,
    )
    chain_repr = repr(result)
    expected_states: dict[Any, list[Any]] = {}
    result.expected_states = expected_states  # what init built, per params signature
    return result


def _check_gradient_rule(members: tuple[Any, ...]) -> None:
    """Refuse an undeclared transform in the chain's leading run when a later member reads
    the gradient: whether that member sees the gradient before or after it depends on the
    declaration, and guessing would give a quietly different answer (a ``nu`` built from
    the raw gradient while ``mu`` sees the filtered one, or the other way round)."""
    for i, t in enumerate(members):
        mark = is_preprocessing(t)
        if mark is False:
            return  # the leading run ends before any undeclared member
        if mark is None:
            readers = [_name_of(r) for r in members[i + 1 :] if reads_gradient_keyword(r)]
            if readers:
                raise _checks.GradchainError(
                    f"chain: member {i} ({_name_of(t)}) does not say whether its output is "
                    f"still a gradient, and {', '.join(readers)} after it reads the gradient. "
                    "Declare it: GradientTransformation(init, update, preprocessing=True) for "
                    "a gradient filter (clipping, noise, an EMA filter, a variance-reduction "
                    "correction: the members after it then see its output as the gradient), "
                    "or preprocessing=False for a direction (momentum, a preconditioner: they "
                    "then see the gradient that entered it)"
                )


def _check_inputs(members, updates, state, params, gradient, cache) -> None:
    """Trace-time checks of a chain's inputs; nothing of this reaches the compiled step.

    Refuses integer/boolean gradients, gradients shaped unlike the params, and a state that
    ``init`` would not have built for these params (another optimizer's, or another tree's).
    The expected state comes from ``jax.eval_shape(init, ...)``, cached per tree signature.
    """
    _checks.check_float_leaves("updates", updates)
    # A first member that takes per-example gradients (differentially_private_aggregate):
    # the updates carry a batch axis the params lack; its own update checks them.
    per_example = bool(members) and getattr(members[0], "per_example", False)
    if per_example and params is None:
        return  # no params to build the expected state from: the updates are batched
    if params is not None and not per_example:
        _checks.check_same_structure("updates", updates, "params", params)
        _checks.check_update_dtypes(params, updates)
    if gradient is not None and not per_example:
        _checks.check_same_structure("gradient", gradient, "updates", updates)
    like = updates if params is None else params
    key = _signature(like)
    if key not in cache:
        _remember(cache, key, [_abstract_init(t, like, key[-1]) for t in members])
    for i, (t, expected, given) in enumerate(zip(members, cache[key], state)):
        if expected is not None:
            _checks.check_state(i, _name_of(t), expected, given)


def _signature(like: Any) -> tuple:
    """The key under which a chain remembers the state its init builds for ``like``: the tree,
    each leaf's shape and dtype, and whether the leaves are shards inside ``shard_map``."""
    leaves, treedef = jax.tree.flatten(like)
    # Inside shard_map a leaf may be this device's shard of its parameter, and the state was
    # made outside from the whole params: a member whose init needs the whole shape (Adafactor's
    # factored statistics: which axes, divided by what) refuses to run on a shard, so its
    # state cannot be rebuilt here, and is not checked. The other members are checked as usual
    # (a moment laid out like its parameter is a shard of the same shape).
    on_shards = any(_varies_over_a_mesh_axis(x) for x in leaves)
    return (treedef, tuple((jnp.shape(x), jnp.result_type(x)) for x in leaves), on_shards)


def _remember(cache: dict, key: tuple, expected: list[Any]) -> None:
    if len(cache) >= 8:
        cache.clear()
    cache[key] = expected


def _shapes_of(state: Any) -> Any:
    """A state as shapes and dtypes: what ``jax.eval_shape(init, params)`` would give."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), state)


def _abstract_init(transform: Any, params: Any, on_shards: bool = False) -> Any:
    """What ``transform.init(params)`` returns, as shapes and dtypes, or None if unknown
    (``on_shards``: params that are shards inside shard_map, which the init may refuse)."""
    try:
        return jax.eval_shape(transform.init, params)
    except _checks.GradchainError:
        if on_shards:
            return None  # an init that refuses a shard: its state was made from whole params
        raise
    except Exception:  # noqa: BLE001 - a foreign init that cannot run abstractly
        return None  # is not checked here; its own update still runs on the state


def _varies_over_a_mesh_axis(x: Any) -> bool:
    """Whether ``x`` differs from device to device inside ``shard_map`` (read from its abstract
    value, as ``gradchain.transforms.mesh_axes.varying_axes`` does; False outside)."""
    aval = jax.typeof(x)
    manual = getattr(aval, "manual_axis_type", None)
    return bool(getattr(manual, "varying", ()) if manual is not None else getattr(aval, "vma", ()))


def identity() -> GradientTransformation:
    """Pass updates through unchanged.

    Update:     u <- u
    State:      none.   Memory: 0.
    """

    def init(params):
        del params
        return EmptyState()

    def update(updates, state, params=None, **extra):
        del params, extra
        return updates, state

    return GradientTransformation(init, update, name="identity", preprocessing=True)


@jax.tree_util.register_pytree_node_class
class ParamsMark:
    """Stands for the whole params tree while ``tree_map_params`` runs an optimizer's ``init``:
    an empty pytree node, so every per-parameter slot of the state comes out as this mark.
    A wrapper that reshapes the params (``masked``, ``partition``) passes it to its inner
    transforms unchanged (Optax's ``_ParamsPlaceholder``)."""

    def tree_flatten(self):
        return (), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls()


def init_empty_state(params: Params) -> EmptyState:
    """The ``init`` of a stateless transform: ``EmptyState()`` whatever the params."""
    del params
    return EmptyState()


def stateless(f: Callable[[Updates, Params | None], Updates]) -> GradientTransformation:
    """A transform without state whose update is ``f(updates, params)`` (params may be None).

    Update:     u <- f(u, p)
    State:      none.   Memory: 0.
    """

    def update(updates, state, params=None, **extra):
        del state, extra
        return f(updates, params), EmptyState()

    return GradientTransformation(init_empty_state, update, name="stateless")


def stateless_with_tree_map(f: Callable[[Any, Any], Any]) -> GradientTransformation:
    """A transform without state that maps ``f(u_leaf, p_leaf)`` over the leaves
    (``f(u_leaf, None)`` when no params are given).

    Update:     u_i <- f(u_i, p_i)
    State:      none.   Memory: 0.
    """

    def update(updates, state, params=None, **extra):
        del state, extra
        if params is None:
            return jax.tree.map(lambda u: f(u, None), updates), EmptyState()
        return jax.tree.map(f, updates, params), EmptyState()

    return GradientTransformation(init_empty_state, update, name="stateless_with_tree_map")


def with_extra_args_support(transform: Any) -> GradientTransformation:
    """``transform`` with an update that accepts (and drops) keyword arguments it does not
    take. A gradchain transform already accepts them and is returned as it is; an Optax
    ``GradientTransformation`` is wrapped (Optax's function of the same name)."""
    inner = _as_transform(transform)
    if isinstance(inner, GradientTransformation) and _accepts_extra_args(inner.update):
        return inner
    call = updater(inner)

    def update(updates, state, params=None, *, gradient=None, **extra):
        return call(updates, state, params, gradient, extra)

    return GradientTransformation(inner.init, update, name=_name_of(inner))


def apply_updates(params: Params, updates: Updates) -> Params:
    """``params + updates``, leaf by leaf, keeping each parameter's dtype.

    The sum is computed in the wider of the two dtypes and cast back, so a float32 update
    applied to bfloat16 params rounds once. ``None`` leaves stay ``None``.
    Refused (``GradchainError``, naming the leaf): trees of different structure or shapes
    (never a broadcast), a complex update for a real parameter, a floating update for an
    integer parameter. A ``None`` parameter stays ``None`` whatever its update (Optax's
    rule). A ``float0`` update (``jax.grad(..., allow_int=True)``) leaves its
    parameter unchanged.
    """
    updates = _checks.none_covers(params, updates)  # a None parameter: nothing to update
    _checks.check_same_structure("params", params, "updates", updates)
    _checks.check_update_dtypes(params, updates)

    def add(p, u):
        if p is None:
            return None
        if jnp.result_type(u) == jax.dtypes.float0:
            return p  # the "gradient" of an integer leaf: no change
        with jax.numpy_dtype_promotion("standard"):  # our choice, made at trace time
            wide = jnp.promote_types(jnp.result_type(p), jnp.result_type(u))
        return (jnp.asarray(p, wide) + jnp.asarray(u, wide)).astype(jnp.result_type(p))

    return jax.tree.map(add, params, updates, is_leaf=lambda x: x is None)
