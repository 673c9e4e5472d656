"""Saving and restoring a training state ``(params, opt_state, step)``, losing nothing.

Format:     one NumPy ``.npz`` file (a zip of ``.npy`` arrays; no pickles, no code runs on
            load). Each leaf is stored under its tree path (``params['w']``,
            ``opt_state[0].mu['w']``); one more entry, ``__gradchain__``, holds JSON metadata:
            format version, step, the optimizer that wrote the state (the nesting of its
            state NamedTuples, e.g. ``AdamLiveState(MomentumState, ...)``), and for every
            leaf its path, shape, dtype and member name (a path too long for a zip member
            name is stored as ``params#3``). Leaves are stored C-ordered and native-endian
            (a Fortran-order or big-endian NumPy leaf is converted, values kept). Dtypes NumPy
            cannot store natively (bfloat16, float8) are stored as their raw bits (uint16,
            uint8) with the real dtype recorded. ``None`` leaves (slots an option turned off)
            are recorded as such.
Versions:   this gradchain writes and restores format version 2 (``VERSION``). Version 1
            (and unversioned files) hold the optimizer state in the layout from before the
            hyperparameters moved out of each transform's state: ``restore`` refuses them,
            and ``restore_params`` still reads their params, to restart the optimizer from.
Atomicity:  ``save`` creates the target's directory if needed, writes a temporary file
            ``.NAME.XXXXXXXX.tmp`` beside the target (``.`` + 16 hex digits of NAME's hash
            instead of ``.NAME.`` when NAME is too long to take 14 more characters), locks it,
            flushes it to disk, then ``os.replace``-s it over the target: a crash mid-save
            leaves the previous checkpoint intact and no half-written file under the
            target's name. A path that is a symlink is written through: the link stays, its
            target gets the new file. A process killed mid-save (``kill -9``) cannot remove
            its temporary file; the next ``save`` of the same target does, before it writes
            (only files of that pattern, for that target, that no live save holds locked;
            a save whose fresh temporary was removed before it could lock it takes another,
            so concurrent saves of one path do not fail). The saved file keeps the mode of
            the file it replaces; a new file gets the mode the umask allows (0644 under the
            usual umask 022).
Restoring:  the file holds no Python types. ``restore`` takes the tree structure -- dicts,
            lists, the state NamedTuples -- from targets you pass: a freshly initialized
            state, or ``jax.eval_shape(opt.init, params)`` to allocate nothing. It refuses a
            state written by another optimizer unless ``allow_other_optimizer=True`` (files
            written before the optimizer was recorded are not checked), and a path that is
            not a regular file (a FIFO would block forever). Before reading
            any array it checks the zip's member list and each member's ``.npy`` header
            (dtype, shape, size) against the metadata and the targets, refuses a member the
            metadata does not name, and never reads or decompresses more bytes than the
            targets ask for. Any mismatch, or a damaged, truncated or crafted file, raises
            ``CheckpointError`` (a ``GradchainError``) naming the file and the problem.
Placement:  each restored array is placed as its target leaf is: a committed array's
            sharding, a ``ShapeDtypeStruct``'s ``sharding=`` if it has one, and otherwise the
            default device, uncommitted -- as ``opt.init(params)`` places a state built from
            uncommitted params. So a resumed run feeds the jitted step arrays placed as a fresh
            run's are, and nothing recompiles.
Resume:     restoring gives back the exact bits, hyperparameters and step counts included
            (they live in the state), so N steps, save, restore, M steps equals N + M steps.

Example::

    gradchain.checkpoint.save("run/ckpt.npz", params, opt_state, step)
    params, opt_state, step = gradchain.checkpoint.restore(
        "run/ckpt.npz", params, jax.eval_shape(opt.init, params)
    )
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import tempfile
import zipfile
import zlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpy.lib import format as npy_format

from gradchain._checks import CheckpointError, path_str

try:  # POSIX: a save holds a lock on its temporary file, so no other save removes it
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["CheckpointError", "restore", "restore_params", "save"]

FORMAT = "gradchain-checkpoint"
VERSION = 2
_PARAMS_READABLE = (None, 1, 2)  # versions whose params ``restore_params`` reads
_META = "__gradchain__"
_TREES = ("params", "opt_state")
_MAX_META_BYTES = 1 << 28  # 256 MiB of JSON: millions of leaves


def _is_none(x: Any) -> bool:
    return x is None


def _flatten(tree: Any) -> tuple[list[tuple[str, Any]], Any]:
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_none)
    return [(path_str(p), x) for p, x in leaves], treedef


# --- save -----------------------------------------------------------------------------------


def _to_numpy(name: str, where: str, leaf: Any) -> np.ndarray:
    """A leaf as a host array, in the dtype JAX gives it (a Python float becomes float32),
    C-ordered and native-endian: a Fortran-order or big-endian NumPy leaf keeps its values."""
    if not hasattr(leaf, "dtype"):
        if not isinstance(leaf, (int, float, complex, np.generic)):
            raise CheckpointError(
                f"cannot save {name} at {where}: a leaf of type {type(leaf).__name__} "
                "(checkpoints hold arrays and numbers)"
            )
        leaf = jnp.asarray(leaf)
    if leaf.dtype == jax.dtypes.float0:
        raise CheckpointError(f"cannot save {name} at {where}: a float0 leaf holds no data")
    x = np.asarray(jax.device_get(leaf))
    if x.dtype.byteorder not in ("=", "|"):  # '>f4' on a little-endian machine
        x = x.astype(x.dtype.newbyteorder("="))
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)  # (which makes 0-d 1-d)


def _state_record(tree: Any) -> str:
    """The optimizer that made ``tree``, as the nesting of its state NamedTuples, e.g.
    ``AdamLiveState(MomentumState, BiasCorrectState, RmsState, EmptyState)``: each named
    optimizer has a state type of its own, so two optimizers with the same slots differ."""

    def walk(treedef: Any) -> list[str]:
        inner = [text for child in treedef.children() for text in walk(child)]
        data = treedef.node_data()
        kind = None if data is None else data[0]
        if isinstance(kind, type) and issubclass(kind, tuple) and hasattr(kind, "_fields"):
            return [f"{kind.__name__}({', '.join(inner)})" if inner else kind.__name__]
        return inner

    return ", ".join(walk(jax.tree_util.tree_structure(tree, is_leaf=_is_none)))


# A zip member's name holds at most 65,535 bytes; a leaf whose path is longer than this is
# stored under a short numbered name instead (the metadata maps every path to its member).
_MAX_MEMBER_NAME = 1024


def _member_key(name: str, where: str, index: int) -> str:
    key = name + ("" if where == "<root>" else where)
    if len(key.encode("utf-8", "surrogatepass")) > _MAX_MEMBER_NAME:
        return f"{name}#{index}"  # '#' never starts a path, so it cannot clash with one
    return key


def _storable(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``x``, or its raw bits when NumPy has no native dtype for it (bfloat16, float8...)."""
    if x.dtype.kind != "V":
        return x, None
    bits = np.dtype(f"uint{8 * x.dtype.itemsize}")
    return x.view(bits), bits.name


