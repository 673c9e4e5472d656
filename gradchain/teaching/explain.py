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
    owner: str  # its rows' ``transform`` in the memory report
    prefix: str | None  # its rows' path prefix (the chain index), None when not in a chain
    expanded: bool  # a wrapper whose inner transforms are steps of their own


def _name(t: Any) -> str:
    return getattr(t, "name", None) or type(t).__name__


def _steps(optimizer: Any) -> list[_Step]:
    """The transforms to explain, in order: a chain's members, and inside a wrapper that
    holds chains or groups (``.inner``), their members too."""

    def expand(t, number, label, owner, prefix):
        inner = getattr(t, "inner", None)
        chains = isinstance(inner, dict) and any(
            key != "inner" or getattr(sub, "members", ()) for key, sub in inner.items()
        )
        if not chains:
            return [_Step(number, label, t, owner, prefix, False)]
        steps = [_Step(number, label, t, owner, prefix, True)]
        k = 0
        for key, sub in inner.items():
            base, group = (owner, "") if key == "inner" else (f"{owner}/{key}", f"[{key}] ")
            for m in getattr(sub, "members", ()) or (sub,):
                k += 1
                steps += expand(m, f"{number}.{k}", group + _name(m), f"{base}/{_name(m)}", prefix)
        return steps

    members = getattr(optimizer, "members", ())
    if not members:
        return expand(optimizer, "1", _name(optimizer), _name(optimizer), None)
    return [
        s for i, m in enumerate(members) for s in expand(m, str(i + 1), _name(m), _name(m), str(i))
    ]


def _doc_of(transform: Any) -> tuple[str, str]:
    """(its factory's docstring, the docstring with its Update equation). A wrapper of one
    transform -- ``.inner == {"inner": t}``, or a name like
    ``quantized_moments(scale_by_rms, nu=uint8)`` -- takes the equation of what it wraps."""
    name = getattr(transform, "name", None) or ""
    own = _factory_doc(name.split("(")[0]) if name else ""
    inner = getattr(transform, "inner", None)
    if isinstance(inner, dict) and list(inner) == ["inner"]:
        wrapped = getattr(inner["inner"], "name", None) or ""
    else:
        wrapped = name.partition("(")[2].split(",")[0].split(")")[0].strip()
    wrapped_doc = _factory_doc(wrapped.split("(")[0]) if wrapped else ""
    return own, wrapped_doc or own


def explain(name: str, params: Any) -> str:
    """The text of ``python -m gradchain explain NAME`` for ``params`` (a tree of shapes)."""
    import jax
    import jax.numpy as jnp

    from gradchain import memory, state
    from gradchain.memory import format_bytes
    from gradchain.teaching import ladder

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
        + (f"chain({', '.join(names)})" if getattr(optimizer, "members", ()) else names[0]),
        f"state for {ladder.describe_model(params)}: "
        f"{format_bytes(report.per_parameter_bytes)} = {report.params_multiple:.3g}x params "
        f"in per-parameter slots, plus {format_bytes(report.scalar_bytes)} of scalars",
    ]
    for step in _steps(optimizer):
        own, doc = _doc_of(step.transform)
        first = inspect.cleandoc(own).split("\n")[0] if own else "(not a gradchain transform)"
        indent = "   " + "  " * step.number.count(".")
        out += ["", f"{indent[:-3]}{step.number}. {step.label} -- {first}"]

        def mine(r, step=step):
            in_chain = step.prefix is None or r.path.split(".")[0] == step.prefix
            nested = not step.expanded and r.transform.startswith(step.owner + "/")
            return in_chain and (r.transform == step.owner or nested)

        rows = [r for r in report.rows if mine(r)]
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
