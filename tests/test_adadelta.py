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
