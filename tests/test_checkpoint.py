"""Checkpoints lose nothing: exact round trips (bfloat16, None slots, NamedTuples), exact
resume, atomic writes that survive a crash mid-save, and clear errors on any mismatch or a
damaged file."""

import os
import tempfile
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gradchain
from gradchain import checkpoint
from tests.test_properties import build, specs


def make_params(dtype=jnp.float32):
    rng = np.random.default_rng(0)
    return {
        "w": jnp.asarray(rng.normal(size=(4, 3)), dtype),
        "layers": [jnp.asarray(rng.normal(size=(3,)), dtype), jnp.asarray(rng.normal(), dtype)],
        "empty": jnp.zeros((0, 2), dtype),
    }


def grads_at(params, k):
    rng = np.random.default_rng(100 + k)
    return jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)


def train(opt, params, state, first, steps):
    step = jax.jit(opt.update)
    for k in range(first, first + steps):
        updates, state = step(grads_at(params, k), state, params)
        params = gradchain.apply_updates(params, updates)
    return params, state


def assert_trees_identical(a, b):
    assert jax.tree.structure(a, is_leaf=lambda x: x is None) == jax.tree.structure(
        b, is_leaf=lambda x: x is None
    )
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype and x.shape == y.shape
        # bit for bit: compare the raw bytes, so that NaN payloads and -0.0 count too
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


def schedule(count):
    return 0.05 / (1.0 + 0.1 * count.astype(jnp.float32))


OPTIMIZERS = {
    "adam": lambda: gradchain.adam(0.01),
    "clipped_amsgrad_with_schedule": lambda: gradchain.chain(
        gradchain.clip_by_global_norm(1.0), gradchain.amsgrad(schedule)
    ),
    "momentum_with_schedule": lambda: gradchain.momentum(schedule, 0.9),
    # custom pytree nodes in the state: 8-bit codes + scales, factored row/column moments
    "adam_8bit": lambda: gradchain.adam_8bit(0.01, min_size=4, block_size=2),
    "adafactor": lambda: gradchain.adafactor(0.01, min_dim_size_to_factor=2),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_resume_is_bit_for_bit(name, tmp_path):
    opt = OPTIMIZERS[name]()
    params = make_params()
    state = opt.init(params)
    want_params, want_state = train(opt, params, state, 0, 7)

    p, s = train(opt, params, state, 0, 4)
    checkpoint.save(tmp_path / "ckpt.npz", p, s, 4)
    p, s, step = checkpoint.restore(tmp_path / "ckpt.npz", params, jax.eval_shape(opt.init, params))
    assert step == 4
    got_params, got_state = train(opt, p, s, step, 3)

    assert_trees_identical(got_params, want_params)
    assert_trees_identical(got_state, want_state)


def test_round_trip_keeps_dtypes_none_slots_and_state_types(tmp_path):
    opt = gradchain.chain(gradchain.adam(0.01, mu_dtype=jnp.bfloat16), gradchain.scale(2.0))
    params = make_params(jnp.bfloat16)
    params["frozen"] = None
    state = opt.init(params)
    _, state = opt.update(grads_at(params, 0), state, params)
    checkpoint.save(tmp_path / "c.npz", params, state, 1)

    p, s, step = checkpoint.restore(tmp_path / "c.npz", params, opt.init(params))
    assert step == 1 and p["frozen"] is None
    assert type(s[2]) is gradchain.RmsState and s[2].nu_max is None  # None slot kept
    assert s[0].mu["w"].dtype == jnp.bfloat16
    assert_trees_identical(p, params)
    assert_trees_identical(s, state)


def test_round_trip_float64(tmp_path, x64):
    params = make_params(jnp.float64)
    opt = gradchain.adamw(0.01)
    state = train(opt, params, opt.init(params), 0, 2)[1]
    checkpoint.save(tmp_path / "c.npz", params, state, 2)
    _, s, _ = checkpoint.restore(tmp_path / "c.npz", params, jax.eval_shape(opt.init, params))
    assert_trees_identical(s, state)


def test_file_is_plain_npz_without_pickles(tmp_path):
    params = make_params(jnp.bfloat16)
    opt = gradchain.adam(0.01)
    checkpoint.save(tmp_path / "c.npz", params, opt.init(params), 0)
    with np.load(tmp_path / "c.npz", allow_pickle=False) as z:
        assert "params['w']" in z.files and "opt_state[0].mu['w']" in z.files
        assert z["params['w']"].dtype == np.uint16  # bfloat16 stored as its raw bits
        assert all(z[k].dtype != object for k in z.files)


def test_a_crash_mid_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    params = make_params()
    opt = gradchain.adam(0.01)
    state = opt.init(params)
    path = tmp_path / "c.npz"
    checkpoint.save(path, params, state, 3)
    before = path.read_bytes()

    def crash_half_way(file, **arrays):
        file.write(b"PK\x03\x04 half of a zip")
        raise KeyboardInterrupt  # the process is killed while writing

    monkeypatch.setattr(checkpoint.np, "savez", crash_half_way)
    newer = jax.tree.map(lambda p: p + 1, params)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, newer, state, 4)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.npz"]  # no temporary file left behind
    p, _, step = checkpoint.restore(path, params, state)
    assert step == 3
    assert_trees_identical(p, params)


