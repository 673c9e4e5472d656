"""Momentum and bias correction (transforms/momentum.py)."""

import jax.numpy as jnp
import numpy as np
import pytest

import gradchain
from tests.problems import gradchain_steps, shrinking_grads, torch_steps


def test_bias_correct_nadam_in_adams_chain_equals_torch_nadam(torch64):
    """Adam's chain with this correction in place of ``bias_correct`` is torch.optim.NAdam with
    Dozat's momentum schedule (momentum_decay = 4e-3, and a larger 0.05): 30 steps."""
    torch = pytest.importorskip("torch")
    p0, grads = jnp.linspace(-1.0, 1.0, 5), shrinking_grads()
    for psi in (4e-3, 0.05):
        ours = gradchain.chain(
            gradchain.scale_by_momentum(0.9, ema=True),
            gradchain.bias_correct_nadam(0.9, psi),
            gradchain.scale_by_rms(0.99, 1e-8, eps_in_sqrt=False, bias_correction=True),
            gradchain.scale_by_learning_rate(0.01),
        )
        want = torch_steps(
            lambda ps, psi=psi: torch.optim.NAdam(ps, 0.01, (0.9, 0.99), 1e-8, momentum_decay=psi),
            p0,
            grads,
        )
        got = gradchain_steps(ours, p0, grads)
        np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-14)  # measured 6.7e-16
