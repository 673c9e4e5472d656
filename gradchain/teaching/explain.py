"""The text of ``python -m gradchain explain NAME``: a named optimizer as the chain it is,
each transform's update equation (read from the ``Update:`` section of its factory's
docstring), its note and reference, and the memory it adds (from ``memory_report``)."""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

__all__: list[str] = []  # used by gradchain.teaching.cli; nothing here is public API


def docstring_section(doc: str, label: str) -> list[str]:
    """The lines of a docstring section such as ``Update:``: the text after the label, and
    the indented lines that continue it (until a blank line or the next section)."""
    lines = inspect.cleandoc(doc or "").splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"{label}:"):
            section = [line[len(label) + 1 :].strip()]
            for more in lines[i + 1 :]:
                if not more.strip() or not more[:1].isspace():
                    break
                section.append(more.strip())
            return section
    return []


def _section(doc: str, label: str, indent: str = "   ") -> list[str]:
    lines = docstring_section(doc, label)
    return [f"{indent}{(label + ':') if k == 0 else '':<11} {text}" for k, text in enumerate(lines)]


def _factory_doc(name: str) -> str:
    import gradchain

    return getattr(getattr(gradchain, name, None), "__doc__", None) or ""


class _Step(NamedTuple):
    number: str  # "3" or, inside a wrapper, "2.1"
    label: str  # what the step is called: "scale_by_rms", or "[adam] scale_by_rms" in a group
    transform: Any
    owner: str  # its rows' ``transform`` in the memory report: group labels, then its name
    expanded: bool  # a wrapper whose inner transforms are steps of their own


def _name(t: Any) -> str:
    return getattr(t, "name", None) or type(t).__name__


def _is_live(t: Any) -> bool:
    return getattr(t, "hyperparameters", None) is not None


def _steps(optimizer: Any) -> list[_Step]:
    """The transforms to explain, in order, following what each holds (``base.walk``'s
    children): a chain's members, and inside a wrapper its inner transforms' members."""
    steps: list[_Step] = []

    def expand(t: Any, number: str, labels: tuple[str, ...], group: str) -> None:
        name = _name(t)
        children = () if getattr(t, "members", ()) else getattr(t, "children", ())
        steps.append(_Step(number, group + name, t, "/".join((*labels, name)), bool(children)))
        k = 0
        for child in children:
            inner_labels = labels if child.label is None else (*labels, child.label)
            inner_group = group if child.label is None else f"[{child.label}] "
            for m in getattr(child.transform, "members", ()) or (child.transform,):
                k += 1
                expand(m, f"{number}.{k}", inner_labels, inner_group)

    top = optimizer.children[0].transform if _is_live(optimizer) else optimizer
    for i, m in enumerate(getattr(top, "members", ()) or (top,), start=1):
        expand(m, str(i), (), "")
    return steps


def _doc_of(transform: Any) -> tuple[str, str]:
    """(its factory's docstring, the docstring with its Update equation). A wrapper of one
    transform -- one unlabelled ``children`` entry, or a name like
    ``quantized_moments(scale_by_rms, nu=uint8)`` -- takes the equation of what it wraps."""
    name = getattr(transform, "name", None) or ""
    own = _factory_doc(name.split("(")[0]) if name else ""
    children = getattr(transform, "children", ())
    if len(children) == 1 and children[0].label is None and not getattr(transform, "members", ()):
        wrapped = getattr(children[0].transform, "name", None) or ""
    else:
        wrapped = name.partition("(")[2].split(",")[0].split(")")[0].strip()
    wrapped_doc = _factory_doc(wrapped.split("(")[0]) if wrapped else ""
    return own, wrapped_doc or own


def explain(name: str, params: Any) -> str:
    """The text of ``python -m gradchain explain NAME`` for ``params`` (a tree of shapes)."""
    import jax
    import jax.numpy as jnp

    from gradchain import ladder, memory, state
    from gradchain.memory import format_bytes

    optimizer = ladder.named_optimizer(name)
    report = memory.memory_report(optimizer, params)
    tiny = jax.tree.map(lambda p: jnp.zeros((1,) * len(p.shape), p.dtype), params)
    values = {s.path: s.value for s in state.slots(optimizer.init(tiny)) if s.hyperparameter}
    names = ladder.chain_names(optimizer)
    summary = inspect.cleandoc(_factory_doc(name)).split("\n\n")[0].replace("\n", " ")
    out = [
        f"{name}: {summary}",
        "",
        f"{name}(learning_rate) = "
        + (f"chain({', '.join(names)})" if len(names) > 1 else names[0]),
        f"state for {ladder.describe_model(params)}: "
        f"{format_bytes(report.per_parameter_bytes)} = {report.params_multiple:.3g}x params "
        f"in per-parameter slots, plus {format_bytes(report.scalar_bytes)} of scalars",
    ]
    own_rows = [r for r in report.rows if r.transform == _name(optimizer)]
    if _is_live(optimizer) and own_rows:
        shown = ", ".join(f"{r.slot}={float(values[r.path]):g}" for r in own_rows)
        nbytes = format_bytes(sum(r.bytes for r in own_rows))
        out.append(f"hyperparameters (live, one place for the whole chain): {shown} ({nbytes})")
    for step in _steps(optimizer):
        own, doc = _doc_of(step.transform)
        first = inspect.cleandoc(own).split("\n")[0] if own else "(not a gradchain transform)"
        indent = "   " + "  " * step.number.count(".")
        out += ["", f"{indent[:-3]}{step.number}. {step.label} -- {first}"]

        rows = [r for r in report.rows if r.transform == step.owner]
        if not step.expanded:
            out += _section(doc, "Update", indent)
        adds = [r for r in rows if r.per_parameter]
        for k, r in enumerate(adds):
            out.append(
                f"{indent}{'Memory:' if k == 0 else '':<11} +{r.slot}: {format_bytes(r.bytes)} "
                f"({r.multiple:.3g}x params, {r.kind}, {r.dtype})"
            )
            out.append(f"{indent}{'':<11}   {r.meaning}")
        if not adds and not step.expanded:
            out.append(f"{indent}{'Memory:':<11} no per-parameter state")
        scalar_rows = [r for r in rows if r.kind in ("scalar", "hyperparameter")]
        scalars = [
            f"{r.slot}={float(values[r.path]):g}" if r.path in values else r.slot
            for r in scalar_rows
        ]
        if scalars:
            nbytes = format_bytes(sum(r.bytes for r in scalar_rows))
            out.append(f"{indent}{'Scalars:':<11} {', '.join(scalars)} ({nbytes})")
        if not step.expanded:
            out += _section(doc, "Note", indent) + _section(doc, "Reference", indent)
    return "\n".join(out)