def test_a_failed_rename_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    params = make_params()
    state = gradchain.sgd(0.1).init(params)
    path = tmp_path / "c.npz"
    checkpoint.save(path, params, state, 1)
    before = path.read_bytes()

    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, params, state, 2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c.npz"]


@pytest.fixture
def saved(tmp_path):
    params = make_params()
    opt = gradchain.adam(0.01)
    state = opt.init(params)
    path = tmp_path / "c.npz"
    checkpoint.save(path, params, state, 5)
    return path, params, state


def test_restore_into_another_optimizer_names_the_leaves(saved):
    path, params, _ = saved
    with pytest.raises(gradchain.GradchainError, match=r"opt_state has another tree structure"):
        checkpoint.restore(path, params, gradchain.momentum(0.1).init(params))


def test_restore_into_other_params_names_the_leaf(saved):
    path, params, state = saved
    other = dict(params, w=jnp.zeros((4, 4)))
    with pytest.raises(gradchain.GradchainError, match=r"params at \['w'\] has shape \(4, 3\)"):
        checkpoint.restore(path, other, state)
    renamed = {("v" if k == "w" else k): v for k, v in params.items()}
    with pytest.raises(gradchain.GradchainError, match=r"only in the file: \['w'\]"):
        checkpoint.restore(path, renamed, state)


def test_restore_with_another_dtype_names_the_leaf(saved):
    path, params, state = saved
    bf16 = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
    with pytest.raises(gradchain.GradchainError, match=r"dtype float32 in the file, bfloat16"):
        checkpoint.restore(path, bf16, state)


def test_restore_none_against_array_is_refused(saved):
    path, params, state = saved
    with pytest.raises(gradchain.GradchainError, match="None"):
        checkpoint.restore(path, dict(params, empty=None), state)


def test_truncated_file_gives_a_clear_error(saved):
    path, params, state = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(gradchain.GradchainError, match="corrupted or truncated"):
        checkpoint.restore(path, params, state)


def test_flipped_bytes_give_a_clear_error(saved):
    path, params, state = saved
    data = bytearray(path.read_bytes())
    # flip bytes inside the first stored array's data (past the zip and npy headers)
    with zipfile.ZipFile(path) as z:
        info = z.infolist()[0]
    start = info.header_offset + 30 + len(info.filename) + 128
    data[start : start + 8] = bytes(b ^ 0xFF for b in data[start : start + 8])
    path.write_bytes(bytes(data))
    with pytest.raises(gradchain.GradchainError, match="corrupted or truncated"):
        checkpoint.restore(path, params, state)


def test_not_a_checkpoint_gives_a_clear_error(tmp_path, saved):
    _, params, state = saved
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(gradchain.GradchainError, match="not a readable gradchain checkpoint"):
        checkpoint.restore(garbage, params, state)
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.ones(3))
    with pytest.raises(gradchain.GradchainError, match="not a gradchain checkpoint"):
        checkpoint.restore(plain, params, state)
    with pytest.raises(FileNotFoundError):
        checkpoint.restore(tmp_path / "missing.npz", params, state)


@pytest.mark.parametrize("step", [-1, 1.5, "3", None, True, np.ones(2, np.int32)])
def test_bad_step_is_refused(tmp_path, step):
    params = make_params()
    with pytest.raises(gradchain.GradchainError, match="step"):
        checkpoint.save(tmp_path / "c.npz", params, gradchain.sgd(0.1).init(params), step)
    assert not os.listdir(tmp_path)


def test_non_array_leaf_is_refused_before_writing(tmp_path):
    with pytest.raises(gradchain.GradchainError, match=r"at \['name'\]: a leaf of type str"):
        checkpoint.save(tmp_path / "c.npz", {"name": "abc"}, (), 0)
    assert not os.listdir(tmp_path)


def test_step_may_be_a_jax_integer(tmp_path):
    params = make_params()
    state = gradchain.sgd(0.1).init(params)
    checkpoint.save(tmp_path / "c.npz", params, state, jnp.asarray(12, jnp.int32))
    assert checkpoint.restore(tmp_path / "c.npz", params, state)[2] == 12


# --- property: any tree, any named optimizer, any dtype: the round trip is exact ----------

NAMED = sorted(gradchain.optimizers.__all__)


@settings(max_examples=12, deadline=None, derandomize=True)
@given(st.sampled_from(NAMED), specs, st.integers(0, 2**31 - 1))
def test_round_trip_is_exact_for_random_trees(name, spec, seed):
    opt = getattr(gradchain, name)(0.01)
    rng = np.random.default_rng(seed)
    params = build(spec, rng)
    state = opt.init(params)
    _, state = opt.update(jax.tree.map(jnp.ones_like, params), state, params)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "c.npz")
        checkpoint.save(path, params, state, seed)
        p, s, step = checkpoint.restore(path, params, jax.eval_shape(opt.init, params))
    assert step == seed
    assert_trees_identical(p, params)
    assert_trees_identical(s, state)
