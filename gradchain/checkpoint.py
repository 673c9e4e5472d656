"""Saving and restoring a training state ``(params, opt_state, step)``, losing nothing.

Format:     one NumPy ``.npz`` file (a zip of ``.npy`` arrays; no pickles, no code runs on
            load). Each leaf is stored under its tree path (``params['w']``,
            ``opt_state[0].mu['w']``); one more entry, ``__gradchain__``, holds JSON metadata:
            format version, step, and for every leaf its path, shape and dtype. Dtypes NumPy
            cannot store natively (bfloat16, float8) are stored as their raw bits (uint16,
            uint8) with the real dtype recorded. ``None`` leaves (slots an option turned off)
            are recorded as such.
Versions:   this gradchain writes and restores format version 2 (``VERSION``). Version 1
            (and unversioned files) hold the optimizer state in the layout from before the
            hyperparameters moved out of each transform's state: ``restore`` refuses them,
            and ``restore_params`` still reads their params, to restart the optimizer from.
Atomicity:  ``save`` creates the target's directory if needed, writes a temporary file
            ``.NAME.XXXXXXXX.tmp`` beside the target, flushes it to disk, then ``os.replace``-s
            it over the target: a crash mid-save leaves the previous checkpoint intact and no
            half-written file under the target's name. A process killed mid-save (``kill -9``)
            cannot remove its temporary file; the next ``save`` of the same target does,
            before it writes (only files of that pattern, for that target, that no live save
            holds locked). The saved file keeps the mode of the file it replaces; a new file
            gets the mode the umask allows (0644 under the usual umask 022).
Restoring:  the file holds no Python types. ``restore`` takes the tree structure -- dicts,
            lists, the state NamedTuples -- from targets you pass: a freshly initialized
            state, or ``jax.eval_shape(opt.init, params)`` to allocate nothing. Before reading
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
    """A leaf as a host array, in the dtype JAX gives it (a Python float becomes float32)."""
    if not hasattr(leaf, "dtype"):
        if not isinstance(leaf, (int, float, complex, np.generic)):
            raise CheckpointError(
                f"cannot save {name} at {where}: a leaf of type {type(leaf).__name__} "
                "(checkpoints hold arrays and numbers)"
            )
        leaf = jnp.asarray(leaf)
    if leaf.dtype == jax.dtypes.float0:
        raise CheckpointError(f"cannot save {name} at {where}: a float0 leaf holds no data")
    return np.asarray(jax.device_get(leaf))


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
    for name, tree in zip(_TREES, (params, opt_state)):
        entries = []
        for where, leaf in _flatten(tree)[0]:
            key = name + ("" if where == "<root>" else where)
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
    directory = os.path.dirname(os.path.abspath(target))
    os.makedirs(directory, exist_ok=True)
    name = os.path.basename(target)
    _remove_stale_temporaries(directory, name)
    mode = _mode_for(target)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # held until the rename
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


def _temporary_pattern(name: str) -> re.Pattern[str]:
    """The names ``tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp")`` gives, and no other."""
    return re.compile(re.escape(f".{name}.") + r"[a-z0-9_]{8}\.tmp")


def _remove_stale_temporaries(directory: str, name: str) -> None:
    """Remove the temporary files of earlier saves of ``name`` that were killed mid-write.
    A temporary file a live save is writing is locked, and kept."""
    pattern = _temporary_pattern(name)
    for entry in os.listdir(directory):
        if not pattern.fullmatch(entry):
            continue
        stale = os.path.join(directory, entry)
        try:
            if not os.path.isfile(stale) or os.path.islink(stale) or _locked(stale):
                continue
            os.unlink(stale)
        except OSError:
            continue  # removed by another save first, or not ours to remove: the save goes on


def _locked(path: str) -> bool:
    """Whether a live save holds ``path`` (its writer's lock); False where locks do not exist."""
    if fcntl is None:
        return False
    with open(path, "rb") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return False


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
        try:
            self.zip = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise
        except _READ_ERRORS as e:
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
        except BaseException:
            self.zip.close()
            raise

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.zip.close()

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
            raise self.error(f"is damaged: {what} is in Fortran order, which save never writes")
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
                raise self.error(
                    f"does not fit: {name} at {where} has dtype {leaf.dtype.name} in the file, "
                    f"{want_dtype.name} in the target"
                )
            info = self.members.get(leaf.key + ".npy")
            if info is None:
                raise self.error(f"is damaged: no array for {name} at {where}")
            wanted.append((where, leaf, info))
        for where, leaf, info in wanted:  # every header before any data
            shape, stored = self._header(info, f"{name} at {where}")
            if shape != leaf.shape or stored != leaf.stored:
                raise self.error(
                    f"is damaged: {name} at {where} holds {stored.name}{list(shape)}, its "
                    f"metadata says {leaf.stored.name}{list(leaf.shape)}"
                )
        arrays = iter(
            self._data(info, leaf.shape, leaf.stored, f"{name} at {where}").view(leaf.dtype)
            for where, leaf, info in wanted
        )
        return treedef.unflatten(
            [None if target is None else _place(next(arrays), target) for _, target in targets]
        )


def _target_of(leaf: Any) -> tuple[tuple[int, ...], np.dtype]:
    return tuple(jnp.shape(leaf)), np.dtype(getattr(leaf, "dtype", None) or jnp.result_type(leaf))


def _place(x: np.ndarray, target: Any) -> jax.Array:
    """``x`` on the device(s) where ``target`` is, committed only if ``target`` is."""
    sharding = getattr(target, "sharding", None)
    if sharding is None or (isinstance(target, jax.Array) and not target.committed):
        return jnp.asarray(x)  # the default device, uncommitted: as jnp.zeros would be
    return jax.device_put(x, sharding)


def restore(path: str | os.PathLike, params_like: Any, opt_state_like: Any) -> tuple[Any, Any, int]:
    """Read ``(params, opt_state, step)`` back from ``path``, in the structure of the targets.

    Args:       path -- a file written by ``save`` (format version 2).
                params_like, opt_state_like -- trees giving structure, shapes and dtypes:
                the params, and ``opt.init(params)`` or ``jax.eval_shape(opt.init, params)``.
    Returns:    ``(params, opt_state, step)``: JAX arrays placed as the targets are (see
                "Placement" in the module docstring), the targets' tree types, an int.
    Raises:     ``CheckpointError`` on any mismatch of paths, shapes or dtypes, on a file of
                another format version (for version 1, use ``restore_params``), and on a
                damaged or crafted file; ``FileNotFoundError`` if there is no file.
    """
    path = _file_path(path)
    with _Reader(path, versions=(VERSION,)) as reader:
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
