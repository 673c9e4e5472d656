"""Checkpoints lose nothing: exact round trips (bfloat16, None slots, NamedTuples), exact
resume, atomic writes that survive a crash mid-save, and clear errors on any mismatch or a
damaged file."""

import fcntl
import json
import os
import stat
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
    assert type(s[0]) is type(state[0]) and type(s[0]).__name__ == "AdamLiveState"
    assert s[0].count is None  # no schedule: the live state's None count is kept
    assert type(s[0].inner[2]) is gradchain.RmsState and s[0].inner[2].nu_max is None
    assert s[0].inner[0].mu["w"].dtype == jnp.bfloat16
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
        assert "params['w']" in z.files and "opt_state.inner[0].mu['w']" in z.files
        assert "opt_state.hyperparams['b1']" in z.files  # live hyperparameters, by name
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
        checkpoint.restore(
            path, params, gradchain.momentum(0.1).init(params), allow_other_optimizer=True
        )


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


# --- faults are never silent (issue 15): crafted files, stale temporaries, modes, placement --


def members_of(path):
    """Every member of a checkpoint, name -> the raw bytes of its .npy file."""
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def npy_bytes(array=None, *, header_for=None, payload=b""):
    """An .npy file: ``array``'s, or the header of ``header_for`` followed by ``payload``."""
    import io

    buf = io.BytesIO()
    if array is not None:
        np.lib.format.write_array(buf, array, allow_pickle=False)
        return buf.getvalue()
    np.lib.format.write_array_header_1_0(buf, header_for)
    return buf.getvalue() + payload


def rewrite(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)


def edit_metadata(path, change):
    members = members_of(path)
    meta = json.loads(np.load(path)["__gradchain__"].tobytes().decode())
    change(meta)
    raw = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    members["__gradchain__.npy"] = npy_bytes(raw)
    rewrite(path, members)


@pytest.fixture
def bytes_inflated(monkeypatch):
    """The largest single read from any zip member during the test, in bytes."""
    largest = [0]
    read = zipfile.ZipExtFile.read

    def counting(self, n=-1):
        data = read(self, n)
        largest[0] = max(largest[0], len(data))
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting)
    return largest


def test_an_extra_compressed_entry_is_refused_before_it_is_inflated(saved, bytes_inflated):
    path, params, state = saved
    members = members_of(path)
    bomb = np.zeros(16 * 2**20, np.uint8)  # 16 MiB of zeros, a few KiB deflated
    members["bomb.npy"] = npy_bytes(bomb)
    rewrite(path, members, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 2**20
    unnamed = r"1 entry that its metadata does not name: 'bomb.npy'"
    with pytest.raises(checkpoint.CheckpointError, match=unnamed) as e:
        checkpoint.restore(path, params, state)
    assert str(path) in str(e.value)
    assert bytes_inflated[0] < 2**16  # the metadata only


def test_a_member_inflating_past_its_header_is_refused_unread(saved, bytes_inflated):
    path, params, state = saved
    members = members_of(path)
    header = {"descr": "<f4", "fortran_order": False, "shape": (4, 3)}
    members["params['w'].npy"] = npy_bytes(header_for=header, payload=bytes(16 * 2**20))
    rewrite(path, members, zipfile.ZIP_DEFLATED)
    with pytest.raises(checkpoint.CheckpointError, match=r"params at \['w'\] is \d+ bytes"):
        checkpoint.restore(path, params, state)
    assert bytes_inflated[0] < 2**16


def test_a_header_claiming_1e12_elements_is_refused_unread(saved, bytes_inflated):
    path, params, state = saved
    members = members_of(path)
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}
    members["params['w'].npy"] = npy_bytes(header_for=header, payload=bytes(48))
    rewrite(path, members)
    with pytest.raises(checkpoint.CheckpointError, match=r"params at \['w'\] is 176 bytes"):
        checkpoint.restore(path, params, state)
    assert bytes_inflated[0] < 2**16


def test_a_header_disagreeing_with_the_metadata_is_refused(saved):
    path, params, state = saved
    members = members_of(path)
    members["params['w'].npy"] = npy_bytes(np.zeros((3, 4), np.float32))
    rewrite(path, members)
    with pytest.raises(
        checkpoint.CheckpointError,
        match=r"holds an array of shape \(3, 4\), its metadata says \(4, 3\)",
    ):
        checkpoint.restore(path, params, state)


