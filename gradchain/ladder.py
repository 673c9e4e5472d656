"""The optimizer ladder: each named optimizer beside the one it builds on, and the memory
it adds -- SGD -> momentum -> Nesterov -> AdaGrad -> RMSProp -> Adam -> AdamW -> AMSGrad,
with Lion, Adamax and NAdam beside it.

The ladder is data: ``LADDER`` is a list of ``Rung`` entries, each naming a function of
``gradchain.optimizers`` and the rung it is compared with. A new named optimizer joins the
table with one entry, e.g. ``Rung("adafactor", "adam", "factored second moment", "saves")``.
Entries whose optimizer does not exist (yet) are skipped.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections import Counter
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.memory import MemoryReport, abstract_params, format_bytes, memory_report
from gradchain.text_table import format_table

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
    branch:   ``"ladder"`` for the main line; ``"beside"`` (the same memory, another rule),
              ``"saves"`` (less memory), ``"spends"`` (more, on purpose) or ``"steps"`` (more, to
              take fewer steps: Kronecker-factored preconditioners) for the others.
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
    # beside the ladder: the same memory, another rule
    Rung("lion", "momentum", "sign of an interpolated momentum", "beside"),
    Rung("adamax", "adam", "infinity norm in place of the RMS", "beside"),
    Rung("nadam", "adam", "Nesterov look-ahead in the bias correction", "beside"),
    Rung("nadamw", "adamw", "NAdam's look-ahead with decoupled decay", "beside"),
    Rung("adamaxw", "adamax", "Adamax with decoupled decay", "beside"),
    Rung("radam", "adam", "momentum-SGD steps until the variance is trustworthy", "beside"),
    Rung("adabelief", "adam", "second moment of the surprise g - mu", "beside"),
    Rung("yogi", "adam", "additive second-moment changes", "beside"),
    Rung("adopt", "adam", "normalise by the previous nu, then take momentum", "beside"),
    Rung("lamb", "adamw", "AdamW's step rescaled per leaf by a trust ratio", "beside"),
    Rung("lars", "momentum", "momentum step rescaled per leaf by a trust ratio", "beside"),
    Rung("rprop", "sgd", "per-coordinate step sizes from sign agreement", "beside"),
    Rung("adadelta", "rmsprop", "steps in the parameters' units: + average of squared steps",
         "beside"),
    # spending less memory
    Rung("sign_sgd", "sgd", "the sign of g: every coordinate moves by lr", "saves"),
    Rung("signum", "momentum", "the sign of a moving average", "saves"),
    Rung("muon", "momentum", "momentum orthogonalised for matrices, AdamW for the rest",
         "saves"),
    Rung("adafactor", "adam", "factored second moment: a row and a column per matrix", "saves"),
    Rung("lion_8bit", "lion", "Lion's momentum in 8 bits, block-wise", "saves"),
    Rung("adam_8bit", "adam", "both moments in 8 bits, block-wise", "saves"),
    Rung("adamw_8bit", "adamw", "both moments in 8 bits, block-wise", "saves"),
    Rung("adam_4bit", "adam_8bit", "4 bits: mu block-wise, nu rank-1 without zero", "saves"),
    Rung("adamw_4bit", "adamw_8bit", "4 bits: mu block-wise, nu rank-1 without zero", "saves"),
    # spending more memory, on purpose
    Rung("ademamix", "adam", "a second, slow momentum (b3 = 0.9999)", "spends"),
    Rung("adan", "adam", "a momentum of gradient differences", "spends"),
    Rung("schedule_free_adamw", "adamw", "no schedule: the iterate and its average", "spends"),
    Rung("shampoo", "adagrad", "a d x d statistic per axis, and its inverse root", "steps"),
    Rung("soap", "adamw", "Adam in the eigenbasis of Shampoo's per-axis statistics", "steps"),
]  # fmt: skip

BRANCH_HEADINGS = {
    "beside": "beside it (the same memory, another rule):",
    "saves": "spending less memory:",
    "spends": "spending more memory, on purpose:",
    "steps": "spending memory to save steps (second-order statistics per axis):",
}


def named_optimizer(name: str, **kwargs: Any) -> Any:
    """``gradchain.optimizers.<name>(1e-3, **kwargs)``; GradchainError when there is none."""
    from gradchain import optimizers

    known = name in optimizers.__all__ if isinstance(name, str) else False
    factory = getattr(optimizers, name, None) if known else None
    if not callable(factory):
        raise _checks.GradchainError(
            f"no named optimizer {name!r}; choose from {', '.join(sorted(optimizers.__all__))}"
        )
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
    model: str  # e.g. "1,000,000 float32 parameters as one 1000x1000 matrix"

    def __getitem__(self, name: str) -> HierarchyRow:
        return next(r for r in self.rows if r.name == name)

    def __str__(self) -> str:
        def line(r: HierarchyRow) -> list[str]:
            change = [f"+{s}" for s in r.adds] + [f"-{s}" for s in r.drops]
            bf16 = format_bytes(r.bf16_moment_bytes) if r.bf16_moment_bytes is not None else "-"
            total = format_bytes(r.total_bytes)
            multiple = f"{r.params_multiple:.3g}"
            in_bytes = f"{r.report.bytes_multiple:.3g}"
            row = [r.name, r.previous or "-", total, multiple, in_bytes, bf16]
            return [*row, ", ".join(change) or "-"]

        headers = ["optimizer", "over", "state", "x params", "x bytes", "bf16 moments"]
        headers.append("slots it adds")
        body = [line(r) for r in self.rows if r.branch == "ladder"]
        for branch in dict.fromkeys(r.branch for r in self.rows if r.branch != "ladder"):
            body.append([BRANCH_HEADINGS.get(branch, f"{branch}:")])
            body += [line(r) for r in self.rows if r.branch == branch]
        table = format_table(headers, body, right=(2, 3, 4, 5), ruled=False)
        width = max((len(r.name) for r in self.rows), default=0)
        chains = "\n".join(
            f"  {r.name.ljust(width)}  {r.note}\n  {' ' * width}  = {' -> '.join(r.chain)}"
            for r in self.rows
        )
        return (
            f"Optimizer state for {self.model}\n"
            f"(the params themselves: {format_bytes(self.param_bytes)})\n\n{table}\n\n"
            "state: every slot, step counts and hyperparameters included.\n"
            "x params: elements of per-parameter slots / parameter elements.\n"
            "x bytes: per-parameter slot bytes / the params' bytes "
            "(8-bit: ~0.25 a moment, 4-bit: ~0.13).\n"
            "bf16 moments: the state with mu_dtype=nu_dtype=jnp.bfloat16 (- : no such option).\n"
            "slots it adds: over the optimizer in 'over'; -slot: one it drops; "
            "(reduced), (quantized): kept smaller than the param.\n\n"
            "What each changes, and its chain "
            f"(python -m gradchain explain NAME: the equations):\n{chains}"
        )


def model_of_size(n: int, dtype: Any = jnp.float32) -> Any:
    """``n`` parameters as one matrix, as square as ``n`` allows (1,000,000 -> 1000x1000):
    most of a network's parameters are in matrices, and factored or orthogonalised
    optimizers (Adafactor, Muon) treat a matrix as they would in a real model. A number
    with no divisor above 1 up to its square root stays one vector."""
    rows = max((d for d in range(1, math.isqrt(n) + 1) if n % d == 0), default=1)
    shape = (rows, n // rows) if rows > 1 else (n,)
    return jax.ShapeDtypeStruct(shape, jnp.dtype(dtype))


def describe_model(params: Any) -> str:
    """``"1,000,000 float32 parameters as one 1000x1000 matrix"`` or ``"... in 4 leaves"``."""
    leaves = jax.tree.leaves(params)
    n = sum(math.prod(x.shape) for x in leaves)
    dtypes = "/".join(sorted({str(jnp.dtype(x.dtype)) for x in leaves}))
    if len(leaves) == 1:
        shape = leaves[0].shape
        what = "matrix" if len(shape) == 2 else "vector" if len(shape) == 1 else "array"
        return f"{n:,} {dtypes} parameters as one {'x'.join(map(str, shape)) or '()'} {what}"
    return f"{n:,} {dtypes} parameters in {len(leaves)} leaves"


def _as_params(params: Any, dtype: Any) -> Any:
    if isinstance(params, bool):
        raise _checks.GradchainError("hierarchy takes a parameter count or a tree, got a bool")
    if isinstance(params, int):
        _checks.check_dtype("dtype", dtype)
        return model_of_size(params, dtype)
    return abstract_params(params)  # refuses leaves that are not arrays


def _slot_labels(report: MemoryReport) -> Counter:
    def label(r):
        smaller = [k for k in ("quantized", "reduced") if k in r.kind]
        return f"{r.slot} ({smaller[0]})" if smaller else r.slot

    return Counter(label(r) for r in report.rows if r.per_parameter)


def hierarchy(params: Any, dtype: Any = jnp.float32, ladder: list[Rung] | None = None):
    """The ladder of named optimizers with the memory each keeps, from shapes only.

    Args:    params -- a parameter count (as one matrix of that many ``dtype`` elements, see
             ``model_of_size``), or a tree of arrays / ``jax.ShapeDtypeStruct`` (then
             ``dtype`` is ignored).
             ladder -- the rungs to show (default ``LADDER``); missing optimizers are skipped.
    Returns: a ``Hierarchy``; ``str()`` of it is the table ``python -m gradchain memory``
             prints.

    >>> import gradchain
    >>> h = gradchain.hierarchy(1_000_000)
    >>> h["adam"].adds, h["adam"].params_multiple
    (('mu',), 2.0)
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
        tuple(rows),
        any_report.param_elements,
        any_report.param_bytes,
        any_report.param_dtypes,
        describe_model(params),
    )


def _built_chain(t: Any) -> Any:
    """What a live optimizer (``gradchain.live``) builds from its numbers; anything else."""
    while getattr(t, "hyperparameters", None) is not None and t.children:
        t = t.children[0].transform
    return t


def chain_names(optimizer: Any) -> tuple[str, ...]:
    """The names of the chain an optimizer is (a single transform: its own name). A wrapper
    shows what it holds (``base.walk``'s children): ``partition(adam: ...; muon: ...)``."""
    built = _built_chain(optimizer)
    members = getattr(built, "members", ()) or (built,)
    return tuple(_transform_name(m) for m in members)


def _transform_name(t: Any) -> str:
    name = getattr(t, "name", None) or type(t).__name__
    children = getattr(t, "children", ())
    if not children or getattr(t, "members", ()):
        return name
    parts = [
        ("" if c.label is None else f"{c.label}: ") + " -> ".join(chain_names(c.transform))
        for c in children
    ]
    return f"{name}({'; '.join(parts)})"


def _identity():
    from gradchain.base import identity

    return identity()
