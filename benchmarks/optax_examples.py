"""Optax's own examples run with ``import gradchain as optax`` (issue 24).

Nothing of Optax's is kept in this repository: the examples are read at run time from

- the docstrings of the installed Optax's public objects (``optax.X``, ``optax.contrib.X``,
  ``optax.tree.X``, ``optax.losses.X``...): every ``>>>`` example, found by ``doctest`` and run
  the way Optax's ``make doctest`` runs them (Sphinx's doctest extension: the globals
  ``optax``, ``jax``, ``jnp``; the flags ELLIPSIS, IGNORE_EXCEPTION_DETAIL and
  DONT_ACCEPT_TRUE_FOR_1, plus each example's own directives);
- a checkout of Optax's repository (``--optax-repo``, default ``$OPTAX_REPO`` or the mirror
  at ``/work/.mirror/google-deepmind+optax/repo``; read with ``git show``, no work tree
  needed): the ``>>>`` blocks of ``docs/*.rst`` and ``docs/api/*.rst``, the ```python blocks
  of ``docs/development.md``, and the notebooks ``docs/getting_started.ipynb``,
  ``examples/*.ipynb`` and ``examples/contrib/*.ipynb``.

Each example runs twice under the same harness: as written (the Optax run, which gives the
denominator: an example that does not run with Optax here does not count), and with its Optax
imports rewritten (``rewrite``): ``import optax`` becomes ``import gradchain as optax``,
``from optax.contrib import x`` becomes ``from gradchain.contrib import x``, and so on for every
public module; ``optax._src`` (Optax's private modules) stays Optax's. A name gradchain lacks
is not filled in from Optax: the example fails on it.

Outcomes per example: ``same`` (doctests: doctest's own comparison passes; notebooks: every
cell runs, and every printed text equals the Optax run's, numbers within ``NOTEBOOK_RTOL``),
``runs`` (no error, but the output differs: the first difference is recorded), ``fails``
(the first error line), ``not runnable here (needs X)`` (a notebook importing a package that
is not installed, e.g. tensorflow_datasets: datasets cannot be downloaded here).

    .venv/bin/python benchmarks/optax_examples.py               # everything, table + JSON
    .venv/bin/python benchmarks/optax_examples.py --docstrings  # only the docstrings (~1 min)
    .venv/bin/python benchmarks/optax_examples.py --markdown    # the table for the docs
    .venv/bin/python benchmarks/optax_examples.py --table-only --markdown  # from the last JSON

``EXPECTED`` below (case -> reason) is the one list of known, documented differences;
tests/test_optax_examples.py runs the docstring examples and asserts that every other one that
passes with Optax passes with gradchain.
"""

from __future__ import annotations

import argparse
import ast
import collections
import contextlib
import copy
import doctest
import importlib
import importlib.util
import io
import json
import math
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
import types

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
OPTAX_CACHE = RESULTS / "optax_examples_optax.json"
DEFAULT_REPO = "/work/.mirror/google-deepmind+optax/repo"

# What Optax's docs/conf.py gives every doctest (doctest_global_setup), and Sphinx's default
# doctest flags (sphinx.ext.doctest: doctest_default_flags).
GLOBAL_SETUP = "import optax\nimport jax\nimport jax.numpy as jnp\n"
SPHINX_FLAGS = doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL | doctest.DONT_ACCEPT_TRUE_FOR_1

# Optax's public namespaces, searched for objects with docstring examples.
NAMESPACES = (
    "optax", "optax.contrib", "optax.schedules", "optax.transforms", "optax.tree",
    "optax.tree_utils", "optax.losses", "optax.projections", "optax.perturbations",
    "optax.assignment", "optax.second_order", "optax.microbatching", "optax.experimental",
)  # fmt: skip

# The namespaces gradchain has (gradchain, .contrib, .losses, .schedules, .transforms, .tree);
# Optax's projections, perturbations, assignment and microbatching are outside its scope.
GRADCHAIN_SPACES = (
    "optax", "optax.contrib", "optax.losses", "optax.schedules", "optax.transforms", "optax.tree",
)  # fmt: skip

# Printed numbers in a notebook are compared with the Optax run's within this relative
# tolerance (loosely: float32 training loops drift in the last printed digits).
NOTEBOOK_RTOL = 1e-3
NOTEBOOK_CELL_TIMEOUT = 600
OUTPUTS_ENV = "OPTAX_EXAMPLES_OUTPUTS"  # a folder (outside the repo) for the printed outputs