def test_a_plain_npy_file_is_refused_clearly(tmp_path, saved):
    _, params, state = saved
    plain = tmp_path / "plain.npy"
    np.save(plain, np.ones(3))
    with pytest.raises(checkpoint.CheckpointError, match=r"plain.npy is not a readable"):
        checkpoint.restore(plain, params, state)


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda m: m["params"][0].pop("shape"), r"metadata of params at .* not a key, a shape"),
        (lambda m: m["params"].__setitem__(0, "w"), r"entry 0 of its params metadata has no path"),
        (lambda m: m["opt_state"][1].update(dtype="float33"), r"unknown dtype 'float33'"),
        (lambda m: m["params"][0].update(shape=[4, -3]), r"not a key, a shape \(integers >= 0\)"),
        (lambda m: m.update(step=-3), r"its step is -3, not an integer >= 0"),
        (lambda m: m.update(step="5"), r"its step is '5'"),
        (lambda m: m.pop("params"), r"no list of params leaves"),
        (lambda m: m["params"][1].update(stored_as="float64"), r"stored as float64, which"),
    ],
)
def test_hand_edited_metadata_gives_the_checkpoints_own_error(saved, change, problem):
    path, params, state = saved
    edit_metadata(path, change)
    with pytest.raises(checkpoint.CheckpointError, match=problem) as e:
        checkpoint.restore(path, params, state)
    assert str(e.value).startswith(f"{path} ")


def test_checkpoint_error_is_a_gradchain_error():
    assert issubclass(checkpoint.CheckpointError, gradchain.GradchainError)


