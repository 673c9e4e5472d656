"""SOAP and Shampoo (gradchain.transforms.kronecker, gradchain.optimizers.kronecker): against
pytorch-optimizer in float64, against Adam on a rotated ill-conditioned problem, their memory,
jit, dtypes, block layout and the Adam fallback for vectors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain
from gradchain.transforms.kronecker import kronecker_layout, scale_by_soap

torch = pytest.importorskip("torch")
pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

STEPS = 30  # spans five SOAP refreshes at precondition_frequency=5


def _problem(d=8, steps=STEPS, seed=0):
    """A stochastic matrix regression: a fresh batch X_t each step, grad = X^T X (W - W*) / n."""
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(steps, 16, d))
    w_star = rng.normal(size=(d, d))
    w0 = rng.normal(size=(d, d)) * 0.1

    def grad(w, t):
        return xs[t].T @ (xs[t] @ (w - w_star)) / xs.shape[1]

    return w0, grad


def _run_torch(make, w0, grad):
    w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    opt = make([w])
    for t in range(STEPS):
        w.grad = torch.tensor(grad(w.detach().numpy(), t))
        opt.step()
    return w.detach().numpy()


def _run_ours(opt, w0, grad):
    params = {"w": jnp.asarray(w0)}
    state = opt.init(params)
    update = jax.jit(opt.update)
    for t in range(STEPS):
        g = {"w": jnp.asarray(grad(np.asarray(params["w"]), t))}
        updates, state = update(g, state, params)
        params = gradchain.apply_updates(params, updates)
    return np.asarray(params["w"])


class _Float64QR:
    """pytorch-optimizer's SOAP module's ``torch``, reading ``torch.float32`` as float64: its
    QR refresh casts to float32 whatever the params' dtype."""

    float32 = torch.float64

    def __getattr__(self, name):
        return getattr(torch, name)


# Measured max |W_ours - W_theirs| after 30 steps (params move by 0.89):
#   QR in float64 (patched), weight_decay 0:  3.2e-13
#   their QR in float32, weight_decay 0:      4.5e-7
#   weight_decay 1e-2:                        2.35e-4 -- their first step skips the decay
#     (ours adds it: 6.4e-5 at step 1) and they decay as p *= 1 - lr * wd after the step.
@pytest.mark.parametrize(
    "float64_qr, weight_decay, tolerance",
    [(True, 0.0, 1e-12), (False, 0.0, 5e-6), (True, 1e-2, 5e-4)],
)
def test_soap_matches_pytorch_optimizer(x64, monkeypatch, float64_qr, weight_decay, tolerance):
    from pytorch_optimizer.optimizer import soap as soap_module

    if float64_qr:
        monkeypatch.setattr(soap_module, "torch", _Float64QR())
    w0, grad = _problem()
    theirs = _run_torch(
        lambda ps: pytorch_optimizer.SOAP(
            ps, lr=3e-2, betas=(0.95, 0.95), weight_decay=weight_decay, precondition_frequency=5
        ),
        w0,
        grad,
    )
    ours = _run_ours(
        gradchain.soap(3e-2, weight_decay=weight_decay, precondition_frequency=5), w0, grad
    )
    assert np.abs(ours - w0).max() > 0.5  # it moved
    assert np.abs(ours - theirs).max() < tolerance


def test_shampoo_matches_pytorch_optimizer(x64):
    """Their Shampoo is Gupta et al.'s: sums from eps I, no graft, a root every step.
    Measured 5.6e-13 after 30 steps (eigh here, SVD there)."""
    w0, grad = _problem()
    theirs = _run_torch(
        lambda ps: pytorch_optimizer.Shampoo(ps, lr=1e-2, matrix_eps=1e-6), w0, grad
    )
    ours = _run_ours(gradchain.shampoo(1e-2, graft=None, precondition_frequency=1), w0, grad)
    assert np.abs(ours - w0).max() > 0.05
    assert np.abs(ours - theirs).max() < 2e-12


# --- SOAP against Adam on a rotated, ill-conditioned problem -----------------------------


def _rotated_quadratic(d=16, seed=0):
    """0.5 tr(E^T A E B), E = W - W*: A = U diag(1 .. 1e-3) U^T, B = V diag(1 .. 0.1) V^T,
    U, V random rotations: a Hessian B (x) A of condition 1e4, in no coordinate basis."""
    rng = np.random.default_rng(seed)

    def rotation():
        return np.linalg.qr(rng.normal(size=(d, d)))[0]

    u, v = rotation(), rotation()
    a = jnp.asarray(u @ np.diag(np.logspace(0, -3, d)) @ u.T, jnp.float32)
    b = jnp.asarray(v @ np.diag(np.logspace(0, -1, d)) @ v.T, jnp.float32)
    w_star = jnp.asarray(rng.normal(size=(d, d)), jnp.float32)

    def loss(w):
        e = w - w_star
        return 0.5 * jnp.sum((a @ e @ b) * e)

    return loss, jnp.zeros((d, d), jnp.float32)


