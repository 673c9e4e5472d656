"""The dual-averaging family (transforms/dual_averaging.py, optimizers/dual_averaging.py):
MADGRAD against optax.contrib.madgrad."""

import optax

import gradchain
from tests.problems import compare, tol


def test_madgrad_equals_optax(dtype):
    diff, _, _ = compare(
        lambda: gradchain.madgrad(0.05, weight_decay=0.01),
        lambda: optax.contrib.madgrad(0.05, weight_decay=0.01),
        dtype,
    )
    # measured: float32 1.2e-7; float64 8.9e-10 -- on purpose: Optax's lambda_k = (lr + eps) *
    # sqrt(k + 1) is float32 even under x64 (sqrt of its int32 count), ours is float64
    assert diff <= tol(dtype, 5e-7, 5e-9)
