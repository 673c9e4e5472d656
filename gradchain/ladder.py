"""The optimizer ladder: each named optimizer beside the one it builds on, and the memory
it adds -- SGD -> momentum -> Nesterov -> AdaGrad -> RMSProp -> Adam -> AdamW -> AMSGrad,
with Lion, Adamax and NAdam beside it.

The ladder is data: ``LADDER`` is a list of ``Rung`` entries, each naming a function of
``gradchain.optimizers`` and the rung it is compared with. A new named optimizer joins the
table with one entry, e.g. ``Rung("adafactor", "adam", "factored second moment", "beside")``.
Entries whose optimizer does not exist (yet) are skipped.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections import Counter
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain.memory import MemoryReport, _table, format_bytes, memory_report

__all__ = [
    "LADDER",
    "Hierarchy",
    "HierarchyRow",
    "Rung",
    "chain_names",
    "hierarchy",
    "named_optimizer",
]

DEFAULT_LEARNING_RATE = 1e-3


class Rung(NamedTuple):
    """One entry of the ladder.

    name:     a function in ``gradchain.optimizers`` (built with learning rate 1e-3).
    previous: the rung it is compared with (``None`` for the first).
    note:     what it changes, in a few words.
    branch:   ``"ladder"`` for the main line, ``"beside"`` for the optimizers next to it.
    """

    name: str
    previous: str | None
    note: str
    branch: str = "ladder"


LADDER: list[Rung] = [
    Rung("sgd", None, "step along -g"),
    Rung("momentum", "sgd", "a velocity: running sum of gradients"),
    Rung("nesterov", "momentum", "look ahead along the velocity: no new memory"),
    Rung("adagrad", "nesterov", "per-coordinate steps from the sum of g**2"),
    Rung("rmsprop", "adagrad", "a moving average of g**2 instead of the sum"),
    Rung("adam", "rmsprop", "momentum on top, both moments bias-corrected"),
    Rung("adamw", "adam", "decoupled weight decay: no new memory"),
    Rung("amsgrad", "adamw", "never let the denominator shrink: max of nu"),
    Rung("lion", "momentum", "sign of an interpolated momentum", "beside"),
    Rung("adamax", "adam", "infinity norm in place of the RMS", "beside"),
    Rung("nadam", "adam", "Nesterov look-ahead in the bias correction", "beside"),
]


def named_optimizer(name: str, **kwargs: Any) -> Any:
    """``gradchain.optimizers.<name>(1e-3, **kwargs)``; KeyError when there is none."""
    from gradchain import optimizers

    factory = getattr(optimizers, name, None) if name in optimizers.__all__ else None
    if not callable(factory):
        raise KeyError(name)
    return factory(DEFAULT_LEARNING_RATE, **kwargs)


def _moment_dtype_kwargs(name: str, dtype: Any) -> dict[str, Any] | None:
    """``{mu_dtype: dtype, nu_dtype: dtype}`` restricted to what the factory accepts."""
    from gradchain import optimizers

    accepted = inspect.signature(getattr(optimizers, name)).parameters
    kwargs = {k: dtype for k in ("mu_dtype", "nu_dtype") if k in accepted}
    return kwargs or None


@dataclasses.dataclass(frozen=True)
class HierarchyRow:
    """One optimizer of the ladder: its chain, what it adds over ``previous``, its bytes."""

    name: str
    previous: str | None
    note: str
    branch: str
    chain: tuple[str, ...]
    adds: tuple[str, ...]  # per-parameter slots it has and ``previous`` has not
    drops: tuple[str, ...]  # per-parameter slots ``previous`` has and it has not
    report: MemoryReport
    bf16_moment_bytes: int | None  # total with mu_dtype/nu_dtype=bfloat16, where accepted

    @property
    def total_bytes(self) -> int:
        return self.report.total_bytes

    @property
    def params_multiple(self) -> float:
        return self.report.params_multiple


@dataclasses.dataclass(frozen=True)
class Hierarchy:
    """The ladder's rows; ``str()`` prints the table and each optimizer's chain."""

    rows: tuple[HierarchyRow, ...]
    param_elements: int
    param_bytes: int
    param_dtypes: str

    def __getitem__(self, name: str) -> HierarchyRow:
        return next(r for r in self.rows if r.name == name)

    def __str__(self) -> str:
        def line(r: HierarchyRow) -> list[str]:
            change = [f"+{s}" for s in r.adds] + [f"-{s}" for s in r.drops]
            bf16 = format_bytes(r.bf16_moment_bytes) if r.bf16_moment_bytes is not None else "-"
            return [
                r.name,
                r.previous or "-",
                ", ".join(change) or "nothing",
                format_bytes(r.total_bytes),
                f"{r.params_multiple:.3g}",
                bf16,
            ]

        headers = ["optimizer", "over", "slots added (-removed)", "state", "x params"]
        headers.append("bf16 moments")
        ladder = [line(r) for r in self.rows if r.branch == "ladder"]
        beside = [line(r) for r in self.rows if r.branch != "ladder"]
        table = _table(headers, ladder + ([["beside it:"]] + beside if beside else []), (3, 4, 5))
        width = max((len(r.name) for r in self.rows), default=0)
        chains = "\n".join(
            f"  {r.name.ljust(width)}  {' -> '.join(r.chain)}\n  {' ' * width}  ({r.note})"
            for r in self.rows
        )
        return (
            f"Optimizer state for {self.param_elements:,} {self.param_dtypes} parameters "
            f"(the params themselves: {format_bytes(self.param_bytes)})\n\n{table}\n\n"
            "state: every slot, step counts and hyperparameters included; x params: elements "
            "of per-parameter slots / parameter elements;\nbf16 moments: the state with "
            "mu_dtype=nu_dtype=jnp.bfloat16.\n\n"
            "The chains, and what each changes "
            f"(python -m gradchain explain NAME: the equations):\n{chains}"
        )


def _as_params(params: Any, dtype: Any) -> Any:
    if isinstance(params, int):
        return jax.ShapeDtypeStruct((params,), jnp.dtype(dtype))
    return params


def _slot_labels(report: MemoryReport) -> Counter:
    return Counter(f"{r.slot} ({r.transform})" for r in report.rows if r.per_parameter)


def hierarchy(params: Any, dtype: Any = jnp.float32, ladder: list[Rung] | None = None):
    """The ladder of named optimizers with the memory each keeps, from shapes only.

    Args:    params -- a parameter count (one vector of that many ``dtype`` elements), or a
             tree of arrays / ``jax.ShapeDtypeStruct`` (then ``dtype`` is ignored).
             ladder -- the rungs to show (default ``LADDER``); missing optimizers are skipped.
    Returns: a ``Hierarchy``; ``str()`` of it is the table ``python -m gradchain memory``
             prints.

    >>> import gradchain
    >>> h = gradchain.hierarchy(1_000_000)
    >>> h["adam"].adds, h["adam"].params_multiple
    (('mu (scale_by_momentum)',), 2.0)
    """
    from gradchain import optimizers

    params = _as_params(params, dtype)
    available = [r for r in (LADDER if ladder is None else ladder) if r.name in optimizers.__all__]
    built = {r.name: named_optimizer(r.name) for r in available}
    reports = {name: memory_report(opt, params) for name, opt in built.items()}
    rows = []
    for rung in available:
        report = reports[rung.name]
        previous = reports.get(rung.previous) if rung.previous else None
        here = _slot_labels(report)
        before = _slot_labels(previous) if previous else Counter()
        kwargs = _moment_dtype_kwargs(rung.name, jnp.bfloat16)
        bf16 = memory_report(named_optimizer(rung.name, **kwargs), params) if kwargs else None
        rows.append(
            HierarchyRow(
                name=rung.name,
                previous=rung.previous,
                note=rung.note,
                branch=rung.branch,
                chain=chain_names(built[rung.name]),
                adds=tuple((here - before).elements()),
                drops=tuple((before - here).elements()),
                report=report,
                bf16_moment_bytes=bf16.total_bytes if bf16 else None,
            )
        )
    any_report = next(iter(reports.values()), None) or memory_report(_identity(), params)
    return Hierarchy(
        tuple(rows), any_report.param_elements, any_report.param_bytes, any_report.param_dtypes
    )


def chain_names(optimizer: Any) -> tuple[str, ...]:
    """The names of a chain's members (a single transform: its own name)."""
    members = getattr(optimizer, "members", ()) or (optimizer,)
    return tuple(getattr(m, "name", None) or type(m).__name__ for m in members)


def _identity():
    from gradchain.base import identity

    return identity()
