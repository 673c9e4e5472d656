"""The README's first example runs as printed and actually trains."""

import pathlib
import re

import jax

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
