"""Optax's own test files run against gradchain (issue 24).

At run time each selected test file of the installed Optax is copied into a temporary folder
(never into the repository) and its Optax imports are rewritten to go through a *shim*: a
module object that stands for an Optax module and answers attribute look-ups itself.

- A *public* Optax name -- an object that Optax exports as ``optax.X``, ``optax.tree.X`` /
  ``optax.tree_utils.X``, ``optax.contrib.X``, ``optax.schedules.X`` or ``optax.transforms.X``
  -- resolves to gradchain's object of the same name (``gradchain.X``, ``gradchain.tree.X``,
  ``gradchain.contrib.X``, ``gradchain.schedules.X``, ``gradchain.X``), however the test
  reaches it: ``optax.sgd``, ``alias.sgd`` after ``from optax._src import alias``, or
  ``_masking.masked`` after ``from optax.transforms import _masking``. Where gradchain has no
  such name, Optax's object is used and the name is recorded as missing.
- Everything else -- private helpers (``_masking._mask_callable``), and the modules
  ``optax._src.test_utils``, ``optax._src.numerics`` and ``optax._src.alias_test`` whole --
  stays Optax's.

Each file runs in its own pytest process. The same rewriting with every name pointing back at
Optax (the A/A run) gives the cases Optax itself passes; those are cached, per Optax version,
in ``benchmarks/results/optax_suite_optax.json`` and are the denominator. A case counts for
gradchain when it passes without touching a missing name (a case that passes only because
Optax's object stood in counts as failed, "missing name"); a failure is classified by the
missing names it touched, else by its error.

    .venv/bin/python benchmarks/optax_suite.py                  # all files, table + JSON
    .venv/bin/python benchmarks/optax_suite.py --files transforms/_adding_test.py
    .venv/bin/python benchmarks/optax_suite.py --markdown       # the table for the docs
    .venv/bin/python benchmarks/optax_suite.py --table-only --markdown  # from the last JSON
    .venv/bin/python benchmarks/optax_suite.py --refresh-optax  # redo the A/A run

``EXPECTED`` below (case -> reason) is the one list of known, documented differences; the
same table is in docs/coming_from_optax.md and tests/test_optax_suite.py asserts that every
other case of its subset passes.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import json
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
OPTAX_CACHE = RESULTS / "optax_suite_optax.json"

# The 36 files (paths inside the installed optax package) about transformations, optimizers,
# schedules, wrappers, contrib and tree utilities. Left out: losses, projections,
# perturbations, assignment, numerics, linear algebra, microbatching, experimental, the
# import smoke test, and alias_test (run by benchmarks/optax_alias_suite.py).
FILES = (
    "_src/base_test.py",
    "_src/combine_test.py",
    "_src/factorized_test.py",
    "_src/float64_test.py",
    "_src/linesearch_test.py",
    "_src/lookahead_test.py",
    "_src/sharding_test.py",
    "_src/transform_test.py",
    "_src/update_test.py",
    "_src/utils_test.py",
    "contrib/_common_test.py",
    "contrib/_complex_valued_test.py",
    "contrib/_galore_test.py",
    "contrib/_mechanic_test.py",
    "contrib/_muon_test.py",
    "contrib/_privacy_test.py",
    "contrib/_reduce_on_plateau_test.py",
    "contrib/_sam_test.py",
    "contrib/_schedule_free_test.py",
    "schedules/_inject_test.py",
    "schedules/_join_test.py",
    "schedules/_schedule_test.py",
    "transforms/_accumulation_test.py",
    "transforms/_adding_test.py",
    "transforms/_clipping_test.py",
    "transforms/_combining_test.py",
    "transforms/_conditionality_test.py",
    "transforms/_constraining_test.py",
    "transforms/_freezing_test.py",
    "transforms/_layouts_test.py",
    "transforms/_masking_test.py",
    "transforms/_monitoring_test.py",
    "tree_utils/_casting_test.py",
    "tree_utils/_random_test.py",
    "tree_utils/_state_utils_test.py",
    "tree_utils/_tree_math_test.py",
)

# The subset tests/test_optax_suite.py runs in CI (measured: see that module's docstring).
CI_FILES = (
    "_src/base_test.py",
    "_src/combine_test.py",
    "_src/update_test.py",
    "_src/utils_test.py",
    "contrib/_schedule_free_test.py",
    "schedules/_inject_test.py",
    "schedules/_schedule_test.py",
    "transforms/_adding_test.py",
    "transforms/_combining_test.py",
    "transforms/_conditionality_test.py",
    "transforms/_constraining_test.py",
    "transforms/_freezing_test.py",
    "transforms/_layouts_test.py",
    "transforms/_masking_test.py",
    "transforms/_monitoring_test.py",
    "tree_utils/_casting_test.py",
    "tree_utils/_random_test.py",
    "tree_utils/_state_utils_test.py",
    "tree_utils/_tree_math_test.py",
)

# case ("<file>::<Class>::<test>") -> why it fails against gradchain: a documented difference.
# The one list (tests/test_optax_suite.py checks it; docs/coming_from_optax.md tables it).
_INT_PARAMS = (
    "integer params: gradchain refuses an integer parameter leaf (GradchainError naming it: "
    "keep integer leaves out of the optimizer); Optax adds the update and casts back"
)
_APPLY_IF_FINITE = (
    "after more than max_consecutive_errors non-finite steps in a row Optax applies the "
    "non-finite update; gradchain's apply_if_finite raises (GradchainError; under jit or pmap "
    "a JaxRuntimeError from the callback): the run has diverged"
)
_ADAM_STATE = (
    "reads or builds Adam's state as optax.ScaleByAdamState(count, mu, nu): gradchain's Adam "
    "state is its chain of slots (MomentumState.mu, BiasCorrectState.count, RmsState.nu), so "
    "there is no one class to alias; tree_get(state, 'mu') / 'nu' work on both"
)
_LIVE_STATE = (
    "compares the whole state with Optax's literally: gradchain's named optimizers keep their "
    "hyperparameters in a live state around the transforms' states (AdagradLiveState(..., "
    "inner=(RssState, ...)))"
)
_VERBOSE = (
    "scale_by_zoom_linesearch(verbose=True) prints nothing in gradchain: why a search stopped "
    "is recorded in its state (the decrease and curvature errors, and whether an interval was "
    "found), where a jitted step can read it; Optax's test looks for its printed messages"
)
_MUON_STATE = (
    "reads muon's moment at Optax's position in its state (state[0]['muon'][0][0][1]): "
    "gradchain's muon partitions the leaves into its own two chains, so the positions differ; "
    "tree_get(state, 'mu') reads the moment"
)
_SCHEDULE_REFUSAL = (
    "gradchain refuses a negative transition_steps and an exponential decay_rate of 0 "
    "(GradchainError naming the argument); Optax logs a line and returns a constant schedule"
)
_GALORE_STATE = (
    "reads galore's state at Optax's positions (state[0] as the GaLoreState, its "
    "base_optimizer_state as ScaleByAdamState(mu, nu)): gradchain's galore is a named "
    "optimizer, so its state is GaloreLiveState(count, hyperparams, scheduled, inner) with the "
    "GaLoreState at inner[0], and the base Adam's state is its chain of slots; "
    "tree_get(state, 'projector') / 'mu' read them"
)
_GALORE = "contrib/_galore_test.py::GaLoreTest::"
_ZOOM = "_src/linesearch_test.py::ZoomLinesearchTest::"
_MUON = "contrib/_muon_test.py::MuonTest::test_dim_nums_combinations_"
_EXPONENTIAL = "schedules/_schedule_test.py::ExponentialTest::"
_COMBINING = "transforms/_combining_test.py::ExtraArgsTest::"
_FINITE = "transforms/_conditionality_test.py::ConditionalityTest::test_apply_if_finite_"
EXPECTED: dict[str, str] = {
    _COMBINING + "test_extra_args": _INT_PARAMS,
    _COMBINING + "test_extra_args_positional_params": _INT_PARAMS,
    _FINITE + "sgd": _APPLY_IF_FINITE,
    _FINITE + "sgd_extra_args": _APPLY_IF_FINITE,
    _FINITE + "stateful_sgd": _APPLY_IF_FINITE,
    _FINITE + "pmap": _APPLY_IF_FINITE,
    "transforms/_masking_test.py::MaskedTest::test_masked_state_structure": (
        "reads sgd's velocity as .inner_state[0].trace: gradchain's sgd state is a live state "
        "whose velocity slot is mu (tree_get(state, 'mu'))"
    ),
    "tree_utils/_state_utils_test.py::StateUtilsTest::test_adam": _ADAM_STATE,
    "tree_utils/_state_utils_test.py::StateUtilsTest::test_dict_based_optimizers": _ADAM_STATE,
    "tree_utils/_state_utils_test.py::StateUtilsTest::test_map_non_params_to_none": _ADAM_STATE,
    "tree_utils/_state_utils_test.py::StateUtilsTest::test_tree_get": _ADAM_STATE,
    "tree_utils/_state_utils_test.py::StateUtilsTest::test_tree_get_all_with_path": _ADAM_STATE,
    "tree_utils/_state_utils_test.py::StateUtilsTest::test_tree_set": _ADAM_STATE,
    "tree_utils/_state_utils_test.py::StateUtilsTest::test_map_params_to_none": _LIVE_STATE,
    "tree_utils/_state_utils_test.py::StateUtilsTest::test_inject_hparams": (
        "reads inject_hyperparams(adamw)'s inner_state[0].mu: inner_state is adamw's own state "
        "(Optax's layout), which in gradchain is its live state, whose position 0 is the step "
        "count; the moment is its slot mu (tree_get(state, 'mu'))"
    ),
    "_src/base_test.py::ExtraArgsTest::test_isinstance": (
        "GradientTransformationExtraArgs is GradientTransformation in gradchain (every "
        "transform's update takes **extra), so a transform with a two-argument update is an "
        "instance of it too"
    ),
    "_src/combine_test.py::ExtraArgsTest::test_extra_args": _INT_PARAMS,
    "_src/combine_test.py::ExtraArgsTest::test_extra_args_positional_params": _INT_PARAMS,
    _ZOOM + "test_failure_descent_direction": _VERBOSE,
    _ZOOM + "test_failure_flat_fun": _VERBOSE,
    _ZOOM + "test_failure_too_small_max_stepsize": _VERBOSE,
    "_src/transform_test.py::TransformTest::test_lion_modes_variants": (
        "reads scale_by_lion's state as .mu: gradchain's scale_by_lion is a chain (momentum, "
        "then the sign), so its state is a tuple; tree_get(state, 'mu') reads it"
    ),
    "_src/transform_test.py::TransformTest::test_lion_invalid_mode_raises": (
        "gradchain refuses an unknown mode when scale_by_lion is built (GradchainError naming "
        "mode); Optax's test expects the error only at the first update"
    ),
    "transforms/_accumulation_test.py::AccumulationTest::test_ema_debias": (
        "reads ema's state as .ema: gradchain's ema is a chain (an EMA momentum, then the "
        "bias correction), so its state is a tuple whose moment is the slot mu"
    ),
    "schedules/_inject_test.py::InjectHyperparamsTest::test_hyperparam_default_dtype_bf16": (
        "inject_hyperparams keeps hyperparameters in float32 by default, not in the params' "
        "dtype as Optax does (in bfloat16, b2 = 0.999 rounds to 1.0); hyperparam_dtype= "
        "chooses"
    ),
    **{
        f"_src/utils_test.py::MultiNormalDiagFromLogScaleTest::test_init_successful_broadcast{i}": (
            "checks multi_normal's result against Optax's class MultiNormalDiagFromLogScale, "
            "which Optax does not export (it stays Optax's here): gradchain's multi_normal "
            "returns gradchain.MultiNormalDiagFromLogScale, with the same params, sample and "
            "log_prob"
        )
        for i in range(5)
    },
    **{_GALORE + case: _GALORE_STATE for case in (
        "test_3d_attention_weights_with_dimension_numbers",
        "test_3d_memory_reduction_with_dimension_numbers",
        "test_dimension_numbers_right_projection",
        "test_left_vs_right_projection_state_shapes0",
        "test_left_vs_right_projection_state_shapes1",
        "test_left_vs_right_projection_state_shapes2",
        "test_memory_reduction_vs_full_moments",
        "test_mu_dtype_controls_moment_dtype",
        "test_projector_orthonormality_after_update",
        "test_projector_update_gap_behavior",
        "test_projector_updates_when_gap_is_one",
        "test_rank_is_clipped_to_min_dimension",
    )},
    _MUON + "aol": _MUON_STATE,
    _MUON + "frobenius": _MUON_STATE,
    _MUON + "schatten": _MUON_STATE,
    _EXPONENTIAL + "test_nonvalid_decay_rate0": _SCHEDULE_REFUSAL,
    _EXPONENTIAL + "test_nonvalid_decay_rate1": _SCHEDULE_REFUSAL,
    _EXPONENTIAL + "test_nonvalid_transition_steps0": _SCHEDULE_REFUSAL,
    _EXPONENTIAL + "test_nonvalid_transition_steps1": _SCHEDULE_REFUSAL,
    "schedules/_schedule_test.py::PolynomialTest::test_zero_steps_schedule": _SCHEDULE_REFUSAL,
}  # fmt: skip

# --- the shim ------------------------------------------------------------------------------

TARGET_ENV = "OPTAX_SUITE_TARGET"  # "gradchain" or "optax"
OUT_ENV = "OPTAX_SUITE_OUT"  # where the plugin writes this file's outcomes
KEEP_OPTAX = ("optax._src.test_utils", "optax._src.numerics", "optax._src.alias_test")
# Optax's public namespaces, and where gradchain keeps the same names.
NAMESPACES = {
    "optax": ("gradchain",),
    "optax.tree": ("gradchain.tree",),
    "optax.tree_utils": ("gradchain.tree",),
    "optax.contrib": ("gradchain.contrib",),
    "optax.schedules": ("gradchain.schedules",),
    "optax.transforms": ("gradchain", "gradchain.transforms"),
}
MISSING: collections.Counter = collections.Counter()  # "optax.contrib.dog" -> look-ups
TOUCHED: set[str] = set()  # missing names looked up during the current test
_SHIMS: dict[str, types.ModuleType] = {}
_PUBLIC: dict[int, list[tuple[str, str]]] | None = None


def _public_index() -> dict[int, list[tuple[str, str]]]:
    """id(object) -> every (namespace, name) under which Optax exports it."""
    global _PUBLIC
    if _PUBLIC is None:
        _PUBLIC = collections.defaultdict(list)
        for space in NAMESPACES:
            module = importlib.import_module(space)
            for name in dir(module):
                value = getattr(module, name)
                if name.startswith("_") or isinstance(value, (types.ModuleType, int, float, str)):
                    continue
                _PUBLIC[id(value)].append((space, name))
    return _PUBLIC


def _gradchain_object(space: str, name: str):
    for home in NAMESPACES[space]:
        try:
            module = importlib.import_module(home)
        except ImportError:
            continue
        value = getattr(module, name, None)
        if value is not None and not isinstance(value, types.ModuleType):
            return value
    return None


def resolve(module_name: str, name: str, value):
    """Optax's ``value``, found as ``name`` on the Optax module ``module_name``, or gradchain's
    object of the same public name."""
    if os.environ.get(TARGET_ENV, "gradchain") != "gradchain" or name.startswith("_"):
        return value
    homes = _public_index().get(id(value), [])
    if not homes:
        return value  # a private helper: Optax's
    # the same name first, then the namespace the module belongs to
    homes = sorted(homes, key=lambda h: (h[1] != name, not module_name.startswith(h[0] + ".")))
    for space, public in homes:
        found = _gradchain_object(space, public)
        if found is not None:
            return found
    missing = f"{homes[0][0]}.{homes[0][1]}"
    MISSING[missing] += 1
    TOUCHED.add(missing)
    return value


class _Shim(types.ModuleType):
    """An Optax module whose public names are gradchain's."""

    def __init__(self, real: types.ModuleType):
        super().__init__(real.__name__, real.__doc__)
        object.__setattr__(self, "_real", real)

    def __getattr__(self, name):
        value = getattr(self._real, name)
        if isinstance(value, types.ModuleType) and value.__name__.startswith("optax"):
            return shim(value.__name__)
        return resolve(self._real.__name__, name, value)

    def __dir__(self):
        return dir(self._real)


