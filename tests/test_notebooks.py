"""Every notebook in notebooks/ runs top to bottom without an error (the teaching path is CI),
and prints what it shows: the notebooks are committed with their outputs, and a fresh run's
text outputs must match the stored ones.

The kernel is this test's own interpreter (a kernelspec written to a temporary directory),
so the notebooks see the gradchain under test, not whatever ``python3`` a Jupyter install
would pick. Each runs in a temporary working directory: nothing is written to the repo.
Compared: every stdout stream and text result (``docs/regenerate.py``'s
``comparable_outputs``). Words must be equal; numbers equal within a relative ``RTOL``
(printed numbers are already rounded, so a fresh run on this machine prints the same digits;
the tolerance leaves room for another CPU's float32 rounding in the last printed digit).
Timing lines (``ran in 31.9 s``) are left out by name; images and stderr are not compared.
After a change that moves a number: ``python docs/regenerate.py --notebooks``.
"""

import importlib.util
import math

import nbformat
import pytest

from tests.test_docs_outputs import ROOT

_spec = importlib.util.spec_from_file_location("regenerate", ROOT / "docs" / "regenerate.py")
regenerate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(regenerate)

NOTEBOOKS = regenerate.NOTEBOOKS
RTOL = 1e-6


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory):
    return regenerate.kernel_spec_manager(tmp_path_factory.mktemp("kernels"))


def test_the_teaching_path_has_six_notebooks_in_order():
    names = [p.name[:2] for p in NOTEBOOKS]
    assert names == ["01", "02", "03", "04", "05", "06"]


def _same(shown: str, fresh: str) -> bool:
    """Equal words, and numbers equal within RTOL."""
    split = regenerate.NUMBER.split
    if split(shown) != split(fresh):
        return False
    a, b = regenerate.NUMBER.findall(shown), regenerate.NUMBER.findall(fresh)
    return len(a) == len(b) and all(
        x == y or math.isclose(float(x), float(y), rel_tol=RTOL) for x, y in zip(a, b)
    )


def test_numbers_are_compared_within_the_tolerance_and_words_exactly():
    assert _same("loss 4.81e-26 in 367 steps", "loss 4.81e-26 in 367 steps")
    assert not _same("loss 4.81e-26 in 367 steps", "loss 4.82e-26 in 367 steps")
    assert not _same("reaches 0.1", "misses 0.1")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_prints_what_it_shows(path, kernel_specs, tmp_path):
    stored = nbformat.read(path, as_version=4)
    shown = regenerate.comparable_outputs(stored)
    assert shown, f"{path.name} is committed without outputs: python docs/regenerate.py --notebooks"
    nb = regenerate.execute_notebook(path, kernel_specs, tmp_path)  # raises on any error
    fresh = regenerate.comparable_outputs(nb)
    assert [i for i, _ in fresh] == [i for i, _ in shown], "cells with output differ"
    for (i, want), (_, got) in zip(shown, fresh):
        assert _same(want, got), f"{path.name}, cell {i}: shows\n{want}\nprints\n{got}"
    images = sum(
        "image/png" in out.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for out in c.outputs
    )
    assert images >= 1, "every notebook in the teaching path draws at least one plot"
