"""Every file of this repository that the README, the docs and the library's docstrings
name exists: a module or test
file moved or renamed turns the sentence naming it false, and nothing else would notice.

A path counts as ours when it starts with one of our top-level folders. Under ``examples/``
and ``docs/`` only ``.py`` and ``.md`` files are checked: the pages also name files and
folders of Optax's repository (``examples/lbfgs.ipynb``, ``examples/contrib``) when they report
on Optax's examples. A path cut short by a placeholder (``tests/test_<family>.py`` reads as
``tests/test_``) must begin at least one file's name.
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SOURCES = sorted((ROOT / "gradchain").rglob("*.py"))  # docstrings are docs too
PATH = re.compile(r"(?<![\w/.])((?:tests|gradchain|benchmarks|notebooks|examples|docs|\.ci)/[\w/.\-]*\w)")


def named_paths(text):
    for found in sorted(set(PATH.findall(text))):
        top, _, rest = found.partition("/")
        if top in ("examples", "docs") and pathlib.PurePath(rest).suffix not in (".py", ".md"):
            continue  # a file or folder of Optax's repository, reported on
        yield found


def exists(path):
    if (ROOT / path).exists():
        return True
    folder, _, stem = path.rpartition("/")
    return not pathlib.PurePath(stem).suffix and any((ROOT / folder).glob(stem + "*"))


def test_the_pattern_finds_paths_and_leaves_optaxs_alone():
    text = "see `tests/test_base.py`, `gradchain/base.py` and Optax's `examples/lbfgs.ipynb`"
    assert list(named_paths(text)) == ["gradchain/base.py", "tests/test_base.py"]
    assert not exists("tests/test_no_such_file.py") and exists("tests/test_")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_path_a_page_names_exists(page):
    missing = [p for p in named_paths(page.read_text()) if not exists(p)]
    assert not missing, f"{page.name} names files that do not exist: {missing}"


def test_every_path_the_library_names_exists():
    missing = {
        str(source.relative_to(ROOT)): gone
        for source in SOURCES
        if (gone := [p for p in named_paths(source.read_text()) if not exists(p)])
    }
    assert not missing, f"the library names files that do not exist: {missing}"