def shim(module_name: str) -> types.ModuleType:
    """The stand-in for the Optax module ``module_name`` (Optax's own where it is kept)."""
    real = importlib.import_module(module_name)
    if module_name in KEEP_OPTAX:
        return real
    if module_name not in _SHIMS:
        _SHIMS[module_name] = _Shim(real)
    return _SHIMS[module_name]


def imported(package: str, name: str):
    """What ``from <package> import <name>`` gives, through the shim."""
    try:
        return shim(f"{package}.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"{package}.{name}":
            raise  # the module exists but needs something missing
        return getattr(shim(package), name)


_FROM = re.compile(r"^from (optax[\w.]*) import (\w+)(?: as (\w+))?\s*$")
_IMPORT = re.compile(r"^import (optax[\w.]*)(?: as (\w+))?\s*$")


def rewrite(source: str) -> str:
    """The test file with its (top-level) Optax imports going through the shim."""
    lines, done = [], False
    for line in source.splitlines():
        new = None
        if m := _FROM.match(line):
            name = m.group(3) or m.group(2)
            new = f"{name} = _optax_suite.imported({m.group(1)!r}, {m.group(2)!r})"
        elif m := _IMPORT.match(line):
            if m.group(2):
                new = f"{m.group(2)} = _optax_suite.shim({m.group(1)!r})"
            else:
                new = f"import {m.group(1)}; optax = _optax_suite.shim('optax')"
        if new is not None and not done:
            lines.append("import benchmarks.optax_suite as _optax_suite")
            done = True
        lines.append(line if new is None else new)
    return "\n".join(lines) + "\n"


# --- the pytest plugin (loaded in each file's process with -p benchmarks.optax_suite) ------

_RANK = {"passed": 0, "skipped": 1, "failed": 2}
_OUTCOMES: dict[str, str] = {}
_REASONS: dict[str, str] = {}


def _case(nodeid: str) -> str:
    return nodeid  # "<copied file>::<Class>::<test>"; the runner splits off the file


def _reason(report) -> str:
    if TOUCHED:
        return "missing name: " + ", ".join(sorted(TOUCHED))
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    text = text.strip().splitlines()[0] if text.strip() else "?"
    text = re.sub(r"0x[0-9a-f]+", "0x..", text)
    return text[:160]


def pytest_configure(config):
    # optax._src.alias_test (imported by schedules/_schedule_test.py) imports scikit-learn for
    # its L-BFGS checks only: a stand-in lets it import when scikit-learn is not installed.
    from benchmarks.optax_alias_suite import _stand_in_sklearn

    _stand_in_sklearn()


def pytest_runtest_setup(item):
    TOUCHED.clear()


def pytest_runtest_logreport(report):
    case = _case(report.nodeid)
    outcome = report.outcome
    if report.when != "call" and outcome == "passed":
        return
    if TOUCHED and outcome == "passed":
        # it passed with Optax's object standing in for a name gradchain lacks: not ours
        outcome = "failed"
    before = _OUTCOMES.get(case, "passed")
    _OUTCOMES[case] = max(before, outcome, key=_RANK.__getitem__)
    if outcome == "failed" and case not in _REASONS:
        _REASONS[case] = _reason(report)


def pytest_collectreport(report):
    if report.outcome == "failed":
        _REASONS[f"{report.nodeid}::<collection>"] = _reason(report)
        _OUTCOMES[f"{report.nodeid}::<collection>"] = "failed"


def pytest_sessionfinish(session):
    out = os.environ.get(OUT_ENV)
    if out:
        record = {"outcomes": _OUTCOMES, "reasons": _REASONS, "missing": dict(MISSING)}
        pathlib.Path(out).write_text(json.dumps(record, indent=1, sort_keys=True))


# --- the runner ----------------------------------------------------------------------------


def _optax_dir() -> pathlib.Path:
    import optax

    return pathlib.Path(optax.__file__).parent


def run_files(relpaths, target: str, workdir: pathlib.Path, timeout: float = 1800) -> dict:
    """Run Optax test files (rewritten) against ``target`` in one pytest process: per file,
    its outcomes and failure reasons by case ("<Class>::<test>"), and the missing names."""
    copies = {}
    for relpath in relpaths:
        source = (_optax_dir() / relpath).read_text()
        copy = workdir / f"test_{target}__{relpath.replace('/', '__')}"
        copy.write_text(rewrite(source))
        copies[copy.name] = relpath
    out = workdir / f"{target}__{len(copies)}__{next(iter(copies))}.json"
    # --gradchain-root: another checkout's gradchain (e.g. main, for a before/after count);
    # only its package, so the harness (this file) is still this checkout's
    other = os.environ.get("OPTAX_SUITE_GRADCHAIN")
    if other:
        alone = workdir / "_gradchain_only"
        alone.mkdir(exist_ok=True)
        if not (alone / "gradchain").exists():
            (alone / "gradchain").symlink_to(pathlib.Path(other) / "gradchain")
        other = str(alone)
    path = os.pathsep.join(filter(None, [other, str(ROOT)]))
    env = dict(os.environ, PYTHONPATH=path, **{TARGET_ENV: target, OUT_ENV: str(out)})
    env.pop("PYTEST_ADDOPTS", None)
    command = [
        sys.executable, "-m", "pytest", *sorted(copies), "-q", "-p", "no:cacheprovider",
        "-p", "no:randomly", "-p", "benchmarks.optax_suite", "--rootdir", str(workdir),
        "-c", "/dev/null", "-o", "addopts=", "--tb=line", "-W", "ignore",
    ]  # fmt: skip
    started = time.perf_counter()
    records = {r: {"outcomes": {}, "reasons": {}, "missing": {}} for r in relpaths}
    try:
        subprocess.run(command, env=env, cwd=workdir, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        for record in records.values():
            record["reasons"]["<timeout>"] = f"over {timeout}s"
    seconds = round(time.perf_counter() - started, 1)
    raw = (
        json.loads(out.read_text())
        if out.exists()
        else {"outcomes": {}, "reasons": {}, "missing": {}}
    )
    if not out.exists():
        for record in records.values():
            record["reasons"]["<crash>"] = "no results"
    for kind in ("outcomes", "reasons"):
        for nodeid, value in raw[kind].items():
            name, _, case = nodeid.partition("::")
            relpath = copies.get(pathlib.Path(name).name)
            if relpath is not None:
                records[relpath][kind][case] = value
    for relpath in relpaths:
        records[relpath]["missing"] = raw["missing"] if len(relpaths) == 1 else {}
        records[relpath]["seconds"] = seconds if len(relpaths) == 1 else None
    records["<missing>"] = raw["missing"]
    records["<seconds>"] = seconds
    return records


def run_file(relpath: str, target: str, workdir: pathlib.Path, timeout: float = 1800) -> dict:
    """One Optax test file against ``target``, in its own pytest process."""
    return run_files([relpath], target, workdir, timeout)[relpath]


def optax_passes(files, refresh: bool = False, workdir: pathlib.Path | None = None) -> dict:
    """file -> the cases Optax passes under the same rewriting (cached per Optax version)."""
    import optax

    cache = json.loads(OPTAX_CACHE.read_text()) if OPTAX_CACHE.exists() else {}
    if cache.get("optax") != optax.__version__:
        cache = {"optax": optax.__version__, "files": {}}
    todo = [f for f in files if refresh or f not in cache["files"]]
    if todo:
        with tempfile.TemporaryDirectory() as tmp:
            for relpath in todo:
                record = run_file(relpath, "optax", pathlib.Path(workdir or tmp))
                passed = sorted(c for c, o in record["outcomes"].items() if o == "passed")
                cache["files"][relpath] = passed
                print(f"  A/A {relpath}: {len(passed)} pass", file=sys.stderr)
        cache["files"] = dict(sorted(cache["files"].items()))
        OPTAX_CACHE.write_text(json.dumps(cache, indent=1) + "\n")

    def case(name: str) -> str:  # entries written with the copied file's name in front
        head, _, rest = name.partition("::")
        return rest if head.endswith(".py") else name

    return {f: sorted({case(c) for c in cache["files"][f]}) for f in files}


def _gradchain_records(files, one_process: bool):
    with tempfile.TemporaryDirectory() as tmp:
        if one_process:
            records = run_files(list(files), "gradchain", pathlib.Path(tmp))
            for relpath in files:
                records[relpath]["missing"] = records["<missing>"] if relpath == files[0] else {}
                yield relpath, records[relpath]
            return
        for relpath in files:
            yield relpath, run_file(relpath, "gradchain", pathlib.Path(tmp))


def run(files=FILES, refresh_optax: bool = False, one_process: bool = False) -> dict:
    """Run ``files`` against gradchain: per file, Optax's passes, gradchain's passes among
    them, the failures by reason, and the missing names. ``one_process``: all files in one
    pytest process (faster: JAX starts once; used by tests/test_optax_suite.py)."""
    reference = optax_passes(files, refresh_optax)
    report = {"files": {}, "missing": collections.Counter()}
    for relpath, record in _gradchain_records(list(files), one_process):
        outcomes = record["outcomes"]
        failures = {}
        for case in reference[relpath]:
            if outcomes.get(case) == "passed":
                continue
            reason = record["reasons"].get(case)
            if reason is None:
                crashes = [f"{k} {v}" for k, v in record["reasons"].items() if k.startswith("<")]
                reason = outcomes.get(case, "not run: " + "; ".join(crashes))
            failures[case] = reason
        report["files"][relpath] = {
            "optax_passes": len(reference[relpath]),
            "gradchain_passes": len(reference[relpath]) - len(failures),
            "seconds": record.get("seconds"),
            "failures": failures,
        }
        report["missing"].update(record["missing"])
        row = report["files"][relpath]
        print(f"  {relpath}: {row['gradchain_passes']}/{row['optax_passes']}", file=sys.stderr)
    report["missing"] = dict(report["missing"].most_common())
    return report


def unexpected(report: dict) -> dict[str, str]:
    """Failures that are not in ``EXPECTED``: "<file>::<case>" -> reason."""
    return {
        f"{relpath}::{case}": reason
        for relpath, row in report["files"].items()
        for case, reason in row["failures"].items()
        if f"{relpath}::{case}" not in EXPECTED
    }


def _reasons(row: dict) -> collections.Counter:
    return collections.Counter(
        "missing name" if r.startswith("missing name") else r for r in row["failures"].values()
    )


def table(report: dict, markdown: bool = False) -> str:
    rows = report["files"]
    total = [sum(r[k] for r in rows.values()) for k in ("gradchain_passes", "optax_passes")]
    lines = []
    if markdown:
        lines += ["| Optax test file | gradchain passes / Optax passes | remaining failures |",
                  "|---|---:|---|"]  # fmt: skip
    for relpath, row in rows.items():
        reasons = _reasons(row)
        why = "; ".join(f"{n}x {r}" for r, n in reasons.most_common(3))
        if len(reasons) > 3:
            why += f"; {len(reasons) - 3} other reasons"
        count = f"{row['gradchain_passes']} / {row['optax_passes']}"
        if markdown:
            lines.append(f"| `{relpath}` | {count} | {why.replace('|', '/')} |")
        else:
            lines.append(f"{relpath:38s} {count:>11s}  {why}")
    if markdown:
        lines.append(f"| **all {len(rows)} files** | **{total[0]} / {total[1]}** | |")
    else:
        lines.append(f"{'all ' + str(len(rows)) + ' files':38s} {total[0]:>5d} / {total[1]:<5d}")
    if report["missing"]:
        lines.append("")
        lines.append("Missing names (look-ups): " + ", ".join(
            f"{n} ({c})" for n, c in report["missing"].items()))  # fmt: skip
    return "\n".join(lines)


def expected_table() -> str:
    """``EXPECTED`` as a markdown table, grouped by reason (for docs/coming_from_optax.md)."""
    by_reason = collections.defaultdict(list)
    for case, reason in EXPECTED.items():
        by_reason[reason].append(case)
    lines = ["| Optax test cases | why they fail against gradchain |", "|---|---|"]
    for reason, cases in by_reason.items():
        files = collections.defaultdict(list)
        for case in cases:
            relpath, _, test = case.partition("::")
            files[relpath].append(test.split("::")[-1])
        listed = "; ".join(f"`{f}`: {', '.join(sorted(t))}" for f, t in files.items())
        lines.append(f"| {listed} | {reason.replace('|', '/')} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", nargs="*", default=list(FILES))
    parser.add_argument("--ci", action="store_true", help="only the CI subset")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--refresh-optax", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "optax_suite.json"))
    parser.add_argument("--table-only", action="store_true", help="print the table of --out")
    parser.add_argument("--gradchain-root", help="test the gradchain of this checkout instead")
    args = parser.parse_args(argv)
    if args.gradchain_root:
        os.environ["OPTAX_SUITE_GRADCHAIN"] = str(pathlib.Path(args.gradchain_root).resolve())
    files = list(CI_FILES) if args.ci else args.files
    if args.table_only:
        report = json.loads(pathlib.Path(args.out).read_text())
    else:
        report = run(files, args.refresh_optax)
        pathlib.Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(table(report, args.markdown))
    surprises = unexpected(report)
    listed = sum(len(r["failures"]) for r in report["files"].values()) - len(surprises)
    print(f"\n{listed} failures listed in EXPECTED, {len(surprises)} not")
    if args.markdown:
        print("\n" + expected_table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
