"""Saving and restoring a training state ``(params, opt_state, step)``, losing nothing.

Format:     one NumPy ``.npz`` file (a zip of ``.npy`` arrays, read with
            ``allow_pickle=False``: no code runs on load). Each leaf is stored under its tree
            path (``params['w']``, ``opt_state[0].mu['w']``); one more entry, ``__gradchain__``,
            holds JSON metadata: format version, step, and for every leaf its path, shape and
            dtype. Dtypes NumPy cannot store natively (bfloat16, float8) are stored as their
            raw bits (uint16, uint8) with the real dtype recorded. ``None`` leaves (slots an
            option turned off) are recorded as such.
Atomicity:  ``save`` writes a temporary file in the same directory, flushes it to disk, then
            ``os.replace``-s it over the target: a crash mid-save leaves the previous
            checkpoint intact (and no half-written file under the target's name).
Structure:  the file holds no Python types. ``restore`` takes the tree structure -- dicts,
            lists, the state NamedTuples -- from targets you pass: a freshly initialized
            state, or ``jax.eval_shape(opt.init, params)`` to allocate nothing. Every path,
            shape and dtype is checked against the target; a mismatch, or a corrupted or
            truncated file, raises ``GradchainError`` naming the leaf.
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
import os
import tempfile
import zipfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._checks import GradchainError, path_str

__all__ = ["restore", "save"]

FORMAT = "gradchain-checkpoint"
VERSION = 1
_META = "__gradchain__"
_TREES = ("params", "opt_state")


def _is_none(x: Any) -> bool:
    return x is None


def _flatten(tree: Any) -> tuple[list[tuple[str, Any]], Any]:
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_none)
    return [(path_str(p), x) for p, x in leaves], treedef


def _to_numpy(name: str, where: str, leaf: Any) -> np.ndarray:
    """A leaf as a host array, in the dtype JAX gives it (a Python float becomes float32)."""
    if not hasattr(leaf, "dtype"):
        if not isinstance(leaf, (int, float, complex, np.generic)):
            raise GradchainError(
                f"cannot save {name} at {where}: a leaf of type {type(leaf).__name__} "
                "(checkpoints hold arrays and numbers)"
            )
        leaf = jnp.asarray(leaf)
    if leaf.dtype == jax.dtypes.float0:
        raise GradchainError(f"cannot save {name} at {where}: a float0 leaf holds no data")
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
                params, opt_state -- pytrees of arrays (None leaves allowed).
                step -- the training step, an integer >= 0.
    """
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer, jax.Array)):
        raise GradchainError(f"step must be an integer, got {step!r}")
    if jnp.shape(step) != () or not jnp.issubdtype(jnp.result_type(step), jnp.integer):
        raise GradchainError(f"step must be an integer scalar, got {step!r}")
    step = int(step)
    if step < 0:
        raise GradchainError(f"step must be >= 0, got {step}")
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
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(target)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
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


def _read(path: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The metadata and every array of a checkpoint file, or a clear error if it is damaged."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if _META not in z.files:
                raise GradchainError(f"{path} is not a gradchain checkpoint (no {_META} entry)")
            meta = json.loads(z[_META].tobytes().decode())
            arrays = {k: z[k] for k in z.files if k != _META}
    except GradchainError:
        raise
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, UnicodeError) as e:
        raise GradchainError(
            f"{path} is not a readable gradchain checkpoint (corrupted or truncated?): {e}"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise GradchainError(f"{path} is not a gradchain checkpoint (unknown metadata)")
    if meta.get("version") != VERSION:
        raise GradchainError(
            f"{path} has checkpoint format version {meta.get('version')}; "
            f"this gradchain reads version {VERSION}"
        )
    return meta, arrays


def _target_of(leaf: Any) -> tuple[tuple[int, ...], np.dtype]:
    return tuple(jnp.shape(leaf)), np.dtype(getattr(leaf, "dtype", None) or jnp.result_type(leaf))


def _rebuild(path: str, name: str, like: Any, meta: dict[str, Any], arrays: dict) -> Any:
    """The tree ``name`` of the file, in the structure of ``like``, every leaf checked."""
    targets, treedef = _flatten(like)
    entries = meta.get(name)
    if not isinstance(entries, list):
        raise GradchainError(f"{path} is not a readable gradchain checkpoint (no {name} list)")
    saved_paths = [e.get("path") for e in entries]
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
        raise GradchainError(
            f"{path}: {name} has another tree structure than the target "
            f"({detail or 'the same leaves in another order'}): was it saved by another "
            "optimizer, or for other params?"
        )
    leaves = []
    for (where, target), entry in zip(targets, entries):
        if entry.get("none") or target is None:
            if not (entry.get("none") and target is None):
                raise GradchainError(
                    f"{path}: {name} at {where} is None in one of the file and the target only"
                )
            leaves.append(None)
            continue
        want_shape, want_dtype = _target_of(target)
        shape, dtype = tuple(entry["shape"]), np.dtype(jnp.dtype(entry["dtype"]))
        if shape != want_shape:
            raise GradchainError(
                f"{path}: {name} at {where} has shape {shape} in the file, "
                f"{want_shape} in the target"
            )
        if dtype != want_dtype:
            raise GradchainError(
                f"{path}: {name} at {where} has dtype {dtype.name} in the file, "
                f"{want_dtype.name} in the target"
            )
        if entry.get("key") not in arrays:
            raise GradchainError(f"{path} is damaged: no array for {name} at {where}")
        x = arrays[entry["key"]]
        if "stored_as" in entry:
            x = x.view(dtype) if x.dtype == np.dtype(entry["stored_as"]) else x
        if x.shape != shape or x.dtype != dtype:
            raise GradchainError(
                f"{path} is damaged: {name} at {where} holds {x.dtype.name}{list(x.shape)}, "
                f"its metadata says {dtype.name}{list(shape)}"
            )
        sharding = getattr(target, "sharding", None)
        leaves.append(jax.device_put(x, sharding) if sharding is not None else jnp.asarray(x))
    return treedef.unflatten(leaves)


def restore(path: str | os.PathLike, params_like: Any, opt_state_like: Any) -> tuple[Any, Any, int]:
    """Read ``(params, opt_state, step)`` back from ``path``, in the structure of the targets.

    Args:       path -- a file written by ``save``.
                params_like, opt_state_like -- trees giving structure, shapes and dtypes:
                the params, and ``opt.init(params)`` or ``jax.eval_shape(opt.init, params)``.
                A target leaf's sharding (a placed array, or a ``ShapeDtypeStruct`` with one)
                places the restored array.
    Returns:    ``(params, opt_state, step)``: JAX arrays, the targets' tree types, an int.
    Raises:     ``GradchainError`` on any mismatch of paths, shapes or dtypes, and on a
                damaged file; ``FileNotFoundError`` if there is no file.
    """
    path = _file_path(path)
    meta, arrays = _read(path)
    params = _rebuild(path, "params", params_like, meta, arrays)
    opt_state = _rebuild(path, "opt_state", opt_state_like, meta, arrays)
    step = meta.get("step")
    if not isinstance(step, int) or isinstance(step, bool):
        raise GradchainError(f"{path} is damaged: its step is {step!r}")
    return params, opt_state, step