def _steps_to(opt, loss, w0, target, steps=400):
    def body(carry, _):
        params, state = carry
        updates, state = opt.update({"w": jax.grad(loss)(params["w"])}, state, params)
        params = gradchain.apply_updates(params, updates)
        return (params, state), loss(params["w"])

    params = {"w": w0}
    _, losses = jax.jit(lambda: jax.lax.scan(body, (params, opt.init(params)), None, steps))()
    hit = np.nonzero(np.asarray(losses) <= target)[0]
    return int(hit[0]) + 1 if hit.size else steps + 1


def test_soap_needs_no_more_steps_than_adam_on_a_rotated_ill_conditioned_problem():
    """Both at (b1, b2) = (0.9, 0.999), each at its best learning rate of 0.03, 0.1, 0.3, 1.
    Measured steps to 1e-3 of the initial loss (lr 0.03, 0.1, 0.3, 1):
    Adam 401+, 175, 82, 73; SOAP 273, 64, 60, 59: best 73 against 59.
    (Both at SOAP's own 0.95/0.95: Adam 192, 142, 126, 170; SOAP 196, 123, 123, 132.)"""
    loss, w0 = _rotated_quadratic()
    target = 1e-3 * float(loss(w0))
    grid = (0.03, 0.1, 0.3, 1.0)
    adam = min(_steps_to(gradchain.adam(lr, 0.9, 0.999), loss, w0, target) for lr in grid)
    soap = min(
        _steps_to(gradchain.soap(lr, 0.9, 0.999, weight_decay=0.0), loss, w0, target) for lr in grid
    )
    assert adam <= 400 and soap <= adam, (soap, adam)


# --- memory ------------------------------------------------------------------------------


def test_memory_report_counts_each_statistic_at_its_real_size():
    params = {
        "w": jax.ShapeDtypeStruct((64, 32), jnp.float32),
        "b": jax.ShapeDtypeStruct((32,), jnp.float32),
    }
    report = gradchain.memory_report(gradchain.soap(1e-3), params)
    rows = {(r.transform, r.slot): r for r in report.rows}
    for slot in ("stats", "basis"):  # 64 x 64 + 32 x 32, float32
        row = rows[("kronecker/scale_by_soap", slot)]
        assert (row.kind, row.elements, row.bytes) == ("larger", 5120, 20480)
    assert rows[("kronecker/scale_by_soap", "nu")].elements == 2048
    assert rows[("adam/scale_by_rms", "nu")].elements == 32
    # 2 x 2048 + 2 x 5120 + 2 x 32 per-parameter elements over 2080 parameters
    assert report.params_multiple == pytest.approx(14400 / 2080)


def test_memory_report_of_a_block_diagonal_embedding():
    """50,000 x 64 at block_size 1024: 48 blocks of 1024, one of 848, and one 64 x 64."""
    params = {"embed": jax.ShapeDtypeStruct((50_000, 64), jnp.float32)}
    expected = 48 * 1024**2 + 848**2 + 64**2  # ~ 50,000 * 1024, not 50,000**2
    for opt, slots in (
        (gradchain.soap(1e-3, block_size=1024), ("stats", "basis")),
        (gradchain.shampoo(1e-3, block_size=1024), ("stats", "roots")),
    ):
        report = gradchain.memory_report(opt, params)
        for slot in slots:
            (row,) = [r for r in report.rows if r.slot == slot]
            assert (row.elements, row.bytes) == (expected, 4 * expected)


def test_block_layout_and_shapes():
    assert kronecker_layout((50_000, 64), 1024) == (((48, 1024), (1, 848)), ((1, 64),))
    assert kronecker_layout((8,), 4) == ()
    state = scale_by_soap(block_size=4).init(
        {"m": jnp.zeros((10, 3)), "t": jnp.zeros((2, 3, 5)), "v": jnp.zeros(7)}
    )
    shapes = jax.tree.map(lambda x: x.shape, state.stats, is_leaf=lambda x: hasattr(x, "shape"))
    assert shapes["m"] == (((2, 4, 4), (1, 2, 2)), ((1, 3, 3),))
    assert shapes["t"] == (((1, 2, 2),), ((1, 3, 3),), ((1, 4, 4), (1, 1, 1)))
    assert shapes["v"] == ()


def test_block_statistics_are_the_blocks_of_the_full_ones(rng):
    """After one step, each block of L is (1 - beta) G_b G_b^T for its rows G_b of G."""
    g = jnp.asarray(rng.normal(size=(10, 3)), jnp.float32)
    opt = scale_by_soap(b2=0.9, block_size=4)
    _, state = opt.update(g, opt.init(g))
    full_l, full_r = 0.1 * g @ g.T, 0.1 * g.T @ g
    (l_blocks, l_last), (r_block,) = state.stats
    np.testing.assert_allclose(l_blocks[0], full_l[:4, :4], rtol=1e-5)
    np.testing.assert_allclose(l_blocks[1], full_l[4:8, 4:8], rtol=1e-5)
    np.testing.assert_allclose(l_last[0], full_l[8:, 8:], rtol=1e-5)
    np.testing.assert_allclose(r_block[0], full_r, rtol=1e-5)


