"""AdaDelta (transforms/adadelta.py, optimizers/adadelta.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain
from tests.problems import grads_sequence, max_abs_diff, run_grads, small_tree, steps_of


def test_adadelta_matches_torch(x64):
    torch = pytest.importorskip("torch")
    params = small_tree(jnp.float64)
    grads = grads_sequence(params, jnp.float64)
    got, _ = run_grads(gradchain.adadelta(0.5, rho=0.8, eps=1e-5, weight_decay=0.1), params, grads)
    leaves, treedef = jax.tree.flatten(params)
    tensors = [torch.tensor(np.asarray(p), requires_grad=True) for p in leaves]
    opt = torch.optim.Adadelta(tensors, lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1)
    for g in steps_of(grads):
        for t, gi in zip(tensors, treedef.flatten_up_to(g)):
            t.grad = torch.tensor(np.asarray(gi))
        opt.step()
    assert max_abs_diff(jax.tree.leaves(got), [t.detach().numpy() for t in tensors]) <= 1e-13


def test_scale_by_adadelta_equals_zeilers_algorithm_by_hand(x64):
    """Zeiler's Algorithm 1 in numpy, three steps (rho = 0.9, eps = 1e-6); a zero entry stays 0."""
    rho, eps = 0.9, 1e-6
    opt = gradchain.scale_by_adadelta(rho, eps)
    state = opt.init(jnp.zeros(3))
    eg = ex = np.zeros(3)
    for g in ([0.5, -2.0, 0.0], [1.0, 1.0, 0.0], [-3.0, 0.25, 0.0]):
        g = np.asarray(g)
        u, state = opt.update(jnp.asarray(g), state)
        eg = rho * eg + (1 - rho) * g**2
        want = np.sqrt(ex + eps) / np.sqrt(eg + eps) * g
        ex = rho * ex + (1 - rho) * want**2
        np.testing.assert_allclose(
            np.asarray(u), want, rtol=1e-13, atol=0
        )  # measured 0 (bit for bit)
    np.testing.assert_allclose(np.asarray(state.mean_sq_grad), eg, rtol=1e-13, atol=0)
    np.testing.assert_allclose(np.asarray(state.mean_sq_update), ex, rtol=1e-13, atol=0)
