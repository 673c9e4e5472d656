"""Optax's own alias suite (optax/_src/alias_test.py, from the installed optax) run against
gradchain: every optimizer name the suite asks ``optax._src.alias`` for is replaced by
``gradchain.<name>`` where gradchain has that name; the rest stay Optax's (and are reported as
not found). Prints which optimizers were found and, per optimizer, how many test cases pass,
how many the suite skips (its own rules, which skip Optax's optimizer too: complex params for
the optimizers it lists, Rosenbrock for sign_sgd/signum, convergence without a learning rate
for adadelta/adafactor), how many fail, and how many fail as an expected, documented
difference (``EXPECTED`` below: each with its reason and the error it must fail with; any
other failure of that case still counts as a failure).

    .venv/bin/python benchmarks/optax_alias_suite.py [-k PYTEST_EXPRESSION]

The whole suite takes ~11 minutes on 2 cores; ``-k`` selects cases by their test names
(``test_optimization84``: the suite numbers each test's parameter product in order).

scikit-learn is imported by the suite only for its L-BFGS logistic-regression checks; when it
is not installed a stand-in module is used and those few tests fail at their first use of it
(they are listed under "lbfgs").
"""

from __future__ import annotations

import collections
import pathlib
import re
import sys
import types

import optax
import pytest

import gradchain


def _stand_in_sklearn() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError:

        def missing(*args, **kwargs):
            raise RuntimeError("scikit-learn is not installed")

        sk = types.ModuleType("sklearn")
        sk.datasets = types.SimpleNamespace(make_classification=missing)
        sk.linear_model = types.SimpleNamespace(LogisticRegression=missing)
        sys.modules["sklearn"] = sk


# (optimizer, test) -> (the error text the case must fail with, why: the documented difference)
EXPECTED = {
    ("sgd", "test_explicit_dtype"): (
        "'NoneType' object has no attribute 'dtype'",
        "the suite reads sgd's velocity as optax.tree.get(state, 'trace'); gradchain's slot is "
        "'mu' (docs/coming_from_optax.md). The dtype it checks is checked here under 'mu'",
    ),
    ("polyak_sgd", "test_gradient_accumulation"): (
        "needs the objective's value",
        "optax.MultiSteps passes extra arguments (value) only to Optax's own "
        "GradientTransformationExtraArgs class; gradchain.MultiSteps passes it on (polyak_sgd's "
        "docstring; tests/test_line_search.py)",
    ),
    ("polyak_sgd", "test_optimizers_can_be_wrapped_in_inject_hyperparams"): (
        "needs the objective's value",
        "optax.inject_hyperparams drops value on the way to a gradchain transform, as "
        "optax.MultiSteps does; gradchain.inject_hyperparams passes it on",
    ),
}
_RANK = {"passed": 0, "skipped": 1, "failed": 2}  # a case is its worst subtest


class _Recorder:
    def __init__(self):
        self.outcomes: dict[str, str] = {}  # nodeid -> worst outcome over its subtests
        self.errors: dict[str, list[str]] = collections.defaultdict(list)

    @staticmethod
    def _optimizer(item) -> str:
        params = getattr(getattr(item, "obj", None), "__x_params_repr__", "") or ""
        found = re.search(r"opt_name['\"]?\s*[:=]\s*['\"](\w+)", params)
        if found:  # test_explicit_dtype's 'sgd_mom' is alias.sgd(momentum=...)
            return "sgd" if found.group(1) == "sgd_mom" else found.group(1)
        return "lbfgs" if "Lbfgs" in item.nodeid or "lbfgs" in item.nodeid.lower() else "other"

    def pytest_collection_modifyitems(self, items):
        self.names = {item.nodeid: self._optimizer(item) for item in items}

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            before = self.outcomes.get(report.nodeid, "passed")
            self.outcomes[report.nodeid] = max(before, report.outcome, key=_RANK.__getitem__)
            if report.outcome == "failed":
                self.errors[report.nodeid].append(str(report.longrepr))

    def _outcome(self, nodeid: str) -> str:
        outcome = self.outcomes[nodeid]
        test = re.sub(r"\d+$", "", nodeid.split("::")[-1])
        expected = EXPECTED.get((self.names.get(nodeid), test))
        if outcome == "failed" and expected:
            if all(expected[0] in error for error in self.errors[nodeid]):
                return "expected"
        return outcome

    @property
    def results(self) -> dict[str, list[tuple[str, str]]]:
        by_name = collections.defaultdict(list)
        for nodeid in self.outcomes:
            test = nodeid.split("::")[-1]
            by_name[self.names.get(nodeid, "other")].append((test, self._outcome(nodeid)))
        return by_name