# Notebooks that need more than this machine has, besides packages (found by their imports).
NEEDS = {
    "examples/gradient_accumulation_and_microbatching.ipynb": (
        "an accelerator: it times a 12-layer transformer on 16 batches of 32 x 256 tokens "
        "(a cell ran over 10 minutes with Optax on 2 CPU cores)"
    ),
}

# case -> why it fails against gradchain: a documented difference (the one list;
# tests/test_optax_examples.py checks it, docs/coming_from_optax.md tables it).
_LOSSES = (
    "{} is not among gradchain.losses (Optax's most used losses: cross-entropies, L2, Huber, "
    "KL...); keep it from Optax (`import optax` beside `import gradchain`)"
)
_OUTSIDE = "{} is outside gradchain (gradient transformations only); keep it from Optax"
_SCHEDULE_VALUE = (
    "gradchain's schedules return a float32 array that is not weakly typed ({}); Optax's "
    "keep Python's weak type"
)
_ADAM_STATE = (
    "prints Optax's Adam state (ScaleByAdamState(count, mu, nu)); gradchain's Adam state is "
    "its live state around the chain of slots (MomentumState.mu, BiasCorrectState.count, "
    "RmsState.nu): tree_get(state, 'mu') / 'nu' read both"
)
EXPECTED: dict[str, str] = {
    # docstrings
    "optax.centralize": (
        "prints [[-1 0 1]]: gradchain keeps an update's dtype, so the docstring's integer "
        "gradient stays integer; Optax's mean promotes it to float ([[-1. 0. 1.]])"
    ),
    "optax.contrib.momo_adam": (
        "prints f(update) = 0.00029999999 where Optax prints 0.00029999594: gradchain's "
        "first update is -0.01 exactly (the bias-corrected second moment is g**2), Optax's "
        "-0.00999993 (its float32 1 - b2**t is 1.3e-5 off); the later lines agree"
    ),
    "optax.losses.make_fenchel_young_loss": _LOSSES.format("optax.losses.make_fenchel_young_loss"),
    "optax.losses.dice_loss": _LOSSES.format("optax.losses.dice_loss"),
    "optax.losses.ntxent": _LOSSES.format("optax.losses.ntxent"),
    "optax.microbatching.micro_grad": _OUTSIDE.format("optax.microbatching"),
    "optax.microbatching.micro_vmap": _OUTSIDE.format("optax.microbatching"),
    "optax.microbatching.microbatch": _OUTSIDE.format("optax.microbatching"),
    "optax.perturbations.make_perturbed_fun": _OUTSIDE.format("optax.perturbations"),
    "optax.projections.projection_l1_ball": _OUTSIDE.format("optax.projections"),
    "optax.projections.projection_simplex": _OUTSIDE.format("optax.projections"),
    "optax.assignment.hungarian_algorithm": _OUTSIDE.format("optax.assignment"),
    "optax.nnls": _OUTSIDE.format("optax.nnls (a least-squares solver)"),
    "optax.optimistic_adam": (
        "prints 0.795 where Optax prints 0.796: the distance after 256 steps is 0.795496 "
        "here, 0.795507 with Optax (1.3e-5 apart in float32, across the rounding boundary)"
    ),
    "optax.optimistic_adam_v2": (
        "prints 0.795 where Optax prints 0.796: the distance after 256 steps is 0.795496 "
        "here, 0.795507 with Optax (1.3e-5 apart in float32, across the rounding boundary)"
    ),
    "optax.rprop": (
        "each step moves by the step just computed (the paper, torch.optim.Rprop); Optax "
        "0.2.8's rprop emits the previous step's update, so its first update is 0 and its "
        "printed objectives lag ours by one step (gradchain.rprop's docstring)"
    ),
    "optax.schedules.constant_schedule": (
        "schedule_fn(0) is Array(5., dtype=float32): gradchain's constant_schedule returns "
        "a float32 array, Optax's the value itself (5)"
    ),
    "optax.schedules.linear_schedule": _SCHEDULE_VALUE.format("Array(1., dtype=float32)"),
    "optax.schedules.polynomial_schedule": _SCHEDULE_VALUE.format("Array(1., dtype=float32)"),
    "optax.tree.get": (
        "tree_get(adam_state, 'count') raises KeyError: gradchain's Adam state holds two "
        "counts (BiasCorrectState.count, RmsState.count) and a repeated key names its paths "
        "instead of returning the first"
    ),
    "optax.tree.get_all_with_path": (
        "prints gradchain's state path (SgdLiveState.hyperparams['learning_rate']) where "
        "Optax's is InjectStatefulHyperparamsState.hyperparams['learning_rate']: the value is "
        "the same"
    ),
    "optax.tree.set": _ADAM_STATE,
    # docs pages
    "docs/api/projections.rst": _OUTSIDE.format("optax.projections"),
    # notebooks
    "docs/getting_started.ipynb": (
        "its last cell gives adam the schedule built for scale_by_schedule (-0.001 to 0), and "
        "gradchain refuses a negative learning rate; every cell before it runs"
    ),
    "examples/contrib/muon.ipynb": (
        "runs to the end (state.inner_states['muon'] reads gradchain's partition); cell 5 "
        "prints the Muon group's state by gradchain's slots (MomentumState.mu...), 8 lines "
        "where Optax prints 9: the same leaves go to Muon and to Adam"
    ),
    "examples/contrib/rosenbrock_ademamix.ipynb": (
        "runs; the printed objectives differ: gradchain's first Adam step is exactly lr "
        "(f = 1599.2273, as Optax's in float64), Optax's float32 1 - b**t is off by up to "
        "1.7e-4 (f = 1599.2255 to 1599.2281, by b1), and 100,000 float32 steps on Rosenbrock "
        "carry the difference (iteration 75,000: 3.94e-6 vs 3.93e-6; the final points agree "
        "to 2e-4)"
    ),
    "examples/lbfgs.ipynb": (
        "chains a transform written with optax.GradientTransformationExtraArgs(init, update) "
        "(it prints progress) before lbfgs: gradchain's chain refuses an undeclared member "
        "before one that reads the gradient (declare preprocessing=True); with that, every "
        "cell runs"
    ),
    "examples/linear_assignment_problem.ipynb": _OUTSIDE.format("optax.assignment"),
    "examples/perturbations.ipynb": _OUTSIDE.format("optax.perturbations"),
}

