"""Optax's own alias suite (optax/_src/alias_test.py, from the installed optax) run against
gradchain: every optimizer name the suite asks ``optax._src.alias`` for is replaced by
``gradchain.<name>`` where gradchain has that name; the rest stay Optax's (and are reported as
not found). Prints which optimizers were found, and how many test cases pass, per optimizer.

    .venv/bin/python benchmarks/optax_alias_suite.py [-k PYTEST_EXPRESSION]

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


class _Recorder:
    def __init__(self):
        self.outcomes: dict[str, str] = {}  # nodeid -> outcome; a failed subtest fails it

    @staticmethod
    def _optimizer(item) -> str:
        params = getattr(getattr(item, "obj", None), "__x_params_repr__", "") or ""
        found = re.search(r"opt_name['\"]?\s*[:=]\s*['\"](\w+)", params)
        if found:
            return found.group(1)
        return "lbfgs" if "Lbfgs" in item.nodeid or "lbfgs" in item.nodeid.lower() else "other"

    def pytest_collection_modifyitems(self, items):
        self.names = {item.nodeid: self._optimizer(item) for item in items}

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":
            if self.outcomes.get(report.nodeid, "passed") == "passed":
                self.outcomes[report.nodeid] = report.outcome

    @property
    def results(self) -> dict[str, list[tuple[str, str]]]:
        by_name = collections.defaultdict(list)
        for nodeid, outcome in self.outcomes.items():
            by_name[self.names.get(nodeid, "other")].append((nodeid.split("::")[-1], outcome))
        return by_name


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

    print("\nper optimizer (gradchain's where found): passed / total")
    results = recorder.results
    for name in sorted(results):
        rows = results[name]
        ok = sum(outcome == "passed" for _, outcome in rows)
        tag = "gradchain" if name in found else "optax"
        failing = sorted({re.sub(r"\d+$", "", t) for t, o in rows if o != "passed"})
        print(
            f"  {name:28s} {tag:9s} {ok:3d} / {len(rows):3d}   "
            + (f"failing: {', '.join(failing)}" if failing else "")
        )
    ours = [o for n in found for _, o in results.get(n, [])]
    print(
        f"\ngradchain's optimizers: {sum(o == 'passed' for o in ours)} of {len(ours)} test "
        "cases pass"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
