"""What memory each transform adds: the memory report (``memory_report``) and ``compare``.

Everything here is computed from shapes and dtypes only (``jax.eval_shape`` of ``init``), so
it works for a 70-billion-parameter model described by ``jax.ShapeDtypeStruct`` leaves
without allocating a byte of it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain import _checks, base
from gradchain import state as state_lib
from gradchain.text_table import format_table

__all__ = [
    "Comparison",
    "abstract_params",
    "MemoryReport",
    "Row",
    "compare",
    "memory_report",
]

# Kinds of a slot, by how its leaves relate to the parameter they belong to.
PER_PARAMETER_KINDS = ("same shape", "reduced", "quantized", "larger")


class Row(NamedTuple):
    """One slot of one transform's state.

    transform: the member of the chain that owns it (``scale_by_rms``); for a transform
               without a gradchain name (Optax), its state's type name; inside a wrapper,
               ``wrapper/InnerState``.
    slot:      the field name (``nu``); ``-`` for a transform that keeps no state.
    path:      where it lives in the state (see ``gradchain.slots``).
    kind:      per parameter -- ``same shape`` (1x), ``reduced`` (fewer elements than its
               parameter: factored row/column statistics), ``quantized`` (integer codes plus
               scales under each parameter), ``larger``, or ``mixed: ...`` when leaves
               differ; otherwise ``scalar`` (a step count), ``hyperparameter``, ``other``
               (arrays not laid out like the params), or ``stateless``.
    dtype:     the leaves' dtypes, e.g. ``float32`` or ``bfloat16/float32``.
    elements, bytes: summed over the slot's leaves.
    multiple:  elements / parameter elements.
    meaning:   its one-line meaning (``gradchain.describe``), ``""`` when unknown.
    """

    transform: str
    slot: str
    path: str
    kind: str
    dtype: str
    elements: int
    bytes: int
    multiple: float
    meaning: str

    @property
    def per_parameter(self) -> bool:
        return self.kind in PER_PARAMETER_KINDS or self.kind.startswith("mixed")


@dataclasses.dataclass(frozen=True)
class MemoryReport:
    """The optimizer state's memory, slot by slot. ``str()`` gives a table.

    Per-parameter slots (``mu``, ``nu``, factored or quantized statistics) grow with the
    model; scalars (step counts, live hyperparameters) do not, so they are reported in their
    own rows and total and left out of ``params_multiple``:

        params_multiple = elements of per-parameter slots / parameter elements
                        = 0 for SGD, 1 for momentum and Lion, 2 for Adam, 3 for AMSGrad.

    ``bytes_multiple`` is the same ratio in bytes: 1 for Adam with bfloat16 moments and
    float32 params, about 0.5 for 8-bit Adam.
    """

    optimizer: str
    rows: tuple[Row, ...]
    param_elements: int
    param_bytes: int
    param_leaves: int
    param_dtypes: str

    @property
    def total_bytes(self) -> int:
        return sum(r.bytes for r in self.rows)

    @property
    def per_parameter_bytes(self) -> int:
        return sum(r.bytes for r in self.rows if r.per_parameter)

    @property
    def per_parameter_elements(self) -> int:
        return sum(r.elements for r in self.rows if r.per_parameter)

    @property
    def scalar_bytes(self) -> int:
        return sum(r.bytes for r in self.rows if r.kind in ("scalar", "hyperparameter"))

    @property
    def params_multiple(self) -> float:
        return _ratio(self.per_parameter_elements, self.param_elements)

    @property
    def bytes_multiple(self) -> float:
        return _ratio(self.per_parameter_bytes, self.param_bytes)

    def __str__(self) -> str:
        head = (
            f"Memory of {self.optimizer}\n"
            f"for {self.param_elements:,} parameters in {self.param_leaves} "
            f"{'leaf' if self.param_leaves == 1 else 'leaves'} "
            f"({self.param_dtypes}, {format_bytes(self.param_bytes)})\n"
        )
        main = [r for r in self.rows if r.kind not in ("scalar", "hyperparameter")]
        table = format_table(
            ["transform", "slot", "kind", "dtype", "elements", "bytes", "x params", "meaning"],
            [
                [
                    r.transform,
                    r.slot,
                    r.kind,
                    r.dtype,
                    f"{r.elements:,}",
                    format_bytes(r.bytes),
                    f"{r.multiple:.3g}",
                    r.meaning,
                ]
                for r in main
            ],
            right=(4, 5, 6),
            ruled=False,
        )
        scalars: dict[str, list[Row]] = {}
        for r in self.rows:
            if r.kind in ("scalar", "hyperparameter"):
                scalars.setdefault(r.transform, []).append(r)
        small = format_table(
            ["transform", "scalars", "bytes"],
            [
                [t, ", ".join(r.slot for r in rs), format_bytes(sum(r.bytes for r in rs))]
                for t, rs in scalars.items()
            ],
            right=(2,),
            ruled=False,
        )
        return (
            f"{head}\n{table}\n\nScalars (step counts, live hyperparameters; "
            f"not counted in x params):\n{small}\n\n"
            f"per-parameter state: {self.per_parameter_elements:,} elements = "
            f"{self.params_multiple:.3g}x params, {format_bytes(self.per_parameter_bytes)} "
            f"= {self.bytes_multiple:.3g}x the params' bytes\n"
            f"scalars: {format_bytes(self.scalar_bytes)}\n"
            f"total: {self.total_bytes:,} bytes ({format_bytes(self.total_bytes)})"
        )


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def format_bytes(n: int) -> str:
    """Bytes in decimal units: ``36 B``, ``4.00 MB``, ``280.00 GB``."""
    if n < 1000:
        return f"{n} B"
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        n /= 1000
        if n < 1000 or unit == "PB":
            return f"{n:.2f} {unit}"
    raise AssertionError("unreachable")


# --- the report -------------------------------------------------------------------------


def abstract_params(params: Any) -> Any:
    """``params`` as ``jax.ShapeDtypeStruct`` leaves (shapes and dtypes only; nothing is
    allocated), refusing leaves that are neither arrays nor numbers."""
    def leaf(x):
        if not (hasattr(x, "shape") and hasattr(x, "dtype")) and not isinstance(x, (int, float)):
            raise _checks.GradchainError(
                f"memory_report needs params made of arrays or jax.ShapeDtypeStruct, "
                f"got a leaf of type {type(x).__name__}"
            )
        dtype = x.dtype if hasattr(x, "dtype") else jnp.result_type(x)
        return jax.ShapeDtypeStruct(np.shape(x), dtype)

    return jax.tree.map(leaf, params)


def _size(x: Any) -> int:
    return math.prod(x.shape)


def _nbytes(x: Any) -> int:
    return _size(x) * np.dtype(x.dtype).itemsize


def _leaf_kind(p: Any, sub: Any) -> str | None:
    leaves = jax.tree.leaves(sub)
    if not leaves:
        return None
    if len(leaves) == 1 and leaves[0].shape == p.shape:
        return "same shape"
    if any(np.issubdtype(np.dtype(x.dtype), np.integer) for x in leaves):
        return "quantized"
    size = sum(_size(x) for x in leaves)
    return "reduced" if size < _size(p) else "larger"


def _kind(slot: state_lib.Slot, param_leaves: list[Any], param_def: Any) -> str:
    if slot.hyperparameter:
        return "hyperparameter"
    leaves = jax.tree.leaves(slot.value)
    try:
        subtrees = param_def.flatten_up_to(slot.value)
    except (ValueError, TypeError):
        subtrees = None
    if all(x.shape == () for x in leaves):
        integer = any(np.issubdtype(np.dtype(x.dtype), np.integer) for x in leaves)
        one_array = len(param_leaves) == 1 and param_leaves[0].shape != ()
        if subtrees is None or integer or one_array:
            return "scalar"
    if subtrees is None:
        return "other"
    kinds = {_leaf_kind(p, s) for p, s in zip(param_leaves, subtrees)} - {None}
    if len(kinds) == 1:
        return kinds.pop()
    return "mixed: " + ", ".join(sorted(kinds))


def _owners(optimizer: Any, state: Any) -> list[tuple[base.Visit, Any]]:
    """Every transform of ``optimizer``'s tree (``base.walk``) with its part of ``state``;
    a route the state does not have (a foreign wrapper's own layout) ends the walk there."""
    found = []
    for visit in base.walk(optimizer):
        try:
            found.append((visit, base.at_route(state, visit.route)))
        except (AttributeError, IndexError, KeyError, TypeError):
            continue
    return found


def _transform_label(visit: base.Visit, fallback: str) -> str:
    name = getattr(visit.transform, "name", None) or fallback
    return "/".join((*visit.labels, name))


def memory_report(optimizer: Any, params: Any) -> MemoryReport:
    """The memory of ``optimizer``'s state for ``params``, slot by slot, from shapes only.

    Args:    optimizer -- any ``(init, update)`` pair: a gradchain transform or chain, an Optax
             transform, or a chain mixing them.  params -- a tree of arrays or of
             ``jax.ShapeDtypeStruct`` (nothing is allocated either way).
    Returns: a ``MemoryReport``; see its docstring for ``params_multiple`` and the kinds.

    >>> import jax, jax.numpy as jnp, gradchain
    >>> params = {"w": jax.ShapeDtypeStruct((1000, 1000), jnp.float32)}
    >>> report = gradchain.memory_report(gradchain.adam(1e-3), params)
    >>> report.params_multiple, report.per_parameter_bytes
    (2.0, 8000000)
    """
    if not (
        callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))
    ):
        raise TypeError(
            f"memory_report takes an optimizer (an object with init and update), got {optimizer!r}"
        )
    abstract = abstract_params(params)
    param_leaves, param_def = jax.tree.flatten(abstract)
    state = jax.eval_shape(optimizer.init, abstract)
    n_params = sum(_size(p) for p in param_leaves)
    owners = _owners(optimizer, state)

    def owner(slot: state_lib.Slot) -> int:
        """The index in ``owners`` of the deepest transform whose state holds the slot."""
        best = 0
        for i, (visit, _) in enumerate(owners):
            if slot.route[: len(visit.route)] == visit.route and len(visit.route) >= len(
                owners[best][0].route
            ):
                best = i
        return best

    indexed: list[tuple[int, Row]] = []
    for slot in state_lib.slots(state):
        leaves = jax.tree.leaves(slot.value)
        if not leaves:
            continue
        elements = sum(_size(x) for x in leaves)
        dtypes = "/".join(sorted({str(np.dtype(x.dtype)) for x in leaves}))
        at = owner(slot)
        row = Row(
            _transform_label(owners[at][0], slot.owner or "state"),
            slot.name,
            slot.path,
            _kind(slot, param_leaves, param_def),
            dtypes,
            elements,
            sum(_nbytes(x) for x in leaves),
            _ratio(elements, n_params),
            slot.meaning,
        )
        indexed.append((at, row))
    kept = {i for i, _ in indexed}
    for i, (visit, sub) in enumerate(owners):  # a transform that keeps nothing: 0 bytes
        if i in kept or getattr(visit.transform, "children", ()) or jax.tree.leaves(sub):
            continue
        label = _transform_label(visit, type(sub).__name__)
        indexed.append((i, Row(label, "-", label, "stateless", "-", 0, 0, 0.0, "keeps no state")))
    indexed.sort(key=lambda pair: pair[0])
    rows = [row for _, row in indexed]
    return MemoryReport(
        optimizer=_title(optimizer, state),
        rows=tuple(rows),
        param_elements=n_params,
        param_bytes=sum(_nbytes(p) for p in param_leaves),
        param_leaves=len(param_leaves),
        param_dtypes="/".join(sorted({str(np.dtype(p.dtype)) for p in param_leaves})) or "-",
    )