# --- jit, dtypes, the fallback -----------------------------------------------------------

OPTIMIZERS = {
    "soap": lambda: gradchain.soap(1e-2, precondition_frequency=2, block_size=4),
    "shampoo": lambda: gradchain.shampoo(1e-2, 0.9, precondition_frequency=2, block_size=4),
    "shampoo_adam_graft": lambda: gradchain.shampoo(1e-2, graft="adam", block_size=4),
}


def _params(rng, dtype=jnp.float32):
    return {
        "w": jnp.asarray(rng.normal(size=(6, 5)), dtype),
        "t": jnp.asarray(rng.normal(size=(2, 3, 4)), dtype),
        "b": jnp.asarray(rng.normal(size=(5,)), dtype),
    }


def _steps(opt, params, grads, update):
    state = opt.init(params)
    for g in grads:
        updates, state = update(g, state, params)
        params = gradchain.apply_updates(params, updates)
    return params, state


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_jit_equals_eager(name, rng):
    params = _params(rng)
    grads = [
        jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
        for _ in range(3)
    ]  # refreshes at steps 1 and 3
    opt = OPTIMIZERS[name]()
    eager, _ = _steps(opt, params, grads, opt.update)
    jitted, _ = _steps(opt, params, grads, jax.jit(opt.update))
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_bfloat16_params_keep_their_dtypes(name, rng):
    params = _params(rng, jnp.bfloat16)
    grads = [jax.tree.map(lambda p: jnp.ones_like(p) * 0.1, params)] * 3
    opt = OPTIMIZERS[name]()
    before = jax.tree.map(lambda x: x.dtype, opt.init(params))
    out, state = _steps(opt, params, grads, jax.jit(opt.update))
    assert jax.tree.map(lambda x: x.dtype, out) == jax.tree.map(lambda x: x.dtype, params)
    assert jax.tree.map(lambda x: x.dtype, state) == before
    assert all(bool(jnp.all(jnp.isfinite(x.astype(jnp.float32)))) for x in jax.tree.leaves(out))


FALLBACKS = {  # each optimizer's vectors against AdamW with its settings
    "soap": lambda: (
        gradchain.soap(1e-2, weight_decay=1e-2),
        gradchain.adamw(1e-2, 0.95, 0.95, 1e-8, weight_decay=1e-2),
    ),
    "shampoo": lambda: (
        gradchain.shampoo(1e-2, weight_decay=1e-3),
        gradchain.adamw(1e-2, 0.9, 0.999, 1e-8, weight_decay=1e-3),
    ),
}


@pytest.mark.parametrize("name", sorted(FALLBACKS))
def test_vectors_fall_back_to_adamw_exactly(name, rng):
    opt, adam = FALLBACKS[name]()
    params = _params(rng)
    grads = [jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
             for _ in range(4)]  # fmt: skip
    ours, _ = _steps(opt, params, grads, jax.jit(opt.update))
    theirs, _ = _steps(adam, params["b"], [g["b"] for g in grads], jax.jit(adam.update))
    assert jnp.array_equal(ours["b"], theirs)


def test_graft_takes_the_adagrad_norm(rng):
    """First step: AdaGrad's g / |g| has norm sqrt(size); the grafted update too."""
    w = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
    opt = gradchain.shampoo(0.1, block_size=4)
    g = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
    updates, _ = opt.update({"w": g}, opt.init({"w": w}), {"w": w})
    assert float(jnp.linalg.norm(updates["w"])) == pytest.approx(0.1 * np.sqrt(30), rel=1e-5)


def test_soap_first_step_only_builds_the_basis(rng):
    w = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    opt = gradchain.soap(0.1, weight_decay=0.0)
    updates, state = opt.update({"w": w}, opt.init({"w": w}), {"w": w})
    assert not jnp.any(updates["w"])
    basis = state.inner.groups["kronecker"][0].basis["w"][0][0][0]
    np.testing.assert_allclose(basis.T @ basis, np.eye(4), atol=1e-5)


def test_bad_arguments_are_named():
    with pytest.raises(gradchain.GradchainError, match="graft"):
        gradchain.shampoo(1e-3, graft="sgd")
    with pytest.raises(gradchain.GradchainError, match="precondition_frequency"):
        gradchain.soap(1e-3, precondition_frequency=0)
    with pytest.raises(gradchain.GradchainError, match="block_size"):
        gradchain.shampoo(1e-3, block_size=0)