# --- the rewriting -------------------------------------------------------------------------

_IMPORT = re.compile(r"^(?P<indent>\s*)import (?P<names>[\w., ]+?)(?P<rest>\s*(?:#.*)?)$")
_FROM = re.compile(r"^(?P<indent>\s*)from (?P<module>optax(?:\.[\w.]+)?) import (?P<names>.*)$")
_ITEM = re.compile(r"^(?P<module>[\w.]+)(?:\s+as\s+(?P<alias>\w+))?$")


def _gradchain_module(module: str) -> str | None:
    """``optax.contrib`` -> ``gradchain.contrib``; None for Optax's private modules."""
    if module == "optax._src" or module.startswith("optax._src."):
        return None
    return "gradchain" + module[len("optax") :]


def _rewrite_item(item: str) -> str:
    """One name of an ``import a, b as c`` statement."""
    m = _ITEM.match(item.strip())
    if m is None or m["module"].split(".")[0] != "optax":
        return item.strip()
    target = _gradchain_module(m["module"])
    if target is None:
        return item.strip()  # Optax's private module: Optax's
    if m["alias"]:
        return f"{target} as {m['alias']}"
    if m["module"] == "optax":
        return "gradchain as optax"
    return f"{target}, gradchain as optax"  # ``import optax.tree`` binds ``optax`` too


def rewrite(source: str) -> str:
    """``source`` with its imports of public Optax modules importing gradchain's instead:
    ``import optax``, ``import jax.numpy as jnp, optax``, ``import optax.tree``, ``from
    optax.contrib import muon``; ``optax._src`` (Optax's private modules) is left alone."""
    lines = []
    for line in source.split("\n"):
        if (m := _IMPORT.match(line)) and "optax" in m["names"]:
            items = ", ".join(_rewrite_item(item) for item in m["names"].split(","))
            line = f"{m['indent']}import {items}{m['rest']}"
        elif m := _FROM.match(line):
            target = _gradchain_module(m["module"])
            if target is not None:
                line = f"{m['indent']}from {target} import {m['names']}"
        lines.append(line)
    return "\n".join(lines)


@contextlib.contextmanager
def _optax_conditions():
    """What an Optax example expects of the process: JAX's standard dtype promotion, and
    jax_enable_x64 and numpy's print options as they were before the example (some
    examples change them)."""
    import jax
    import numpy as np

    x64, printing = jax.config.jax_enable_x64, np.get_printoptions()
    try:
        with jax.numpy_dtype_promotion("standard"):
            yield
    finally:  # and numpy's print options (jnp.set_printoptions(precision=4) in one)
        jax.config.update("jax_enable_x64", x64)
        np.set_printoptions(**printing)