def _sgd_velocity_dtypes_under_mu() -> tuple[int, int]:
    """test_explicit_dtype's check of sgd(momentum=0.9, accumulator_dtype=...), reading the
    velocity under gradchain's slot name 'mu': (cases right, cases)."""
    import jax
    import jax.numpy as jnp

    names = ("bfloat16", "float32", "complex64", None)
    right = 0
    for params_dtype in names:
        for state_dtype in names:
            opt = gradchain.sgd(0.1, momentum=0.9, accumulator_dtype=state_dtype)
            dtype = jax.dtypes.canonicalize_dtype(params_dtype)
            state = opt.init(jnp.array([0.0, 0.0], dtype=dtype))
            want = dtype if state_dtype is None else jax.dtypes.canonicalize_dtype(state_dtype)
            right += optax.tree.get(state, "mu").dtype == want
    return right, len(names) ** 2


def main(argv: list[str]) -> int:
    _stand_in_sklearn()
    import optax._src.alias as alias
    from optax._src import alias_test

    wanted = sorted({case["opt_name"] for case in alias_test._OPTIMIZERS_UNDER_TEST})
    found = [n for n in wanted if hasattr(gradchain, n)]
    for name in found:
        setattr(alias, name, getattr(gradchain, name))
    missing = [n for n in wanted if n not in found]
    print(
        f"optax {optax.__version__}: the suite's optimizers: {len(wanted)}; found in gradchain: "
        f"{len(found)}"
    )
    print("  not found (run as Optax's own):", ", ".join(missing) or "none")

    recorder = _Recorder()
    path = pathlib.Path(alias_test.__file__)
    args = [
        str(path),
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "--rootdir",
        str(path.parent),
        "-c",
        "/dev/null",
        "-o",
        "addopts=",
        *argv,
    ]
    pytest.main(args, plugins=[recorder])

    print(
        "\nper optimizer (gradchain's where found): passed, skipped by the suite, expected "
        "(documented difference), failed / total"
    )
    results = recorder.results
    kinds = ("passed", "skipped", "expected", "failed")
    for name in sorted(results):
        rows = results[name]
        count = {k: sum(o == k for _, o in rows) for k in kinds}
        tag = "gradchain" if name in found else "optax"
        failing = sorted({re.sub(r"\d+$", "", t) for t, o in rows if o == "failed"})
        print(
            f"  {name:28s} {tag:9s} "
            + " ".join(f"{count[k]:3d}" for k in kinds)
            + f" / {len(rows):3d}   "
            + (f"failing: {', '.join(failing)}" if failing else "")
        )
    ours = [o for n in found for _, o in results.get(n, [])]
    print(
        f"\ngradchain's optimizers: {len(ours)} test cases: "
        + ", ".join(f"{sum(o == k for o in ours)} {k}" for k in kinds)
    )
    seen = {
        (n, re.sub(r"\d+$", "", t)) for n in found for t, o in results.get(n, []) if o == "expected"
    }
    for key in sorted(seen):
        print(f"  expected, {key[0]} {key[1]}: {EXPECTED[key][1]}")
    if ("sgd", "test_explicit_dtype") in seen:
        right, total = _sgd_velocity_dtypes_under_mu()
        print(f"  sgd's velocity dtype, read under 'mu': {right} of {total} as the suite expects")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
