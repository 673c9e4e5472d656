"""Every notebook in notebooks/ runs top to bottom without an error (the teaching path is CI).

The kernel is this test's own interpreter (a kernelspec written to a temporary directory),
so the notebooks see the gradchain under test, not whatever ``python3`` a Jupyter install
would pick. Each runs in a temporary working directory: nothing is written to the repo.
"""

import json
import os
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest
from jupyter_client import kernelspec, manager

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
KERNEL = "gradchain-under-test"


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory):
    """A KernelSpecManager that knows one kernel: this interpreter, gradchain importable."""
    kernels = tmp_path_factory.mktemp("kernels")
    spec_dir = kernels / KERNEL
    spec_dir.mkdir()
    env = {
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "gradchain (tests)",
        "language": "python",
        "env": env,
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return kernelspec.KernelSpecManager(kernel_dirs=[str(kernels)])


def test_the_teaching_path_has_six_notebooks_in_order():
    names = [p.name[:2] for p in NOTEBOOKS]
    assert names == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, kernel_specs, tmp_path):
    nb = nbformat.read(path, as_version=4)
    # Committed without outputs: the repository holds the lesson, not a stale run of it.
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert all(c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    km = manager.KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_specs)
    client = nbclient.NotebookClient(
        nb,
        km=km,
        timeout=180,
        allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    images = sum(
        "image/png" in out.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for out in c.outputs
    )
    assert images >= 1, "every notebook in the teaching path draws at least one plot"
