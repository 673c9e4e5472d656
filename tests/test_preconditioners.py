"""The shared preconditioners (transforms/preconditioners.py)."""

import jax.numpy as jnp
import numpy as np
import pytest

import gradchain
from tests.problems import gradchain_steps, shrinking_grads, torch_steps


def test_scale_by_amsgrad_raw_in_adams_chain_equals_torch_adam_amsgrad(torch64):
    """Adam's chain with this denominator is torch.optim.Adam(amsgrad=True): 30 steps of
    gradients that shrink 100x, so the maximum of the raw second moment wins."""
    torch = pytest.importorskip("torch")
    p0, grads = jnp.linspace(-1.0, 1.0, 5), shrinking_grads()
    ours = gradchain.chain(
        gradchain.scale_by_momentum(0.9, ema=True),
        gradchain.bias_correct(0.9),
        gradchain.scale_by_amsgrad_raw(0.99, 1e-8),
        gradchain.scale_by_learning_rate(0.01),
    )
    want = torch_steps(
        lambda ps: torch.optim.Adam(ps, 0.01, (0.9, 0.99), 1e-8, amsgrad=True), p0, grads
    )
    got = gradchain_steps(ours, p0, grads)
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-14)  # measured 2.1e-17