def _title(optimizer: Any, state: Any) -> str:
    members = getattr(optimizer, "members", ())
    if members:
        return "chain(" + ", ".join(
            getattr(m, "name", None) or type(s).__name__ for m, s in zip(members, state)
        ) + ")"
    return getattr(optimizer, "name", None) or type(state).__name__


class Comparison(NamedTuple):
    """Two reports of the same params side by side, slot by slot (see ``compare``)."""

    rows: tuple[tuple[str, str, int, int], ...]  # transform, slot, baseline bytes, bytes
    baseline_bytes: int
    candidate_bytes: int

    @property
    def saved_bytes(self) -> int:
        return self.baseline_bytes - self.candidate_bytes

    def __str__(self) -> str:
        body = format_table(
            ["transform", "slot", "baseline", "this", "saved"],
            [
                [
                    t,
                    s,
                    format_bytes(a),
                    format_bytes(b),
                    format_bytes(a - b) if a >= b else "-" + format_bytes(b - a),
                ]
                for t, s, a, b in self.rows
            ],
            right=(2, 3, 4),
            ruled=False,
        )
        saved = self.saved_bytes
        pct = 100 * saved / self.baseline_bytes if self.baseline_bytes else 0.0
        return f"{body}\n\nsaved: {saved:,} bytes ({format_bytes(max(saved, 0))}, {pct:.1f}%)"


def compare(baseline: MemoryReport, candidate: MemoryReport) -> Comparison:
    """What ``candidate`` saves over ``baseline``, slot by slot (matched by path).

    Typical use: the bytes a moment dtype saves,
    ``compare(memory_report(adam(lr), p), memory_report(adam(lr, mu_dtype=jnp.bfloat16), p))``.
    """
    for name, report in (("baseline", baseline), ("candidate", candidate)):
        if not isinstance(report, MemoryReport):
            raise TypeError(f"compare takes two MemoryReports; {name} is {type(report).__name__}")
    before = {r.path: r for r in baseline.rows}
    after = {r.path: r for r in candidate.rows}
    rows = []
    for path in [*before, *(p for p in after if p not in before)]:
        a, b = before.get(path), after.get(path)
        a_bytes, b_bytes = (a.bytes if a else 0), (b.bytes if b else 0)
        shown = a_bytes != b_bytes or any(r is not None and r.per_parameter for r in (a, b))
        if shown:
            r = b or a
            rows.append((r.transform, r.slot, a_bytes, b_bytes))
    rows = tuple(rows)
    return Comparison(rows, baseline.total_bytes, candidate.total_bytes)