# --- docstring examples --------------------------------------------------------------------


def _namespace_of(obj, found_in: str) -> str:
    """Where Optax documents ``obj``: the public namespace of its defining module (``optax``
    for ``optax._src``), else where it was found."""
    module = getattr(obj, "__module__", None) or ""
    if module == "functools":  # a functools.partial (nadam, nadamw)
        module = getattr(getattr(obj, "func", None), "__module__", "") or ""
    parts = module.split(".")
    if len(parts) > 1 and parts[0] == "optax" and not parts[1].startswith("_"):
        space = f"optax.{parts[1]}"
        return "optax.tree" if space == "optax.tree_utils" else space
    if module.startswith("optax"):
        return "optax"
    return found_in


def docstring_cases() -> dict[str, tuple[str, doctest.DocTest]]:
    """case (``optax.contrib.dog``, ``optax.TransformUpdateExtraArgsFn.__call__``) ->
    (namespace, the DocTest) for every public Optax object whose docstring has examples."""
    finder = doctest.DocTestFinder(recurse=True, exclude_empty=True)
    seen, cases = set(), {}
    for space in NAMESPACES:
        try:
            module = importlib.import_module(space)
        except ImportError:
            continue
        for name in sorted(dir(module)):
            value = getattr(module, name)
            if name.startswith("_") or id(value) in seen:
                continue
            if isinstance(value, (types.ModuleType, int, float, str, bytes, dict, tuple, list)):
                continue
            seen.add(id(value))
            home = _namespace_of(value, space)
            for test in finder.find(value, name=name, globs={}):
                if test.examples:
                    cases[f"{home}.{test.name}"] = (home, test)
    return dict(sorted(cases.items()))


