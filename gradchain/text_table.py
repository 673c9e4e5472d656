"""Text tables: the one formatter behind the memory report, the ladder, the race and the
training demo."""

from __future__ import annotations

from collections.abc import Collection, Sequence

__all__ = ["format_table"]


def format_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Collection[int] = (),
    title: str | None = None,
    note: str | None = None,
    ruled: bool = True,
) -> str:
    """Columns padded to their widest cell, the columns numbered in ``right`` aligned right.

    A row of one cell is a heading, printed as it is. ``title`` goes above, ``note`` below;
    ``ruled`` draws a rule above and below the header.
    """
    cells = [list(r) + [""] * (len(header) - len(r)) for r in rows if len(r) > 1]
    widths = [max(len(c) for c in col) for col in zip(header, *cells)]

    def line(cells: Sequence[str]) -> str:
        padded = (
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )
        return "  ".join(padded).rstrip()

    rule = ["-" * len(line(header))] if ruled else []
    body = [line(r) if len(r) > 1 else r[0] for r in rows]
    lines = [*([title] if title else []), *rule, line(header), *rule, *body]
    return "\n".join([*lines, *([note] if note else [])])
