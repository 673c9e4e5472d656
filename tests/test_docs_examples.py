"""Every ```python block in README.md and docs/*.md runs, and prints what the page shows.

The blocks of one page run in order in one namespace (a page reads as one session), which
starts with ``import jax, jax.numpy as jnp, numpy as np, gradchain``. A block written as a
doctest (``>>>`` lines) is checked by doctest against the output printed under it. In other
blocks, a line ``print(x)  # shown`` or ``x  # shown`` whose comment is a Python literal (or a
call such as ``EmptyState()``) is checked: ``str(x)`` (print) or ``repr(x)`` must be ``shown``;
a dict shown with ``...`` values must have the keys shown.

A block that cannot run here (it needs 8 devices, torch, a file system path, or the context of
a training loop) is marked by ``<!-- no-run: reason -->`` right before it; ``SKIPPED`` counts
them per page, so that no block is skipped silently.
"""

from __future__ import annotations

import ast
import doctest
import pathlib
import re

import jax
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- no-run:[^>]*-->[ \t]*\n)?```python\n(.*?)```", re.S)
SHOWN = re.compile(r"^(?P<print>print\()?(?P<expr>[^#]+?)(?(print)\))\s+#\s+(?P<shown>.+?)\s*$")
PRELUDE = "import jax, jax.numpy as jnp, numpy as np, gradchain"

# page -> number of blocks marked <!-- no-run: ... -->
SKIPPED = {
    "README.md": 1,
    "memory_saving.md": 1,
    "memory_spending.md": 1,
    "orbax.md": 2,
    "porting_from_torch.md": 1,
    "robustness.md": 1,
    "sharding.md": 4,
}


def _is_literal(text: str) -> bool:
    try:
        ast.literal_eval(text)
        return True
    except (ValueError, SyntaxError):
        return False


def _is_shown_value(text: str) -> bool:
    return _is_literal(text) or re.fullmatch(r"[A-Za-z_]\w*\(.*\)", text) is not None


def _with_checks(code: str) -> str:
    """Rewrite top-level ``x  # shown`` lines into checks of what they show."""
    lines = []
    for line in code.splitlines():
        m = SHOWN.match(line)
        if m and _is_shown_value(m["shown"]):
            how = "str" if m["print"] else "repr"
            line = f"__shows__(({m['expr']}), {m['shown']!r}, {how})"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _shows(value, shown, how):
    expected = ast.literal_eval(shown) if _is_literal(shown) else None
    if isinstance(expected, dict) and all(v is Ellipsis for v in expected.values()):
        assert set(value) == set(expected), f"shows the keys {shown}, has {sorted(value)}"
        return
    got = how(value)
    assert " ".join(got.split()) == " ".join(shown.split()), f"shows {shown}, prints {got}"


def _blocks(page: pathlib.Path):
    text = page.read_text()
    for m in BLOCK.finditer(text):
        yield text[: m.start(2)].count("\n") + 1, m.group(1) is not None, m.group(2)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_examples_run_and_print_what_they_show(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a block that writes files writes them here
    namespace: dict = {"__shows__": _shows, "__name__": f"docs_{page.stem}"}
    exec(PRELUDE, namespace)
    skipped = 0
    for line, no_run, code in _blocks(page):
        if no_run:
            skipped += 1
            continue
        where = f"{page.name}:{line}"
        with jax.numpy_dtype_promotion("standard"):  # as a user runs it
            if code.lstrip().startswith(">>>"):
                test = doctest.DocTestParser().get_doctest(code, namespace, where, where, line)
                flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
                runner = doctest.DocTestRunner(optionflags=flags)
                runner.run(test, clear_globs=False)
                namespace.update(test.globs)  # (a DocTest runs in a copy of its globals)
                assert runner.failures == 0, f"{where}: the doctest's output differs (above)"
            else:
                exec(compile(_with_checks(code), where, "exec"), namespace)
    assert skipped == SKIPPED.get(page.name, 0), f"{page.name}: {skipped} blocks marked no-run"
