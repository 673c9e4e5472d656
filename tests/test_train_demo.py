"""The training demo: the data, the MLP, the jitted donated step, and that it learns."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain
from gradchain.teaching import train_demo as td


def test_spirals_are_balanced_shuffled_and_bounded():
    x, y = td.make_spirals(200, seed=3)
    assert x.shape == (400, 2) and x.dtype == np.float32
    assert y.dtype == np.int32 and np.bincount(y).tolist() == [200, 200]
    assert np.abs(x).max() < 1.3
    assert not (np.all(y[:200] == 0))  # shuffled
    x2, y2 = td.make_spirals(200, seed=3)
    np.testing.assert_array_equal(x, x2)  # reproducible


def test_loss_is_cross_entropy_and_accuracy_counts_argmax():
    params = [{"w": jnp.eye(2, dtype=jnp.float32), "b": jnp.zeros(2, jnp.float32)}]
    x = jnp.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]], jnp.float32)
    y = jnp.array([0, 1, 1], jnp.int32)
    logits = np.asarray(x, np.float64)
    expected = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(3), np.asarray(y)])
    np.testing.assert_allclose(float(td.loss_fn(params, x, y)), expected, rtol=1e-6)
    assert float(td.accuracy(params, x, y)) == pytest.approx(2 / 3)


def test_train_step_is_jitted_donates_and_does_not_retrace():
    opt = gradchain.adam(1e-2)
    params = td.init_mlp(jax.random.key(0), (2, 8, 2))
    state = opt.init(params)
    x, y = (jnp.asarray(a) for a in td.make_spirals(50))
    step = td.make_train_step(opt, batch_size=16)
    old_w = params[0]["w"]
    params, state, loss0 = step(params, state, x, y, jax.random.key(1))
    assert old_w.is_deleted()  # donated: the old buffer was reused
    # no retrace after the first step: JAX reports every trace it makes (a count of cached
    # executables, step._cache_size(), read 0 once in a full run: a cache, not a trace count)
    traced = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/jaxpr_trace_duration":
            traced.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        for i in range(2, 40):
            params, state, loss = step(params, state, x, y, jax.random.key(i))
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert traced == []
    assert float(td.loss_fn(params, x, y)) < float(loss0)


def test_scanned_steps_equal_single_steps():
    opt = gradchain.momentum(0.05)
    x, y = (jnp.asarray(a) for a in td.make_spirals(50))
    keys = jax.random.split(jax.random.key(2), 5)
    p1 = td.init_mlp(jax.random.key(0), (2, 8, 2))
    s1 = opt.init(p1)
    one = td.make_train_step(opt, 16)
    losses = []
    for k in keys:
        p1, s1, loss = one(p1, s1, x, y, k)
        losses.append(float(loss))
    p2 = td.init_mlp(jax.random.key(0), (2, 8, 2))
    p2, s2, scanned = td.make_train_steps(opt, 16)(p2, opt.init(p2), x, y, keys)
    np.testing.assert_allclose(np.asarray(scanned), losses, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_adam_learns_the_spirals():
    history = td.train("adam", steps=1200, report_every=0)
    assert history.test_accuracy[-1] > 0.9
    assert history.losses[-50:].mean() < 0.5 * history.losses[:50].mean()
    assert history.state_multiple == 2.0
    assert len(history.losses) == 1200


def test_progress_bar_and_cli(tmp_path, capsys):
    assert td.progress_bar(3, 12, width=4) == "[#---]  3/12"
    out = tmp_path / "train.png"
    code = td.main(
        [
            "--optimizers",
            "sgd,lion",
            "--steps",
            "100",
            "--hidden",
            "16",
            "--lr",
            "lion=0.002",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "[########################] 100/100" in text
    table = {
        line.split()[0]: line.split()
        for line in text.splitlines()
        if line.startswith(("sgd ", "lion "))
    }
    assert table["sgd"][1] == "0.5" and table["lion"][1] == "0.002"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_optimizer_is_refused():
    with pytest.raises(gradchain.GradchainError, match="unknown optimizer 'adamm'"):
        td.train("adamm", steps=1)


def test_without_matplotlib_the_demo_still_trains_and_says_what_to_install(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now fails
    out = tmp_path / "train.png"
    argv = ["--optimizers", "sgd", "--steps", "20", "--hidden", "8", "--out", str(out)]
    assert td.main(argv) == 0
    captured = capsys.readouterr()
    assert "final loss" in captured.out
    assert 'pip install "gradchain[plot]"' in captured.err
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--optimizers", "sgd", "--lr", "nosuch=0.1", "--out", ""], "'nosuch'"),
        (["--out", "/nonexistent/dir/train.png"], "/nonexistent/dir"),
    ],
)
def test_bad_lr_names_and_missing_folders_are_refused_before_training(capsys, argv, named):
    with pytest.raises(SystemExit) as exit_:
        td.main(argv)
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and named in captured.err.splitlines()[-1]