def save(path: str | os.PathLike, params: Any, opt_state: Any, step: int) -> None:
    """Write ``(params, opt_state, step)`` to ``path`` atomically (see the module docstring).

    Args:       path -- the file to write (``.npz`` by convention; used exactly as given).
                Missing parent directories are created (``run/ckpt.npz`` creates ``run``).
                params, opt_state -- pytrees of arrays (None leaves allowed).
                step -- the training step, an integer >= 0.
    Note:       removes this target's stale temporary files left by a killed save; the
                written file keeps the replaced file's mode, or follows the umask.
    """
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer, jax.Array)):
        raise CheckpointError(f"step must be an integer, got {step!r}")
    if jnp.shape(step) != () or not jnp.issubdtype(jnp.result_type(step), jnp.integer):
        raise CheckpointError(f"step must be an integer scalar, got {step!r}")
    step = int(step)
    if step < 0:
        raise CheckpointError(f"step must be >= 0, got {step}")
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"format": FORMAT, "version": VERSION, "step": step}
    meta["optimizer"] = _state_record(opt_state)
    for name, tree in zip(_TREES, (params, opt_state)):
        entries = []
        for index, (where, leaf) in enumerate(_flatten(tree)[0]):
            key = _member_key(name, where, index)
            if leaf is None:
                entries.append({"path": where, "none": True})
                continue
            x = _to_numpy(name, where, leaf)
            stored, bits = _storable(x)
            arrays[key] = stored
            entries.append(
                {"path": where, "key": key, "shape": list(x.shape), "dtype": x.dtype.name}
                | ({"stored_as": bits} if bits else {})
            )
        meta[name] = entries
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    target = _file_path(path)
    if os.path.islink(target):  # write through the link, as open() would: it stays a link
        target = os.path.realpath(target)
    directory = os.path.dirname(os.path.abspath(target))
    os.makedirs(directory, exist_ok=True)
    name = os.path.basename(target)
    _remove_stale_temporaries(directory, name)
    mode = _mode_for(target)
    f, tmp = _locked_temporary(directory, name)
    try:
        with f:
            os.chmod(tmp, mode)
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
            if fcntl is not None:
                os.replace(tmp, target)
        if fcntl is None:
            os.replace(tmp, target)  # Windows: an open file cannot be renamed
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _sync_directory(directory)


