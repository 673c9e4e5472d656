"""The README's first example runs as printed and actually trains."""

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradchain
from tests.conftest import reference_promotion

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_training_example_fits_the_line():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    namespace: dict = {}
    with jax.numpy_dtype_promotion("standard"):  # as a user runs it
        exec(compile(blocks[0], "README.md", "exec"), namespace)
        final = float(namespace["loss"](namespace["params"], namespace["x"], namespace["y"]))
    # Least squares with an exact solution: 500 AdamW steps get within 1e-3 of loss 0.
    assert final < 1e-3


# The README's other blocks run in tests/test_docs_examples.py, with every page of docs/.


def _adam_is_a_chain_block() -> str:
    """The python block under the README's "Adam is a chain" heading."""
    return re.search(r"## Adam is a chain\n\n```python\n(.*?)```", README.read_text(), re.S)[1]


def _run_200_steps(opt, dtype):
    rng = np.random.default_rng(0)
    params = {
        "w": jnp.asarray(rng.normal(size=(4, 3)), dtype),
        "b": jnp.asarray(rng.normal(size=3), dtype),
    }
    grads = [
        jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), dtype), params)
        for _ in range(200)
    ]

    @jax.jit
    def step(params, state, g):
        updates, state = opt.update(g, state, params)
        return optax.apply_updates(params, updates), state

    state = opt.init(params)
    for g in grads:
        params, state = step(params, state, g)
    return params


# What the README says of that block: it equals optax.adam(1e-3) over 200 steps of random
# gradients, to 2.4e-7 in float32 and 2.8e-17 in float64 (measured: exactly those numbers,
# 2.384e-7 and 2.776e-17; a block with eps inside the root, the default of scale_by_rms, was
# 5.4e-10 apart in float64 here). Frozen with a margin for XLA's float32 fusion choices.
README_ADAM_TOL = {jnp.float32: 1e-6, jnp.float64: 1e-16}


def test_readme_adam_chain_equals_optax_adam_to_the_stated_tolerance(dtype):
    namespace: dict = {"gradchain": gradchain}
    exec(compile(_adam_is_a_chain_block(), "README.md", "exec"), namespace)
    with reference_promotion():
        ours = _run_200_steps(namespace["adam"], dtype)
        theirs = _run_200_steps(optax.adam(1e-3), dtype)
    pairs = zip(jax.tree.leaves(ours), jax.tree.leaves(theirs))
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in pairs)
    assert diff <= README_ADAM_TOL[dtype]
    stated = {jnp.float32: "2.4e-7 in float32", jnp.float64: "2.8e-17 in float64"}[dtype]
    assert stated in " ".join(README.read_text().split())
