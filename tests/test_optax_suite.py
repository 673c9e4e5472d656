"""Optax's own test files against gradchain (issue 24): a fast subset of them
(``benchmarks/optax_suite.py``'s ``CI_FILES``), run in one pytest process through the import
shim. Every case that Optax itself passes under the same rewriting (the A/A run, cached in
``benchmarks/results/optax_suite_optax.json``) must pass, except the cases listed, with their
reasons, in ``EXPECTED`` -- the one list, also tabled in docs/coming_from_optax.md.

Measured: the subset (20 files) takes about 55-90 s on 2 busy cores (the whole 36 files: see
the docs).
"""

import optax

from benchmarks import optax_suite


def test_the_shim_gives_gradchains_public_names_and_keeps_optaxs_private_helpers():
    import gradchain

    alias = optax_suite.shim("optax._src.alias")
    masking = optax_suite.shim("optax.transforms._masking")
    assert alias.adam is gradchain.adam and masking.masked is gradchain.masked
    assert masking._mask_callable is optax.transforms._masking._mask_callable  # private
    assert optax_suite.shim("optax").tree.get is gradchain.tree.get  # optax.tree.get
    assert optax_suite.shim("optax._src.test_utils") is optax._src.test_utils  # kept whole


def test_the_rewriting_routes_every_optax_import_through_the_shim():
    source = "import optax\nfrom optax._src import alias\nfrom optax import tree_utils as otu\n"
    rewritten = optax_suite.rewrite(source)
    assert "_optax_suite.imported('optax._src', 'alias')" in rewritten
    assert "otu = _optax_suite.imported('optax', 'tree_utils')" in rewritten
    assert "optax = _optax_suite.shim('optax')" in rewritten


def test_optax_cases_pass_against_gradchain_except_the_expected():
    files = optax_suite.CI_FILES
    report = optax_suite.run(files, one_process=True)
    assert sum(row["optax_passes"] for row in report["files"].values()) > 0
    surprises = optax_suite.unexpected(report)
    assert not surprises, "\n".join(f"{case}: {why}" for case, why in surprises.items())
    failing = {f"{f}::{c}" for f, row in report["files"].items() for c in row["failures"]}
    stale = [c for c in optax_suite.EXPECTED if c.split("::")[0] in files and c not in failing]
    assert not stale, f"listed in EXPECTED but passing now: remove them: {stale}"