def _file_path(path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"a checkpoint path must be a str or os.PathLike, got {type(path).__name__}"
        )
    return os.fspath(path)


_NAME_MAX = 255  # the longest file name most file systems allow


def _temporary_prefix(name: str) -> str:
    """``.NAME.``, or for a name too long to take 14 more characters, ``.`` and 16 hex digits
    of its hash: a temporary name stays within the file system's limit on names."""
    if len(os.fsencode(name)) + 14 <= _NAME_MAX:
        return f".{name}."
    return "." + hashlib.sha256(os.fsencode(name)).hexdigest()[:16] + "."


def _temporary_pattern(name: str) -> re.Pattern[str]:
    """The names ``tempfile.mkstemp(prefix=_temporary_prefix(name), suffix=".tmp")`` gives."""
    return re.compile(re.escape(_temporary_prefix(name)) + r"[a-z0-9_]{8}\.tmp")


def _locked_temporary(directory: str, name: str) -> tuple[Any, str]:
    """A new temporary file beside the target, open for writing and locked by this save.

    Between creating the file and locking it, another process's clean-up may see it unlocked
    and remove it; so once locked, it must still be the file under its name, or this save
    takes another."""
    for _ in range(100):
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=_temporary_prefix(name), suffix=".tmp")
        f = os.fdopen(fd, "wb")
        if fcntl is None:
            return f, tmp
        fcntl.flock(fd, fcntl.LOCK_EX)  # held until the rename
        try:
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return f, tmp
        except FileNotFoundError:
            pass
        f.close()  # removed before it was locked: it is no longer ours to write
    raise CheckpointError(
        f"cannot save {os.path.join(directory, name)}: 100 temporary files in a row were "
        "removed before this save could lock them (is something else deleting files there?)"
    )


def _remove_stale_temporaries(directory: str, name: str) -> None:
    """Remove the temporary files of earlier saves of ``name`` that were killed mid-write.
    A temporary file a live save is writing is locked, and kept; the lock taken here is held
    while the file is removed, so a save that locks it afterwards sees that it is gone."""
    pattern = _temporary_pattern(name)
    for entry in os.listdir(directory):
        if not pattern.fullmatch(entry):
            continue
        stale = os.path.join(directory, entry)
        try:
            if not os.path.isfile(stale) or os.path.islink(stale):
                continue
            if fcntl is None:
                os.unlink(stale)
                continue
            with open(stale, "rb") as f:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live save holds it
                os.unlink(stale)
        except OSError:
            continue  # removed by another save first, or not ours to remove: the save goes on


