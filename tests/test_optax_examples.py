"""Optax's own docstring examples with ``import gradchain as optax`` (issue 24): every ``>>>``
example in the docstrings of the installed Optax's public objects, found and run at test
time by ``benchmarks/optax_examples.py`` (nothing of Optax's is kept in the repository) the way
Optax's ``make doctest`` runs them. Every example that passes with Optax (the Optax run,
cached per Optax version in ``benchmarks/results/optax_examples_optax.json``) must pass with
gradchain -- doctest's own comparison of the printed output -- except the cases listed, with
their reasons, in ``EXPECTED``; the notebooks and docs pages run in the benchmark only.

Measured: 16 s on 2 cores, 45 s when other jobs share them (the Optax run, when the cache
is stale, about as long again).
"""

import doctest

import jax.numpy as jnp
import optax
import pytest

import gradchain
from benchmarks import optax_examples


def test_the_rewriting_imports_gradchain_for_every_public_optax_module():
    source = "\n".join([
        "import optax",
        "  import optax as o  # indented, aliased",
        "import optax.tree",
        "from optax import contrib, tree_utils as otu",
        "from optax.schedules import linear_schedule",
        "from optax._src import base",
        "x = optax.adam(1e-3)  # not an import: unchanged",
        "import jax.numpy as jnp, optax  # a list (optax.losses.triplet_margin_loss)",
        "import optax._src.alias, optaxish",
    ])  # fmt: skip
    assert optax_examples.rewrite(source).split("\n") == [
        "import gradchain as optax",
        "  import gradchain as o  # indented, aliased",
        "import gradchain.tree, gradchain as optax",
        "from gradchain import contrib, tree_utils as otu",
        "from gradchain.schedules import linear_schedule",
        "from optax._src import base",  # Optax's private modules stay Optax's
        "x = optax.adam(1e-3)  # not an import: unchanged",
        "import jax.numpy as jnp, gradchain as optax  # a list (optax.losses.triplet_margin_loss)",
        "import optax._src.alias, optaxish",  # private, and another package
    ]


def _doctest(text: str) -> doctest.DocTest:
    return doctest.DocTestParser().get_doctest(text, {}, "example", "example", 0)


def test_the_harness_tells_same_output_from_other_output_from_an_error():
    names = _doctest(">>> import optax\n>>> print(optax.__name__)\noptax\n")
    assert optax_examples.run_doctest(names, "optax")["outcome"] == "same"
    other = optax_examples.run_doctest(names, "gradchain")  # prints "gradchain"
    assert other["outcome"] == "runs" and "got 'gradchain'" in other["why"]
    missing = _doctest(">>> optax.no_such_name\n")
    failed = optax_examples.run_doctest(missing, "gradchain")
    assert failed["outcome"] == "fails" and "no_such_name" in failed["why"]
    # the globals of Optax's docs (optax, jax, jnp) and its flags (ELLIPSIS here)
    numbers = _doctest(
        ">>> jnp.arange(3.0) * optax.tree.norm(jnp.ones(4))\nArray([0., 2., 4.], ...)\n"
    )
    assert optax_examples.run_doctest(numbers, "gradchain")["outcome"] == "same"


def test_notebook_outputs_are_compared_loosely_but_words_and_integers_exactly():
    same = optax_examples.compare_outputs
    # a float32 difference that flips the last printed digit (Optax's freezing notebook)
    optax_run = [(5, "Step 100  loss=10.1001  param0=0.0001\nStep 150  param0=0.0274")]
    ours = [(5, "Step 100  loss=10.1000  param0=0.0000\nStep 150  param0=0.0273")]
    assert same(optax_run, ours)[0] == "same"
    assert same([(1, "loss 1.00012345")], [(1, "loss 1.00002345")])[0] == "same"  # 1e-4
    assert same([(1, "x=0.0003")], [(1, "x=0.0001")])[0] == "runs"  # two units apart
    assert same([(1, "Step 100")], [(1, "Step 101")])[0] == "runs"  # an integer: exactly
    assert same([(1, "loss 1.0")], [(1, "cost 1.0")])[0] == "runs"  # other words
    assert same([(1, "a")], [(2, "a")])[0] == "runs"  # another cell prints


def test_docstring_examples_are_found_in_every_public_namespace():
    cases = optax_examples.docstring_cases()
    spaces = {space for space, _ in cases.values()}
    assert {"optax", "optax.contrib", "optax.schedules", "optax.transforms", "optax.tree"} <= spaces
    assert "optax.adam" in cases and "optax.contrib.dog" in cases and "optax.tree.get" in cases
    assert len(cases) >= 80  # 88 in Optax 0.2.8


@pytest.fixture(scope="module")
def results():
    return optax_examples.run_docstrings_against_gradchain()


def test_optax_docstring_examples_pass_against_gradchain_except_the_expected(results):
    counted = [c for c, row in results.items() if optax_examples.passes_with_optax(row)]
    assert len(counted) >= 80, "the Optax run passes fewer examples than it should: refresh it"
    surprises = optax_examples.unexpected(results)
    assert not surprises, "\n".join(f"{case}: {why}" for case, why in surprises.items())
    failing = set(optax_examples.failures(results))
    stale = [c for c in optax_examples.EXPECTED if c in results and c not in failing]
    assert not stale, f"listed in EXPECTED but passing now: remove them: {stale}"


def test_the_examples_fixed_for_this_stay_fixed(results):
    # each failed before its fix: Optax's monitor (an EMA of a boolean), named_chain (Python
    # float leaves), safe_increment (the name)
    fixed = ("optax.transforms.monitor", "optax.transforms.named_chain", "optax.safe_increment")
    for case in fixed:
        assert results[case]["gradchain"]["outcome"] == "same", results[case]["gradchain"]
    assert gradchain.safe_increment(jnp.int32(1)) == 2 and optax.safe_increment(jnp.int32(1)) == 2