def test_a_later_save_removes_only_its_own_stale_temporaries(tmp_path):
    params = make_params()
    state = gradchain.sgd(0.1).init(params)
    # what kill -9 during a save leaves: mkstemp's own names beside the target
    stale = [tempfile.mkstemp(dir=tmp_path, prefix=".c.npz.", suffix=".tmp") for _ in range(2)]
    for fd, _ in stale:
        os.write(fd, b"PK\x03\x04 half of a zip")
        os.close(fd)
    live_fd, live = tempfile.mkstemp(dir=tmp_path, prefix=".c.npz.", suffix=".tmp")
    others = [".d.npz.abcd1234.tmp", ".c.npz.abc.tmp", "c.npz.abcd1234.tmp", ".c.npz.abcd1234"]
    for name in others:
        (tmp_path / name).write_bytes(b"not ours")
    with open(live_fd, "wb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # a save in progress in another process
        checkpoint.save(tmp_path / "c.npz", params, state, 1)
        assert sorted(os.listdir(tmp_path)) == sorted([*others, "c.npz", os.path.basename(live)])


KILLED_MID_SAVE = """
import os, signal, sys
import jax.numpy as jnp
from gradchain import checkpoint

def killed(file, **arrays):
    file.write(b"PK\\x03\\x04 half of a zip")
    file.flush()
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9: no finally, no except runs

checkpoint.np.savez = killed
checkpoint.save(sys.argv[1], {"w": jnp.ones(3)}, (), 1)
"""


def test_a_save_killed_by_sigkill_is_cleaned_up_by_the_next_save(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "c.npz"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root, JAX_PLATFORMS="cpu")
    seen = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", KILLED_MID_SAVE, str(path)], env=env)
        assert done.returncode == -9
        seen.append(os.listdir(tmp_path))
    # each killed save leaves its temporary; the next save, even one killed later, removes it
    assert all(len(left) == 1 and left[0].startswith(".c.npz.") for left in seen)
    assert seen[0] != seen[1]
    checkpoint.save(path, {"w": jnp.ones(3)}, (), 2)
    assert os.listdir(tmp_path) == ["c.npz"]


def test_save_creates_missing_folders(tmp_path, monkeypatch):
    params = make_params()
    state = gradchain.sgd(0.1).init(params)
    monkeypatch.chdir(tmp_path)
    checkpoint.save("run/ckpt.npz", params, state, 3)  # the README's own path
    checkpoint.save(tmp_path / "a" / "b" / "c.npz", params, state, 4)
    assert checkpoint.restore("run/ckpt.npz", params, state)[2] == 3
    assert checkpoint.restore(tmp_path / "a/b/c.npz", params, state)[2] == 4


@pytest.fixture
def umask_027():
    before = os.umask(0o027)
    yield
    os.umask(before)


def test_a_new_file_follows_the_umask_and_a_replaced_one_keeps_its_mode(tmp_path, umask_027):
    params = make_params()
    state = gradchain.sgd(0.1).init(params)
    path = tmp_path / "c.npz"
    checkpoint.save(path, params, state, 1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    path.chmod(0o604)
    checkpoint.save(path, params, state, 2)
    assert stat.S_IMODE(path.stat().st_mode) == 0o604


def run_and_count_programs(opt, params, state, steps=3):
    """Train with one jitted step; return how many programs it compiled."""
    step = jax.jit(opt.update)
    apply = jax.jit(gradchain.apply_updates)
    for k in range(steps):
        updates, state = step(grads_at(params, k), state, params)
        params = apply(params, updates)
    return step, apply, params, state


def test_a_resumed_run_compiles_nothing_new(tmp_path):
    opt = gradchain.adam(0.01)
    params = make_params()
    step, apply, p, s = run_and_count_programs(opt, params, opt.init(params))
    assert step._cache_size() == 1 and apply._cache_size() == 1
    checkpoint.save(tmp_path / "c.npz", p, s, 3)
    # the README's way: the params as the template, the state from eval_shape
    p, s, _ = checkpoint.restore(tmp_path / "c.npz", params, jax.eval_shape(opt.init, params))
    for k in range(3):
        updates, s = step(grads_at(p, k), s, p)
        p = apply(p, updates)
    assert step._cache_size() == 1 and apply._cache_size() == 1


def test_restored_arrays_are_placed_as_their_targets(tmp_path):
    opt = gradchain.adam(0.01)
    device = jax.devices()[0]
    params = jax.device_put(make_params(), device)  # committed, as a sharded run's are
    state = opt.init(params)  # moments committed (zeros_like the params), counts not
    checkpoint.save(tmp_path / "c.npz", params, state, 0)
    p, s, _ = checkpoint.restore(tmp_path / "c.npz", params, state)
    placed = lambda t: [(x.committed, x.sharding) for x in jax.tree.leaves(t)]  # noqa: E731
    assert placed(p) == placed(params) and placed(s) == placed(state)
    # a ShapeDtypeStruct with a sharding commits the restored array to it
    sharding = jax.sharding.SingleDeviceSharding(device)
    like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state)
    _, s, _ = checkpoint.restore(tmp_path / "c.npz", params, like)
    assert all(x.committed and x.sharding == sharding for x in jax.tree.leaves(s))


def test_the_format_version_is_2():
    assert checkpoint.VERSION == 2


@pytest.mark.parametrize("version", [1, None])
def test_an_older_checkpoint_is_refused_and_its_params_restore(saved, version):
    path, params, state = saved
    edit_metadata(path, lambda m: m.update(version=version) if version else m.pop("version"))
    written = "version 1" if version else "no format version"
    with pytest.raises(checkpoint.CheckpointError, match=written) as e:
        checkpoint.restore(path, params, state)
    message = str(e.value)
    assert "this gradchain reads version 2" in message
    assert "gradchain.checkpoint.restore_params(path, params)" in message
    p, step = checkpoint.restore_params(path, params)
    assert step == 5
    assert_trees_identical(p, params)


def test_a_newer_checkpoint_asks_for_an_upgrade(saved):
    path, params, state = saved
    edit_metadata(path, lambda m: m.update(version=3))
    with pytest.raises(checkpoint.CheckpointError, match=r"version 3; .* upgrade gradchain"):
        checkpoint.restore(path, params, state)
    with pytest.raises(checkpoint.CheckpointError, match=r"version 3"):
        checkpoint.restore_params(path, params)


# --- issue 23: faults never silent, round two -----------------------------------------------


def test_saving_to_a_symlink_writes_through_it(tmp_path):
    real = tmp_path / "runs" / "real.npz"
    real.parent.mkdir()
    link = tmp_path / "latest.npz"
    link.symlink_to(real)
    params = make_params()
    state = gradchain.sgd(0.1).init(params)
    checkpoint.save(link, params, state, 1)
    checkpoint.save(link, params, state, 2)  # over an existing target too
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert checkpoint.restore(real, params, state)[2] == 2
    assert sorted(os.listdir(tmp_path)) == ["latest.npz", "runs"]


OTHER_OPTIMIZERS = [
    ("adam", "nadam"),
    ("adam", "adam_8bit"),
    ("adamw", "lamb"),
    ("momentum", "nesterov"),
    ("sgd", "sign_sgd"),
    ("lion", "lion_8bit"),
]


def _optimizer(name):
    return (
        getattr(gradchain, name)(0.1, 0.9)
        if name in ("momentum", "nesterov")
        else getattr(gradchain, name)(0.1)
    )


@pytest.mark.parametrize("wrote, reads", OTHER_OPTIMIZERS)
def test_restore_refuses_a_state_written_by_another_optimizer(tmp_path, wrote, reads):
    params = {"w": jnp.ones((4, 3)), "b": jnp.zeros(3)}
    path = tmp_path / "c.npz"
    checkpoint.save(path, params, _optimizer(wrote).init(params), 3)
    other = jax.eval_shape(_optimizer(reads).init, params)
    with pytest.raises(checkpoint.CheckpointError, match="written by another optimizer") as e:
        checkpoint.restore(path, params, other)
    assert "allow_other_optimizer=True" in str(e.value)
    # its own optimizer restores it
    checkpoint.restore(path, params, jax.eval_shape(_optimizer(wrote).init, params))


def test_allow_other_optimizer_loads_a_state_with_the_same_leaves(tmp_path):
    params = {"w": jnp.arange(3.0)}
    adam = gradchain.adam(0.1)
    state = adam.update(params, adam.init(params), params)[1]
    path = tmp_path / "c.npz"
    checkpoint.save(path, params, state, 1)
    nadam_like = gradchain.nadam(0.1).init(params)
    _, loaded, _ = checkpoint.restore(path, params, nadam_like, allow_other_optimizer=True)
    assert type(loaded).__name__ == "NadamLiveState"
    assert_trees_identical(jax.tree.leaves(loaded), jax.tree.leaves(state))


def test_a_checkpoint_without_an_optimizer_record_still_restores(saved):
    path, params, state = saved
    edit_metadata(path, lambda meta: meta.pop("optimizer"))
    # no record: nothing to compare, so even another optimizer with the same leaves loads
    checkpoint.restore(path, params, gradchain.nadam(0.01).init(params))
    assert checkpoint.restore(path, params, state)[2] == 5


@pytest.mark.parametrize(
    "leaf",
    [
        np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
        np.arange(12, dtype=np.float32).reshape(4, 3).T,  # torch_weight.numpy().T
        np.arange(3, dtype=">f4"),
        np.asfortranarray(np.arange(6, dtype=">f4").reshape(2, 3)),
    ],
    ids=["fortran", "transposed", "big-endian", "fortran-big-endian"],
)
def test_fortran_order_and_big_endian_leaves_save_and_restore_equal(tmp_path, leaf):
    path = tmp_path / "c.npz"
    checkpoint.save(path, {"w": leaf}, (), 1)
    params, _, _ = checkpoint.restore(path, {"w": leaf}, ())
    assert params["w"].shape == leaf.shape
    assert params["w"].dtype == leaf.dtype.newbyteorder("=")
    np.testing.assert_array_equal(np.asarray(params["w"]), leaf)


def test_a_byte_order_mismatch_says_what_differs(saved):
    path, params, state = saved
    members = members_of(path)
    members["params['w'].npy"] = npy_bytes(np.zeros((4, 3), ">f4"))
    rewrite(path, members)
    with pytest.raises(checkpoint.CheckpointError, match=r"float32 \(big-endian, '>f4'\)"):
        checkpoint.restore(path, params, state)


def test_restore_from_a_fifo_is_refused_without_waiting(tmp_path):
    import signal

    fifo = tmp_path / "c.npz"
    os.mkfifo(fifo)

    def hung(*_):
        raise AssertionError("restore waited on the FIFO for a writer")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        with pytest.raises(checkpoint.CheckpointError, match=r"is a FIFO \(named pipe\)"):
            checkpoint.restore(fifo, {}, ())
        with pytest.raises(checkpoint.CheckpointError, match="is a directory"):
            checkpoint.restore_params(tmp_path, {})
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


SAVE_MANY = """
import sys
import jax.numpy as jnp
from gradchain import checkpoint

params = {"w": jnp.ones(4)}
for step in range(int(sys.argv[2])):
    checkpoint.save(sys.argv[1], params, (), step)
print("done")
"""


def test_two_processes_saving_one_path_do_not_remove_each_others_temporaries(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "c.npz"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root, JAX_PLATFORMS="cpu")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SAVE_MANY, str(path), "400"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0 and "done" in out, err[-3000:]
    assert os.listdir(tmp_path) == ["c.npz"]
    checkpoint.restore(path, {"w": jnp.ones(4)}, ())


def test_a_254_character_file_name_saves_and_restores(tmp_path):
    path = tmp_path / ("c" * 250 + ".npz")
    params = make_params()
    state = gradchain.sgd(0.1).init(params)
    checkpoint.save(path, params, state, 7)
    checkpoint.save(path, params, state, 8)
    assert checkpoint.restore(path, params, state)[2] == 8
    assert os.listdir(tmp_path) == [path.name]


def test_a_dict_key_longer_than_a_zip_name_round_trips(tmp_path):
    params = {"k" * 70_000: jnp.arange(3.0), "short": jnp.ones(2)}
    path = tmp_path / "c.npz"
    checkpoint.save(path, params, (), 1)
    restored, _, _ = checkpoint.restore(path, params, ())
    assert_trees_identical(restored, params)