def _mode_for(target: str) -> int:
    """The permission bits for the new file: the replaced file's, or 0666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # elsewhere, reading it means setting it: briefly, and strictly
    os.umask(mask)
    return mask


def _sync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- restore --------------------------------------------------------------------------------

# what a damaged zip, a damaged deflate stream or a damaged .npy header raise
_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    OSError,
    EOFError,
    ValueError,
    RuntimeError,
    NotImplementedError,
)


class _Leaf(NamedTuple):
    """One leaf as the metadata describes it; ``key`` is None for a None leaf."""

    path: str
    key: str | None
    shape: tuple[int, ...] = ()
    dtype: np.dtype | None = None
    stored: np.dtype | None = None  # the dtype of the .npy member (raw bits for bfloat16)


class _Reader:
    """A checkpoint file open for reading. Opening checks the member list and the metadata;
    ``tree`` checks every wanted member's .npy header, then reads exactly its bytes."""

    def __init__(self, path: str, versions: tuple[int | None, ...]):
        self.path = path
        self.file = self._open_regular_file()
        try:
            self.zip = zipfile.ZipFile(self.file)
        except _READ_ERRORS as e:
            self.file.close()
            raise self.error(
                f"is not a readable gradchain checkpoint (not an .npz file, or corrupted or "
                f"truncated?): {e}"
            ) from None
        try:
            self.members: dict[str, zipfile.ZipInfo] = {}
            for info in self.zip.infolist():
                if info.filename in self.members:
                    raise self.error(f"is damaged: it holds {info.filename!r} twice")
                self.members[info.filename] = info
            meta = self._metadata()
            self.step = self._check_version_and_step(meta, versions)
            self.leaves = {name: self._leaves(meta, name) for name in _TREES}
            self._refuse_unknown_members()
            self.optimizer = meta.get("optimizer")  # None in files from before it was recorded
        except BaseException:
            self.close()
            raise

    def _open_regular_file(self) -> Any:
        """The file, opened without blocking and refused unless it is a regular file: reading
        a FIFO or a device would wait for a writer forever."""
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                kind = (
                    "a directory"
                    if stat.S_ISDIR(mode)
                    else "a FIFO (named pipe)"
                    if stat.S_ISFIFO(mode)
                    else "a socket"
                    if stat.S_ISSOCK(mode)
                    else "a device"
                    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                    else "not a regular file"
                )
                raise self.error(
                    f"is {kind}, not a checkpoint file: restore reads regular files only "
                    "(give the path of a file written by gradchain.checkpoint.save)"
                )
            if hasattr(os, "set_blocking"):
                os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        if hasattr(self, "zip"):
            self.zip.close()
        self.file.close()

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def check_optimizer(self, opt_state_like: Any) -> None:
        """Refuse a state written by another optimizer than the target's (see ``restore``)."""
        if self.optimizer is None:
            return  # written before the optimizer was recorded: nothing to compare
        if not isinstance(self.optimizer, str):
            raise self.error(f"is damaged: its optimizer record is {self.optimizer!r}")
        target = _state_record(opt_state_like)
        if target != self.optimizer:
            raise self.error(
                f"was written by another optimizer: its state is {self.optimizer}, the "
                f"target's is {target}. To load it into this optimizer on purpose, pass "
                "restore(..., allow_other_optimizer=True); every leaf must still match in "
                "path, shape and dtype"
            )

    def error(self, problem: str) -> CheckpointError:
        return CheckpointError(f"{self.path} {problem}")

    # the file's own consistency, before any target is looked at

    def _metadata(self) -> dict[str, Any]:
        info = self.members.get(_META + ".npy")
        if info is None:
            raise self.error(f"is not a gradchain checkpoint (no {_META} entry)")
        shape, dtype = self._header(info, "its metadata")
        if dtype != np.uint8 or len(shape) != 1 or shape[0] > _MAX_META_BYTES:
            raise self.error(
                f"is damaged: its metadata is {dtype.name}{list(shape)}, not up to "
                f"{_MAX_META_BYTES} bytes of JSON"
            )
        raw = self._data(info, shape, dtype, "its metadata")
        try:
            meta = json.loads(raw.tobytes().decode())
        except (UnicodeError, ValueError, RecursionError) as e:
            raise self.error(f"is damaged: its metadata is not JSON ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise self.error("is not a gradchain checkpoint (unknown metadata)")
        return meta

    def _check_version_and_step(self, meta: dict[str, Any], versions: tuple) -> int:
        version = meta.get("version")
        if isinstance(version, bool) or version not in versions:
            if version is None:
                written = "has no format version (written before versions were recorded)"
            else:
                written = f"has checkpoint format version {version!r}"
            if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
                advice = "it was written by a newer gradchain: upgrade gradchain to restore it"
            else:
                advice = (
                    "the optimizer state's layout changed in version 2 (hyperparameters moved "
                    "out of each transform's state into one place per optimizer), so this "
                    "state cannot be restored: restart from the params alone, with "
                    "`params, step = gradchain.checkpoint.restore_params(path, params)` and "
                    "`opt_state = opt.init(params)`"
                )
            raise self.error(f"{written}; this gradchain reads version {VERSION}: {advice}")
        step = meta.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise self.error(f"is damaged: its step is {step!r}, not an integer >= 0")
        return step

    def _leaves(self, meta: dict[str, Any], name: str) -> list[_Leaf]:
        entries = meta.get(name)
        if not isinstance(entries, list):
            raise self.error(f"is damaged: its metadata has no list of {name} leaves")
        leaves = []
        for i, entry in enumerate(entries):
            where = entry.get("path") if isinstance(entry, dict) else None
            if not isinstance(where, str):
                raise self.error(f"is damaged: entry {i} of its {name} metadata has no path")
            if entry.get("none") is True:
                leaves.append(_Leaf(where, None))
                continue
            key, shape, dtype = entry.get("key"), entry.get("shape"), entry.get("dtype")
            if not (
                isinstance(key, str)
                and isinstance(shape, list)
                and all(type(d) is int and d >= 0 for d in shape)
                and isinstance(dtype, str)
            ):
                raise self.error(
                    f"is damaged: the metadata of {name} at {where} is {entry!r}, not a key, "
                    "a shape (integers >= 0) and a dtype"
                )
            real = self._dtype(dtype, name, where)
            stored = self._dtype(entry.get("stored_as", dtype), name, where)
            if stored.kind not in "biufc" or stored.itemsize != real.itemsize:
                raise self.error(
                    f"is damaged: {name} at {where} is stored as {stored.name}, which cannot "
                    f"hold {real.name}"
                )
            leaves.append(_Leaf(where, key, tuple(shape), real, stored))
        return leaves

    def _dtype(self, text: Any, name: str, where: str) -> np.dtype:
        try:
            dtype = np.dtype(jnp.dtype(text))
        except (TypeError, ValueError):
            dtype = None
        if dtype is None or dtype.hasobject:
            raise self.error(f"is damaged: {name} at {where} has an unknown dtype {text!r}")
        return dtype

    def _refuse_unknown_members(self) -> None:
        keys = [leaf.key for name in _TREES for leaf in self.leaves[name] if leaf.key]
        if len(set(keys)) != len(keys):
            raise self.error("is damaged: its metadata names one array for two leaves")
        unknown = sorted(set(self.members) - {k + ".npy" for k in keys} - {_META + ".npy"})
        if unknown:
            listed = ", ".join(map(repr, unknown[:4])) + (", ..." if len(unknown) > 4 else "")
            raise self.error(
                f"holds {len(unknown)} entr{'y' if len(unknown) == 1 else 'ies'} that its "
                f"metadata does not name: {listed}; refused, as a damaged or crafted file"
            )

    # reading one member: its header, then exactly the bytes the header promises

    def _open(self, info: zipfile.ZipInfo, what: str) -> Any:
        try:
            return self.zip.open(info)
        except _READ_ERRORS as e:
            raise self.error(f"is corrupted or truncated: cannot open {what} ({e})") from None

    def _header(self, info: zipfile.ZipInfo, what: str) -> tuple[tuple[int, ...], np.dtype]:
        """The member's .npy shape and dtype, after checking that its size is exactly the
        header plus ``prod(shape) * itemsize`` bytes. Reads the header only."""
        with self._open(info, what) as f:
            shape, dtype, offset = self._read_header(f, what)
        size = offset + math.prod(shape) * dtype.itemsize
        if info.file_size != size:
            raise self.error(
                f"is damaged or crafted: {what} is {info.file_size} bytes, its .npy header "
                f"({dtype.name}{list(shape)}) promises {size}"
            )
        return shape, dtype

    def _read_header(self, f: Any, what: str) -> tuple[tuple[int, ...], np.dtype, int]:
        try:
            version = npy_format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = npy_format.read_array_header_2_0(f)
            else:
                raise ValueError(f".npy format version {version}")
        except _READ_ERRORS as e:
            raise self.error(
                f"is corrupted or truncated: {what} has no readable .npy header ({e})"
            ) from None
        if fortran and len(shape) > 1:
            raise self.error(
                f"is damaged: {what} is stored in Fortran (column-major) order, which save "
                "never writes"
            )
        if dtype.hasobject:
            raise self.error(f"is refused: {what} holds Python objects (pickles)")
        return tuple(shape), dtype, f.tell()

    def _data(
        self, info: zipfile.ZipInfo, shape: tuple[int, ...], dtype: np.dtype, what: str
    ) -> np.ndarray:
        """The member's array; it reads (and inflates) its header and ``nbytes``, no more."""
        nbytes = math.prod(shape) * dtype.itemsize
        with self._open(info, what) as f:
            self._read_header(f, what)
            try:
                data = f.read(nbytes)
                rest = f.read(1)  # b"" at the end, once the zip's CRC has been checked
            except _READ_ERRORS as e:
                raise self.error(f"is corrupted or truncated: reading {what}: {e}") from None
        if len(data) != nbytes or rest:
            raise self.error(f"is corrupted or truncated: {what} does not hold {nbytes} bytes")
        return np.frombuffer(data, dtype).reshape(shape)

    # one tree, against its target

    def tree(self, name: str, like: Any) -> Any:
        """The tree ``name`` of the file, in the structure of ``like``, every leaf checked:
        paths, shapes and dtypes against the target, then every header, then the data."""
        targets, treedef = _flatten(like)
        leaves = self.leaves[name]
        saved_paths = [leaf.path for leaf in leaves]
        target_paths = [p for p, _ in targets]
        if saved_paths != target_paths:
            only_file = [p for p in saved_paths if p not in set(target_paths)]
            only_target = [p for p in target_paths if p not in set(saved_paths)]
            detail = "; ".join(
                f"{label}: {', '.join(map(str, paths[:4]))}"
                for label, paths in (
                    ("only in the file", only_file),
                    ("only in the target", only_target),
                )
                if paths
            )
            raise self.error(
                f"does not fit: {name} has another tree structure than the target "
                f"({detail or 'the same leaves in another order'}): was it saved by another "
                "optimizer, or for other params?"
            )
        wanted = []
        for (where, target), leaf in zip(targets, leaves):
            if leaf.key is None or target is None:
                if not (leaf.key is None and target is None):
                    raise self.error(
                        f"does not fit: {name} at {where} is None in one of the file and the "
                        "target only"
                    )
                continue
            want_shape, want_dtype = _target_of(target)
            if leaf.shape != want_shape:
                raise self.error(
                    f"does not fit: {name} at {where} has shape {leaf.shape} in the file, "
                    f"{want_shape} in the target"
                )
            if leaf.dtype != want_dtype:
                have, want = _dtype_texts(leaf.dtype, want_dtype)
                raise self.error(
                    f"does not fit: {name} at {where} has dtype {have} in the file, "
                    f"{want} in the target"
                )
            info = self.members.get(leaf.key + ".npy")
            if info is None:
                raise self.error(f"is damaged: no array for {name} at {where}")
            wanted.append((where, leaf, info))
        for where, leaf, info in wanted:  # every header before any data
            shape, stored = self._header(info, f"{name} at {where}")
            if shape != leaf.shape:
                raise self.error(
                    f"is damaged: {name} at {where} holds an array of shape {shape}, its "
                    f"metadata says {leaf.shape}"
                )
            if stored != leaf.stored:
                have, want = _dtype_texts(stored, leaf.stored)
                raise self.error(
                    f"is damaged: {name} at {where} holds {have}, its metadata says {want}"
                )
        arrays = iter(
            self._data(info, leaf.shape, leaf.stored, f"{name} at {where}").view(leaf.dtype)
            for where, leaf, info in wanted
        )
        return treedef.unflatten(
            [None if target is None else _place(next(arrays), target) for _, target in targets]
        )


def _target_of(leaf: Any) -> tuple[tuple[int, ...], np.dtype]:
    dtype = np.dtype(getattr(leaf, "dtype", None) or jnp.result_type(leaf))
    if dtype.byteorder not in ("=", "|"):  # a big-endian target gets its values, native-endian
        dtype = dtype.newbyteorder("=")
    return tuple(jnp.shape(leaf)), dtype


def _dtype_texts(a: np.dtype, b: np.dtype) -> tuple[str, str]:
    """Two different dtypes, spelled so that the difference shows: ``float32`` and
    ``bfloat16``, or, where the names agree, ``float32 (big-endian, '>f4')``."""
    if a.name != b.name:
        return a.name, b.name
    orders = {">": "big-endian", "<": "little-endian", "=": "native-endian", "|": "no byte order"}
    return tuple(  # type: ignore[return-value]
        f"{d.name} ({orders.get(d.byteorder, d.byteorder)}, {d.str!r})" for d in (a, b)
    )


def _place(x: np.ndarray, target: Any) -> jax.Array:
    """``x`` on the device(s) where ``target`` is, committed only if ``target`` is."""
    sharding = getattr(target, "sharding", None)
    if sharding is None or (isinstance(target, jax.Array) and not target.committed):
        return jnp.asarray(x)  # the default device, uncommitted: as jnp.zeros would be
    return jax.device_put(x, sharding)


def restore(
    path: str | os.PathLike,
    params_like: Any,
    opt_state_like: Any,
    *,
    allow_other_optimizer: bool = False,
) -> tuple[Any, Any, int]:
    """Read ``(params, opt_state, step)`` back from ``path``, in the structure of the targets.

    Args:       path -- a file written by ``save`` (format version 2).
                params_like, opt_state_like -- trees giving structure, shapes and dtypes:
                the params, and ``opt.init(params)`` or ``jax.eval_shape(opt.init, params)``.
                allow_other_optimizer -- a checkpoint records which optimizer wrote it (the
                nesting of its state NamedTuples, e.g. ``AdamLiveState(MomentumState, ...)``)
                and by default restore refuses it for another optimizer's state, even one
                with the same slots (adam into nadam). True loads it anyway, leaf by leaf;
                paths, shapes and dtypes must still match. Files written before the record
                existed carry none and are not checked.
    Returns:    ``(params, opt_state, step)``: JAX arrays placed as the targets are (see
                "Placement" in the module docstring), the targets' tree types, an int.
    Raises:     ``CheckpointError`` on a state written by another optimizer (see above), on
                any mismatch of paths, shapes or dtypes, on a file of another format version
                (for version 1, use ``restore_params``), on a path that is not a regular file
                (a FIFO, a directory), and on a damaged or crafted file;
                ``FileNotFoundError`` if there is no file.
    """
    path = _file_path(path)
    with _Reader(path, versions=(VERSION,)) as reader:
        if not allow_other_optimizer:
            reader.check_optimizer(opt_state_like)
        params = reader.tree("params", params_like)
        opt_state = reader.tree("opt_state", opt_state_like)
    return params, opt_state, reader.step


def restore_params(path: str | os.PathLike, params_like: Any) -> tuple[Any, int]:
    """Read only ``(params, step)`` from ``path``: to restart a run with a fresh optimizer
    state (``opt.init(params)``) from a checkpoint whose state this gradchain cannot read.

    Args:       path -- a file written by ``save``, format version 1 or 2 (or unversioned).
                params_like -- the params tree giving structure, shapes and dtypes.
    Returns:    ``(params, step)``. The file's optimizer-state arrays are not read.
    Raises:     as ``restore``.
    """
    path = _file_path(path)
    with _Reader(path, versions=_PARAMS_READABLE) as reader:
        return reader.tree("params", params_like), reader.step
