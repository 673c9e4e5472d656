"""Rewrite every output the docs show from a fresh run, or check that they still match.

Shown output is produced, never typed. Two kinds:

**Marked blocks in README.md and docs/*.md.** A marker comment names the command that
produced what follows it::

    <!-- output: python -m gradchain memory --params 1000000 -->
    ```
    $ python -m gradchain memory --params 1000000
    Optimizer state for 1,000,000 float32 parameters ...
    ...
    ```

- The command is ``python -m MODULE ARGS`` or ``python FILE ARGS`` (run from the repository
  root, in this interpreter, in-process), or ``python above``: the page's ``python`` blocks
  up to this point run in one namespace, and the last one's output is shown.
- What follows is a fenced block, or markdown ended by ``<!-- /output -->`` (a table that
  should render as one).
- A fenced block may start with ``$ COMMAND`` (the prompt, shown as typed); a last line
  ``...`` shows only the output's first lines, a first line ``...`` (after the prompt) only
  its last lines.
- Lines that report a run time are never shown or compared: ``TIMING`` lists them, and
  ``TIMING_COLUMNS`` the tables whose last column is seconds (those values are compared as
  ``<s>``).

**Notebooks** (``notebooks/*.ipynb``) are committed with their outputs;
``tests/test_notebooks.py`` executes each fresh and compares (``comparable_outputs``).

Usage, from the repository root::

    python docs/regenerate.py                 # rewrite the marked blocks of every page
    python docs/regenerate.py --check         # only report the blocks that differ (exit 1)
    python docs/regenerate.py --notebooks     # also execute every notebook and save its outputs
    python docs/regenerate.py README.md       # one page
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import runpy
import shlex
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(
    r"<!-- output: (?P<command>.+?) -->[ \t]*\n"
    r"(?:(?P<fence>```[^\n]*\n)(?P<fenced>.*?)```|(?P<markdown>.*?)<!-- /output -->)",
    re.S,
)
PYTHON_BLOCK = re.compile(r"(<!-- no-run:[^>]*-->[ \t]*\n)?```python\n(.*?)```", re.S)
PRELUDE = "import jax, jax.numpy as jnp, numpy as np, gradchain\n"
ELIDED = "..."

# Lines that report how long something took: left out of shown output and of comparisons.
TIMING = [
    re.compile(r"^ran \d+ runs? in [\d.]+ s$"),  # python -m gradchain race
    re.compile(r"^swept \d+ runs? in [\d.]+ s$"),  # race --sweep
]
# Tables whose last column is a run time: the header line that opens them.
TIMING_COLUMNS = [re.compile(r"^optimizer +lr +state +final loss .* seconds$")]


class Block(NamedTuple):
    """One marked block of a page: where its body lies, and what it shows."""

    command: str
    start: int  # offset of the body (after the fence line, or after the marker)
    end: int
    fenced: bool
    body: str
    line: int  # line number of the marker, for messages


def marked_blocks(text: str) -> list[Block]:
    blocks = []
    for m in MARKER.finditer(text):
        fenced = m.group("fence") is not None
        part = "fenced" if fenced else "markdown"
        blocks.append(
            Block(
                m.group("command").strip(),
                m.start(part),
                m.end(part),
                fenced,
                m.group(part),
                text[: m.start()].count("\n") + 1,
            )
        )
    return blocks


def _is_timing(line: str) -> bool:
    return any(p.match(line) for p in TIMING)


def _mask_timing_columns(lines: list[str]) -> list[str]:
    out, in_table = [], False
    for line in lines:
        if any(p.match(line) for p in TIMING_COLUMNS):
            in_table = True
        elif in_table and re.search(r"\s[\d.]+$", line):
            line = re.sub(r"(\s)[\d.]+$", r"\1<s>", line)
        else:
            in_table = False
        out.append(line)
    return out


def clean(output: str) -> list[str]:
    """Output as compared: trailing spaces and timing lines dropped, outer blank lines too."""
    lines = [ln.rstrip() for ln in output.replace("\r", "\n").splitlines()]
    lines = [ln for ln in lines if not _is_timing(ln)]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _python_above(page_text: str, before: int) -> str:
    """Run the page's python blocks before ``before`` in one namespace; the last one's
    stdout."""
    blocks = [m for m in PYTHON_BLOCK.finditer(page_text[:before]) if m.group(1) is None]
    if not blocks:
        raise ValueError("'python above' with no python block above it")
    import jax

    namespace: dict = {"__name__": "docs_page"}
    exec(PRELUDE, namespace)
    out = io.StringIO()
    with jax.numpy_dtype_promotion("standard"):
        for m in blocks[:-1]:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(m.group(2), "page", "exec"), namespace)
        with contextlib.redirect_stdout(out):
            exec(compile(blocks[-1].group(2), "page", "exec"), namespace)
    return out.getvalue()


def run(command: str, page_text: str = "", before: int = 0) -> str:
    """Run a marker's command in this interpreter, from the repository root; its stdout."""
    if command == "python above":
        return _python_above(page_text, before)
    argv = shlex.split(command)
    if argv[0] != "python" or len(argv) < 2:
        raise ValueError(f"a marker runs 'python -m MODULE ...' or 'python FILE ...': {command}")
    out, saved_argv, saved_cwd = io.StringIO(), sys.argv, os.getcwd()
    try:
        os.chdir(ROOT)
        with contextlib.redirect_stdout(out):
            try:
                if argv[1] == "-m":
                    sys.argv = [argv[2], *argv[3:]]
                    runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
                else:
                    sys.argv = argv[1:]
                    runpy.run_path(str(ROOT / argv[1]), run_name="__main__")
            except SystemExit as e:
                if e.code not in (0, None):
                    raise RuntimeError(f"{command} exited with {e.code}") from e
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
    return out.getvalue()