class _FirstProblem(doctest.DocTestRunner):
    """A DocTestRunner that keeps the first problem instead of printing a report."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, verbose=False, **kwargs)
        self.problem: tuple[str, str] | None = None  # (kind, text)

    def report_failure(self, out, test, example, got):
        if self.problem is None:
            want = example.want.strip().splitlines() or [""]
            shown = got.strip().splitlines() or ["(nothing)"]
            for w, g in zip(want + [""] * len(shown), shown + [""] * len(want)):
                if w != g:  # the first line that differs
                    break
            text = f"line {example.lineno + 1}: expected {w.strip()!r}, got {g.strip()!r}"
            self.problem = ("runs", text[:240])

    def report_unexpected_exception(self, out, test, example, exc_info):
        if self.problem is None:
            kind, error = exc_info[0], exc_info[1]
            first = (str(error).strip().splitlines() or [""])[0]
            text = f"line {example.lineno + 1}: {kind.__module__}.{kind.__qualname__}: {first}"
            text = text.replace("builtins.", "")
            self.problem = ("fails", re.sub(r"0x[0-9a-f]+", "0x..", text)[:240])


def run_doctest(test: doctest.DocTest, target: str) -> dict:
    """One docstring's examples, as written (``target="optax"``) or rewritten for gradchain:
    {"outcome": "same" / "runs" / "fails", "why": the first problem}."""
    test = copy.copy(test)
    test.examples = [copy.copy(example) for example in test.examples]
    setup = GLOBAL_SETUP if target == "optax" else rewrite(GLOBAL_SETUP)
    test.globs = {"__name__": "__optax_example__"}
    exec(setup, test.globs)
    if target != "optax":
        for example in test.examples:
            example.source = rewrite(example.source)
    runner = _FirstProblem(optionflags=SPHINX_FLAGS)
    started = time.perf_counter()
    with _optax_conditions(), contextlib.redirect_stdout(io.StringIO()):
        runner.run(test, out=lambda text: None, clear_globs=True)
    seconds = round(time.perf_counter() - started, 2)
    if runner.problem is None:
        return {"outcome": "same", "why": "", "seconds": seconds}
    kind, why = runner.problem
    return {"outcome": kind, "why": why, "seconds": seconds}


def run_docstrings(targets=("optax", "gradchain"), only=None) -> dict:
    """case -> {"source": namespace, "<target>": outcome} for every docstring example."""
    results = {}
    for case, (space, test) in docstring_cases().items():
        if only is not None and case not in only:
            continue
        row = {"source": f"docstrings: {space}", "kind": "doctest"}
        for target in targets:
            row[target] = run_doctest(test, target)
        results[case] = row
        print(f"  {case}: " + ", ".join(row[t]["outcome"] for t in targets), file=sys.stderr)
    return results


def optax_docstring_outcomes(refresh: bool = False) -> dict[str, dict]:
    """case -> the Optax run's outcome of every docstring example: the denominator, cached
    per Optax version in ``OPTAX_CACHE`` (outcomes only; nothing of Optax's text)."""
    import optax

    cache = json.loads(OPTAX_CACHE.read_text()) if OPTAX_CACHE.exists() else {}
    cases = sorted(docstring_cases())
    if refresh or cache.get("optax") != optax.__version__ or sorted(cache["cases"]) != cases:
        results = run_docstrings(targets=("optax",))
        cache = {
            "optax": optax.__version__,
            "cases": {c: {"outcome": r["optax"]["outcome"]} for c, r in results.items()},
        }
        OPTAX_CACHE.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
    return cache["cases"]


def run_docstrings_against_gradchain(refresh_optax: bool = False) -> dict:
    """Every docstring example run against gradchain, with the Optax outcomes from the cache
    (tests/test_optax_examples.py: half the time of running both)."""
    reference = optax_docstring_outcomes(refresh_optax)
    results = run_docstrings(targets=("gradchain",))
    for case, row in results.items():
        row["optax"] = reference.get(case, {"outcome": "not run"})
    return results


# --- Optax's repository: docs pages and notebooks ------------------------------------------


def _git(repo: str, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", repo, *args], capture_output=True, text=True, check=True
    ).stdout


def repo_files(repo: str) -> list[str]:
    return _git(repo, "ls-tree", "-r", "--name-only", "HEAD").splitlines()


def page_cases(repo: str) -> dict[str, tuple[str, object]]:
    """The examples of Optax's documentation pages: each page's ``>>>`` blocks (``.rst``) as
    one DocTest, each ```python block of a ``.md`` page as one script."""
    cases = {}
    parser = doctest.DocTestParser()
    for path in repo_files(repo):
        top = path.startswith("docs/") and path.count("/") == 1
        if not (top or path.startswith("docs/api/")):
            continue
        if path.endswith(".rst"):
            text = _git(repo, "show", f"HEAD:{path}")
            test = parser.get_doctest(text, {}, path, path, 0)
            if test.examples:
                cases[path] = ("docs pages", test)
        elif path.endswith(".md"):
            text = _git(repo, "show", f"HEAD:{path}")
            for i, block in enumerate(re.findall(r"```python\n(.*?)```", text, re.S)):
                cases[f"{path}#{i + 1}"] = ("docs pages", block)
    return cases


def run_script(source: str, target: str) -> dict:
    """A ```python block: runs (``same``) or fails."""
    if target != "optax":
        source = rewrite(source)
    namespace = {"__name__": "__optax_example__"}
    try:
        with _optax_conditions(), contextlib.redirect_stdout(io.StringIO()):
            exec(compile(source, "<block>", "exec"), namespace)
    except Exception as error:  # noqa: BLE001 -- any error is the example's outcome
        first = (str(error).strip().splitlines() or [""])[0]
        return {"outcome": "fails", "why": f"{type(error).__qualname__}: {first}"[:240]}
    return {"outcome": "same", "why": ""}


def run_pages(repo: str, targets=("optax", "gradchain")) -> dict:
    results = {}
    for case, (source, example) in page_cases(repo).items():
        row = {"source": source, "kind": "doctest" if not isinstance(example, str) else "block"}
        for target in targets:
            if isinstance(example, str):
                row[target] = run_script(example, target)
            else:
                row[target] = run_doctest(example, target)
        results[case] = row
        print(f"  {case}: " + ", ".join(row[t]["outcome"] for t in targets), file=sys.stderr)
    return results


def notebook_paths(repo: str) -> list[str]:
    return [
        p for p in repo_files(repo)
        if p == "docs/getting_started.ipynb"
        or (p.startswith("examples/") and p.endswith(".ipynb") and p.count("/") <= 2)
    ]  # fmt: skip


def _imported_packages(sources: list[str]) -> list[str]:
    """The top-level packages a notebook imports (shell lines and magics left out)."""
    found = []
    for source in sources:
        lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("!", "%"))]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in found:
                    found.append(top)
    return found


