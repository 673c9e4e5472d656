"""The sign family (transforms/sign.py, optimizers/sign.py): signSGD, Signum and Rprop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion
from tests.problems import (
    grads_sequence,
    matrix_tree,
    max_abs_diff,
    noise_sequence,
    run_grads,
    run_noisy,
    small_tree,
    steps_of,
)


def test_signum_refuses_two_dtypes():
    with pytest.raises(gradchain.GradchainError, match="not both"):
        gradchain.signum(0.01, mu_dtype=jnp.bfloat16, accumulator_dtype=jnp.float32)


def test_signum_equals_sign_of_heavy_ball_momentum():
    """The sign ignores the EMA's positive factor (1 - beta): Signum is momentum, then sign."""
    params = matrix_tree(jnp.float32)
    noise = noise_sequence(params, jnp.float32, steps=20)
    by_hand = gradchain.chain(
        gradchain.scale_by_momentum(0.9),
        gradchain.scale_by_sign(),
        gradchain.scale_by_learning_rate(0.01),
    )
    got, _ = run_noisy(gradchain.signum(0.01, 0.9), params, noise)
    want, _ = run_noisy(by_hand, params, noise)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


# --- Rprop: Optax 0.2.8 emits each step one step late; torch.optim.Rprop is the reference ---


def torch_rprop_run(params, grads, *, lr, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0)):
    torch = pytest.importorskip("torch")
    tensors = [torch.tensor(np.asarray(p, np.float64), requires_grad=True) for p in params]
    opt = torch.optim.Rprop(tensors, lr=lr, etas=etas, step_sizes=step_sizes)
    for g in grads:
        for t, gi in zip(tensors, g):
            t.grad = torch.tensor(np.asarray(gi, np.float64))
        opt.step()
    return [t.detach().numpy() for t in tensors]


@pytest.mark.parametrize(
    "options",
    [
        dict(lr=0.01),
        # lr above max_step_size: only clip_every_step=True (torch's form) agrees.
        dict(lr=0.5, etas=(0.3, 1.5), step_sizes=(1e-4, 0.2)),
    ],
)
def test_rprop_matches_torch(options, x64):
    params = small_tree(jnp.float64)
    grads = grads_sequence(params, jnp.float64)
    (eta_minus, eta_plus), (lo, hi) = (
        options.get("etas", (0.5, 1.2)),
        options.get("step_sizes", (1e-6, 50.0)),
    )
    opt = gradchain.chain(
        gradchain.scale_by_rprop(options["lr"], eta_minus, eta_plus, lo, hi, clip_every_step=True),
        gradchain.scale(-1.0),
    )
    got, _ = run_grads(opt, params, grads)
    leaves, treedef = jax.tree.flatten(params)
    want = torch_rprop_run(leaves, [treedef.flatten_up_to(g) for g in steps_of(grads)], **options)
    assert max_abs_diff(jax.tree.leaves(got), want) <= 1e-12
    if options["lr"] <= hi:  # the named optimizer (Optax's form) is the same there
        named = gradchain.rprop(options["lr"], eta_minus, eta_plus, lo, hi)
        got_named, _ = run_grads(named, params, grads)
        assert max_abs_diff(got_named, got) == 0


def test_rprop_step_sizes_equal_optax_and_updates_lead_by_one_step(dtype):
    params = small_tree(dtype)
    grads = grads_sequence(params, dtype, steps=50)
    ours, theirs = gradchain.rprop(0.01), optax.rprop(0.01)
    state, ref_state = ours.init(params), theirs.init(params)
    ours_step = jax.jit(ours.update)
    with reference_promotion():
        theirs_step = jax.jit(theirs.update)
    previous = jax.tree.map(jnp.zeros_like, params)
    for g in steps_of(grads):
        u, state = ours_step(g, state, params)
        with reference_promotion():
            ref_u, ref_state = theirs_step(g, ref_state, params)
        flipped = jax.tree.map(lambda s: s == 0, state.inner[0].previous_sign)
        # Optax emits our previous update, zeroed where the sign just flipped.
        lagged = jax.tree.map(lambda f, p, gi: jnp.where(f & (gi != 0), 0, p), flipped, previous, g)
        assert max_abs_diff(ref_u, lagged) == 0
        assert max_abs_diff(state.inner[0].step_size, ref_state[0].step_sizes) == 0
        previous = u
