"""Shown output is produced, not typed: every block that README.md or a page of docs/ marks
``<!-- output: COMMAND -->`` is what a fresh run of COMMAND prints.

The comparison is exact, line by line (trailing spaces aside), except what reports a run
time, excluded by name in ``docs/regenerate.py`` (``TIMING``: the race's ``ran N runs in
X s`` line; ``TIMING_COLUMNS``: the training demo's ``seconds`` column). A block that shows
the first or last lines of an output (``...``) is compared on those lines. When a change in
gradchain moves a number, ``python docs/regenerate.py`` rewrites the blocks.
"""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("regenerate", ROOT / "docs" / "regenerate.py")
regenerate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(regenerate)

# page -> its marked blocks: a marker that disappears fails here, not silently.
MARKED = {"coming_from_optax.md": 2, "memory.md": 4, "performance.md": 1, "teaching.md": 3}
CASES = [
    (page, block)
    for page in regenerate.PAGES
    for block in regenerate.marked_blocks(page.read_text())
]


def test_the_pages_mark_their_outputs():
    counts = {}
    for page, _ in CASES:
        counts[page.name] = counts.get(page.name, 0) + 1
    assert counts == MARKED


@pytest.mark.parametrize(
    "page, block", CASES, ids=[f"{p.name}:{b.line}" for p, b in CASES]
)
def test_marked_block_is_what_its_command_prints(page, block):
    output = regenerate.run(block.command, page.read_text(), block.start)
    want = regenerate.comparable(regenerate.render(block, output))
    assert regenerate.comparable(block.body) == want, (
        f"{page.name}:{block.line}: `{block.command}` prints something else; "
        "run python docs/regenerate.py"
    )


def test_timing_is_excluded_by_name_and_nothing_else():
    lines = regenerate.clean("a table\nran 8 runs in 6.2 s\nran in 3 s\n")
    assert lines == ["a table", "ran in 3 s"]  # only the race's own timing line goes
    table = "optimizer     lr      state  final loss  train acc  test acc  seconds\nsgd 0.5 4.5"
    assert regenerate.comparable(table)[-1] == "sgd 0.5 <s>"