def notebook_needs(nb) -> list[str]:
    """Packages the notebook imports that are not installed here."""
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    return [p for p in _imported_packages(sources) if importlib.util.find_spec(p) is None]


def _prepared(nb, target: str):
    """The notebook ready to execute: shell lines (``!pip install``) dropped, outputs
    cleared, and, for gradchain, the Optax imports rewritten."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        lines = [ln for ln in cell.source.split("\n") if not ln.lstrip().startswith("!")]
        cell.source = "\n".join(lines)
        if target != "optax":
            cell.source = rewrite(cell.source)
        cell.outputs, cell.execution_count = [], None
    return nb


_REGENERATE = None


def _regenerate():
    """docs/regenerate.py: its kernel spec (this interpreter, this checkout's gradchain first
    on the path) and its comparable outputs."""
    global _REGENERATE
    if _REGENERATE is None:
        spec = importlib.util.spec_from_file_location("regenerate", ROOT / "docs" / "regenerate.py")
        _REGENERATE = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_REGENERATE)
    return _REGENERATE


def execute_notebook(nb, target: str, workdir: pathlib.Path, kernels: pathlib.Path) -> dict:
    """Run a notebook top to bottom: {"outcome": "same" (all cells ran) / "fails", "why",
    "outputs": [(cell, text)], "seconds"}."""
    import nbclient
    from jupyter_client import manager

    regenerate = _regenerate()
    specs = regenerate.kernel_spec_manager(kernels)
    nb = _prepared(nb, target)
    km = manager.KernelManager(kernel_name=regenerate.KERNEL, kernel_spec_manager=specs)
    client = nbclient.NotebookClient(
        nb, km=km, timeout=NOTEBOOK_CELL_TIMEOUT, allow_errors=False,
        resources={"metadata": {"path": str(workdir)}},
    )  # fmt: skip
    started = time.perf_counter()
    outcome, why = "same", ""
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        failed = next((i for i, c in enumerate(nb.cells) if _error_of(c)), None)
        text = _error_of(nb.cells[failed]) if failed is not None else str(error).splitlines()[-1]
        outcome, why = "fails", f"cell {failed}: {text}"[:240]
    except Exception as error:  # noqa: BLE001 -- a timeout or a dead kernel
        outcome, why = "fails", f"{type(error).__name__}: {str(error).splitlines()[0]}"[:240]
    finally:  # the client leaves a kernel it did not start running, even after an error
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    seconds = round(time.perf_counter() - started, 1)
    outputs = regenerate.comparable_outputs(nb)
    return {"outcome": outcome, "why": why, "outputs": outputs, "seconds": seconds}


def _error_of(cell) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out['ename']}: {(out['evalue'].splitlines() or [''])[0]}"
    return ""


def _last_place(text: str) -> float:
    """One unit in the last printed digit of a number with a decimal point ("0.0274":
    1e-4, "1.40E+01": 0.1); 0 for an integer, which must print the same."""
    mantissa, _, exponent = text.lower().partition("e")
    if "." not in mantissa:
        return 0.0
    decimals = len(mantissa.split(".")[1])
    return 10.0 ** (int(exponent or 0) - decimals)


def _numbers_close(a: str, b: str, rtol: float) -> tuple[bool, float]:
    """Whether two printed lines agree: the same words, and each pair of numbers within
    ``rtol`` relative or one unit in the last printed digit (a float32 difference that
    flips the rounding of a printed digit, as 0.0273 / 0.0274); and the largest relative
    difference (inf when the words differ)."""
    number = _regenerate().NUMBER
    if number.split(a) != number.split(b):
        return False, math.inf
    xs, ys = number.findall(a), number.findall(b)
    if len(xs) != len(ys):
        return False, math.inf
    close, worst = True, 0.0
    for x, y in zip(xs, ys):
        fx, fy = float(x), float(y)
        if fx == fy:
            continue
        gap = abs(fx - fy)
        worst = max(worst, gap / max(abs(fx), abs(fy)))
        unit = max(_last_place(x), _last_place(y))
        close = close and (gap <= rtol * max(abs(fx), abs(fy)) or gap <= unit * (1 + 1e-9))
    return close, worst


def compare_outputs(reference: list, fresh: list, rtol: float = NOTEBOOK_RTOL) -> tuple[str, str]:
    """("same", "") or ("runs", the first difference) between two runs' printed outputs,
    line by line ("cell N": the notebook's cell N, counting from 0, markdown included)."""
    ref, new = dict((i, t) for i, t in reference), dict((i, t) for i, t in fresh)
    if sorted(ref) != sorted(new):
        return "runs", f"cells with output differ: {sorted(set(ref) ^ set(new))}"
    worst, first = 0.0, None
    for i in sorted(ref):
        a_lines, b_lines = ref[i].splitlines(), new[i].splitlines()
        if len(a_lines) != len(b_lines):
            return "runs", f"cell {i} prints {len(b_lines)} lines (Optax: {len(a_lines)})"
        for a, b in zip(a_lines, b_lines):
            close, rel = _numbers_close(a, b, rtol)
            if rel == math.inf:
                return "runs", f"cell {i} prints other text: {b[:90]!r} (Optax: {a[:90]!r})"
            worst = max(worst, rel)
            if not close and first is None:
                first = f"cell {i}: {b[:70]!r} (Optax: {a[:70]!r})"
    if first is not None:
        return "runs", f"printed numbers up to {worst:.1e} apart (relative); first: {first}"
    return "same", "printed numbers within the tolerance" if worst else ""


def run_notebooks(repo: str, only=None, targets=("optax", "gradchain")) -> dict:
    import nbformat

    results = {}
    for path in notebook_paths(repo):
        if only is not None and path not in only:
            continue
        nb = nbformat.reads(_git(repo, "show", f"HEAD:{path}"), as_version=4)
        row = {"source": "notebooks", "kind": "notebook"}
        needs = notebook_needs(nb) + ([NEEDS[path]] if path in NEEDS else [])
        if needs:
            row["needs"] = needs
            for target in targets:
                row[target] = {"outcome": "not runnable", "why": "needs " + ", ".join(needs)}
            results[path] = row
            print(f"  {path}: not runnable here (needs {', '.join(needs)})", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            for target in targets:
                work = pathlib.Path(tmp) / target
                work.mkdir()
                row[target] = execute_notebook(nb, target, work, pathlib.Path(tmp) / "kernels")
        if "optax" in row and "gradchain" in row and row["gradchain"]["outcome"] == "same":
            if row["optax"]["outcome"] == "same":
                kind, why = compare_outputs(row["optax"]["outputs"], row["gradchain"]["outputs"])
                row["gradchain"]["outcome"], row["gradchain"]["why"] = kind, why
        if OUTPUTS_ENV in os.environ:  # for a closer look: both runs' printed outputs
            folder = pathlib.Path(os.environ[OUTPUTS_ENV])
            folder.mkdir(parents=True, exist_ok=True)
            for target in targets:
                name = f"{path.replace('/', '__')}.{target}.txt"
                text = "\n".join(f"--- cell {i}\n{t}" for i, t in row[target]["outputs"])
                (folder / name).write_text(text + "\n")
        for target in targets:
            row[target].pop("outputs", None)  # the printed outputs stay out of the JSON
        results[path] = row
        print(
            f"  {path}: " + ", ".join(f"{t} {row[t]['outcome']} ({row[t]['seconds']} s)"
                                      for t in targets), file=sys.stderr,
        )  # fmt: skip
    return results


# --- the report ----------------------------------------------------------------------------


def passes_with_optax(row: dict) -> bool:
    return row.get("optax", {}).get("outcome") == "same"


def failures(results: dict) -> dict[str, str]:
    """case -> outcome and reason, for every example that passes with Optax but not with
    gradchain."""
    return {
        case: f"{row['gradchain']['outcome']}: {row['gradchain']['why']}"
        for case, row in results.items()
        if passes_with_optax(row) and row["gradchain"]["outcome"] != "same"
    }


def unexpected(results: dict) -> dict[str, str]:
    return {case: why for case, why in failures(results).items() if case not in EXPECTED}


def table(results: dict, markdown: bool = False) -> str:
    by_source = collections.defaultdict(list)
    for row in results.values():
        by_source[row["source"]].append(row)
    header = ("source", "examples", "run with Optax", "same with gradchain",
              "run with gradchain, output differs", "not runnable here")  # fmt: skip
    rows = []
    for source in sorted(by_source, key=lambda s: (not s.startswith("docstrings"), s)):
        group = by_source[source]
        ok = [r for r in group if passes_with_optax(r)]
        rows.append((
            source, len(group), len(ok),
            sum(r["gradchain"]["outcome"] == "same" for r in ok),
            sum(r["gradchain"]["outcome"] == "runs" for r in ok),
            sum(r["optax"]["outcome"] == "not runnable" for r in group),
        ))  # fmt: skip
    total = ("all", *(sum(r[k] for r in rows) for k in range(1, 6)))
    ours = [r for r in rows if r[0] in {f"docstrings: {s}" for s in GRADCHAIN_SPACES}]
    scope = ("docstrings of the namespaces gradchain has",
             *(sum(r[k] for r in ours) for k in range(1, 6)))  # fmt: skip
    lines = []
    if markdown:
        lines += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
        for r in rows:
            lines.append(f"| {r[0]} | " + " | ".join(str(v) for v in r[1:]) + " |")
        for r in (total, scope):
            lines.append(f"| **{r[0]}** | " + " | ".join(f"**{v}**" for v in r[1:]) + " |")
    else:
        lines.append(f"{'source':44s} {'examples':>8s} {'Optax':>6s} {'same':>5s} "
                     f"{'differs':>7s} {'not runnable':>12s}")  # fmt: skip
        for r in [*rows, total, scope]:
            lines.append(f"{r[0]:44s} {r[1]:8d} {r[2]:6d} {r[3]:5d} {r[4]:7d} {r[5]:12d}")
    return "\n".join(lines)


def details(results: dict, markdown: bool = False) -> str:
    """Every example that does not pass with gradchain (and why), and those that do not run
    with Optax here."""
    lines = []
    for case, row in results.items():
        if passes_with_optax(row):
            if row["gradchain"]["outcome"] != "same":
                note = " (expected)" if case in EXPECTED else ""
                lines.append(f"- `{case}`{note}: {row['gradchain']['outcome']}: "
                             f"{row['gradchain']['why']}")  # fmt: skip
        else:
            lines.append(f"- `{case}`: does not count (Optax: {row['optax']['outcome']}: "
                         f"{row['optax']['why']})")  # fmt: skip
    return "\n".join(lines)


def expected_table() -> str:
    """``EXPECTED`` as a markdown table, grouped by reason (for docs/coming_from_optax.md)."""
    by_reason = collections.defaultdict(list)
    for case, reason in EXPECTED.items():
        by_reason[reason].append(case)
    lines = ["| Optax examples | why they fail against gradchain |", "|---|---|"]
    for reason, cases in by_reason.items():
        listed = ", ".join(f"`{c}`" for c in sorted(cases))
        lines.append(f"| {listed} | {reason.replace('|', '/')} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--optax-repo", default=os.environ.get("OPTAX_REPO", DEFAULT_REPO))
    parser.add_argument("--docstrings", action="store_true", help="only the docstrings")
    parser.add_argument("--notebooks", nargs="*", help="only these notebooks (repo paths)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "optax_examples.json"))
    parser.add_argument("--table-only", action="store_true", help="print the table of --out")
    args = parser.parse_args(argv)
    if args.table_only:
        results = json.loads(pathlib.Path(args.out).read_text())["examples"]
    else:
        import optax

        results = {}
        if args.notebooks is None:
            results.update(run_docstrings())
        have_repo = pathlib.Path(args.optax_repo).exists()
        if not have_repo and not args.docstrings:
            print(f"no Optax repository at {args.optax_repo}: docstrings only", file=sys.stderr)
        if have_repo and not args.docstrings:
            if args.notebooks is None:
                results.update(run_pages(args.optax_repo))
            results.update(run_notebooks(args.optax_repo, only=args.notebooks))
        record = {"optax": optax.__version__, "examples": results}
        if args.notebooks is None:  # the Optax run of the docstrings: the cache too
            cases = {c: {"outcome": r["optax"]["outcome"]} for c, r in results.items()
                     if r["source"].startswith("docstrings")}  # fmt: skip
            cache = {"optax": optax.__version__, "cases": cases}
            OPTAX_CACHE.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
        partial = args.docstrings or args.notebooks is not None
        if not partial or not pathlib.Path(args.out).exists():
            pathlib.Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
        else:  # update these rows in the last full run
            last = json.loads(pathlib.Path(args.out).read_text())
            last["examples"].update(results)
            pathlib.Path(args.out).write_text(json.dumps(last, indent=1) + "\n")
            results = last["examples"]
    print(table(results, args.markdown))
    print()
    print(details(results, args.markdown))
    surprises = unexpected(results)
    listed = len(failures(results)) - len(surprises)
    print(f"\n{listed} failures listed in EXPECTED, {len(surprises)} not")
    if args.markdown:
        print("\n" + expected_table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