def _shape(block: Block) -> tuple[bool, str, int]:
    """How the block shows its output: (prompt?, elided where: '', 'end', 'start', lines)."""
    lines = block.body.rstrip("\n").split("\n") if block.body.strip() else []
    prompt = bool(block.fenced and lines and lines[0].startswith("$ "))
    if prompt:
        lines = lines[1:]
    if block.fenced and lines and lines[-1] == ELIDED:
        return prompt, "end", len(lines) - 1
    if block.fenced and lines and lines[0] == ELIDED:
        return prompt, "start", len(lines) - 1
    return prompt, "", len(lines)


def render(block: Block, output: str) -> str:
    """The body this block should have, given its command's fresh output."""
    prompt, elided, n = _shape(block)
    lines = clean(output)
    if elided == "end":
        lines = [*lines[:n], ELIDED]
    elif elided == "start":
        lines = [ELIDED, *lines[-n:]]
    if prompt:
        lines = [f"$ {block.command}", *lines]
    return "\n".join(lines) + "\n"


def comparable(body: str) -> list[str]:
    return _mask_timing_columns(clean(body))


def differs(block: Block, output: str) -> bool:
    return comparable(render(block, output)) != comparable(block.body)


def regenerate(page: Path, check: bool = False) -> list[str]:
    """Rewrite the page's marked blocks (or, with ``check``, only list those that differ)."""
    text = page.read_text()
    stale, pieces, at = [], [], 0
    for block in marked_blocks(text):
        output = run(block.command, text, block.start)
        if differs(block, output):  # a block that still matches keeps its text (timings)
            stale.append(f"{page.relative_to(ROOT)}:{block.line}: {block.command}")
            pieces += [text[at : block.start], render(block, output)]
            at = block.end
    if not check and stale:
        page.write_text("".join(pieces) + text[at:])
    return stale


# --- notebooks ---------------------------------------------------------------------------

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
KERNEL = "gradchain-under-test"


def kernel_spec_manager(directory: Path):
    """A KernelSpecManager that knows one kernel: this interpreter, this checkout's gradchain
    first on the path (whatever ``python3`` a Jupyter install would pick)."""
    import json

    from jupyter_client import kernelspec

    spec_dir = directory / KERNEL
    spec_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYTHONHASHSEED": "0",
    }
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "gradchain",
        "language": "python",
        "env": env,
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return kernelspec.KernelSpecManager(kernel_dirs=[str(directory)])


def execute_notebook(path: Path, specs, workdir: Path):
    """A fresh execution of the notebook at ``path`` (nothing is written to the repo)."""
    import nbclient
    import nbformat
    from jupyter_client import manager

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    km = manager.KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)
    client = nbclient.NotebookClient(
        nb, km=km, timeout=180, allow_errors=False, resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    return nb


# Notebook lines that report a run time.
NOTEBOOK_TIMING = [re.compile(r"^ran in [\d.]+ s$")]
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def comparable_outputs(nb) -> list[tuple[int, str]]:
    """(cell index, text) of every text output: stdout streams and text/plain results, with
    timing lines dropped and object addresses (``at 0x7f...``) masked. Images and stderr
    (warnings, which vary with the platform) are left out."""
    shown = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        text = ""  # a stream may arrive in chunks that split a line: join them as they came
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                text += out["text"]
            elif out.get("output_type") in ("execute_result", "display_data"):
                if "image/png" not in out.get("data", {}):
                    result = out.get("data", {}).get("text/plain", "")
                    text += ("\n" if text and not text.endswith("\n") else "") + result + "\n"
        lines = text.splitlines()
        lines = [ln.rstrip() for ln in lines if not any(p.match(ln) for p in NOTEBOOK_TIMING)]
        text = re.sub(r" at 0x[0-9a-f]+", " at 0x...", "\n".join(lines))
        if text:
            shown.append((i, text))
    return shown


def save_notebook_outputs(paths: list[Path]) -> None:
    import tempfile

    import nbformat

    with tempfile.TemporaryDirectory() as tmp:
        specs = kernel_spec_manager(Path(tmp) / "kernels")
        for path in paths:
            nb = execute_notebook(path, specs, Path(tmp))
            nb.metadata["kernelspec"] = {
                "name": "python3",
                "display_name": "Python 3",
                "language": "python",
            }
            nbformat.write(nb, path)
            print(f"executed and saved {path.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pages", nargs="*", help="pages to regenerate (default: all)")
    parser.add_argument("--check", action="store_true", help="only list the stale blocks")
    parser.add_argument(
        "--notebooks", action="store_true", help="also execute the notebooks and save outputs"
    )
    args = parser.parse_args(argv)
    pages = [Path(p).resolve() for p in args.pages] or PAGES
    stale = [s for page in pages if page.suffix == ".md" for s in regenerate(page, args.check)]
    for s in stale:
        print(("stale: " if args.check else "rewrote: ") + s)
    if args.notebooks:
        save_notebook_outputs([p for p in pages if p.suffix == ".ipynb"] or NOTEBOOKS)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
