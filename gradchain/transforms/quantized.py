"""8-bit moments: keep a transform's moment slots as one byte per entry plus a float32 scale
per block, and run its math unchanged on the dequantized values.

``quantized_moments(scale_by_rms(0.999), nu="uint8")`` is ``scale_by_rms`` whose ``nu`` is
stored in 8 bits: each step decodes the slot, lets the transform update it in float32 (at
least), and encodes the new value. The transforms themselves know nothing about it.

The layout keeps sharding simple. A quantized leaf is a ``QuantizedArray`` of
``codes`` -- int8 or uint8, *the parameter's shape*, so it takes the parameter's sharding -- and
``scales`` -- float32, the parameter's shape with its last axis cut into blocks of
``block_size`` (shape ``(..., ceil(n / block_size))``): one absmax per block of a row, as in
Dettmers et al.'s block-wise quantization, with blocks along the last axis instead of the
flattened array so that no reshape crosses a sharded axis.

The code (the 256 values a byte can mean, relative to the block's absmax) is logarithmic:
  uint8 (second moments, >= 0):  0 -> 0 ;  k = 1..255 -> R**(-(255 - k) / 254), R = 1e8
                                 relative error <= 3.7% for entries >= absmax / R
  int8  (first moments, signed): 0 -> 0 ;  +-j, j = 1..127 -> +-R**(-(127 - j) / 126), R = 1e6
                                 relative error <= 5.7% for |entries| >= absmax / R
A log code gives every entry the same *relative* precision wherever it sits below its block's
maximum -- what a second moment spanning many orders of magnitude needs, since the update
divides by its square root. A linear (absmax) code rounds an entry 1e-3 below its block's
maximum to 0, and Adam then divides by eps. Measured in ``docs/memory_saving.md``. Positive
second moments never round to 0: below the code's range they round up to its smallest value
(a larger denominator: a smaller, safe step).

A non-finite entry (a NaN, an inf, or a square that overflowed) stays in its entry: the block's
absmax is taken over its finite entries, and a block that holds a non-finite entry stores its
scale negative, stretched so that its finite absmax falls on code top - 2; codes +-top then
mean +-inf and top - 1 NaN (its finite entries keep the code's relative precision over a
range 1.16x (uint8) or 1.25x (int8) narrower). Measured: 1e30 in one gradient entry of 8-bit
Adam made all 256 entries of its block NaN for good; now only that entry is lost, as in float32
Adam, whatever the leaf's shape.

A signed (first-moment) entry whose square overflows (|x| > sqrt(float32 max) = 1.8e19) is a
fault too: its second moment is inf (its update 0 in float32 Adam), and as its block's absmax it
rounded the block's other 255 entries to 0, which then stopped moving (measured: a gradient of
3e25 froze them for hundreds of steps). It is stored as +-inf instead, visibly: 8-bit Adam's
update there is inf / inf = NaN, where float32 Adam's is a quiet 0.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradchain import _checks
from gradchain.base import GradientTransformation
from gradchain.transforms.mesh_axes import explicit_spec
from gradchain.transforms.moment_math import compute_dtype

__all__ = [
    "CODES",
    "Quantized",
    "QuantizedArray",
    "as_blocks",
    "dequantize",
    "from_blocks",
    "quantize",
    "quantized_moments",
]


class _LogCode:
    """A sign-and-magnitude logarithmic byte code over [R**-1, 1] (times the block absmax)."""

    def __init__(self, name: str, signed: bool, dynamic_range: float):
        self.name, self.signed, self.dynamic_range = name, signed, dynamic_range
        self.top = 127 if signed else 255  # largest code: the block's absmax
        self.storage = jnp.int8 if signed else jnp.uint8
        steps = self.top - 1  # codes 1..top cover dynamic_range in `steps` equal log-steps
        self.log_step = math.log(dynamic_range) / steps
        # magnitude of code k (k = 0..top), exactly what decoding returns
        k = np.arange(self.top + 1, dtype=np.float64)
        self.table = np.where(k > 0, np.exp((k - self.top) * self.log_step), 0.0)

    def encode(self, r: jax.Array) -> jax.Array:
        """r in [-1, 1] (or [0, 1]) -> codes; nearest in log scale. r must be finite."""
        m = jnp.abs(r)
        tiny = jnp.asarray(1 / self.dynamic_range, m.dtype)
        safe = jnp.where(m > 0, m, 1)
        k = jnp.clip(jnp.round(self.top + jnp.log(safe) / self.log_step), 1, self.top)
        if self.signed:  # a magnitude below half the smallest code is nearer to 0
            k = jnp.where(m < tiny / 2, 0, k) * jnp.sign(r)
        else:  # never 0 for a positive value: a second moment must not vanish
            k = jnp.where(m > 0, k, 0)
        return k.astype(self.storage)

    def encode_faults(self, k: jax.Array, x: jax.Array, ok: jax.Array) -> jax.Array:
        """Codes of a block holding a non-finite entry (its entries where ``ok`` use codes up
        to ``top - 2``): +-inf (and an overflowing finite entry) -> +-top, NaN -> top - 1
        (and -inf too, for an unsigned code)."""
        nan_code, top = self.top - 1, self.top
        if self.signed:
            fault = jnp.where(jnp.isnan(x), nan_code, jnp.where(x > 0, top, -top))
        else:  # a non-negative moment: -inf has no code of its own
            fault = jnp.where(x == jnp.inf, top, nan_code)
        return jnp.where(ok, k, fault.astype(k.dtype))

    def decode(self, codes: jax.Array, dtype: Any) -> jax.Array:
        table = jnp.asarray(self.table, dtype)
        k = codes.astype(jnp.int32)
        if not self.signed:
            return _lookup(table, k)
        return jnp.sign(k).astype(dtype) * _lookup(table, jnp.abs(k))

    def decode_faults(self, values: jax.Array, codes: jax.Array) -> jax.Array:
        """In a block holding a non-finite entry: code +-top is +-inf, code top - 1 is NaN."""
        k = jnp.abs(codes.astype(jnp.int32))
        inf = jnp.where(codes.astype(jnp.int32) < 0, -jnp.inf, jnp.inf).astype(values.dtype)
        return jnp.where(k == self.top, inf, jnp.where(k == self.top - 1, jnp.nan, values))


def _lookup(table: jax.Array, k: jax.Array) -> jax.Array:
    """table[k], one gather, typed like the codes k. On a mesh with Explicit axes JAX cannot
    infer the sharding of a gather from a replicated table by sharded indices (it raises
    'Resource axis ... not found in mesh'): it is told the codes' own, so every device looks
    up its own codes and nothing moves between devices."""
    spec = explicit_spec(k)
    if spec is None:
        return table[k]
    return table.at[k].get(out_sharding=jax.sharding.PartitionSpec(*spec))


CODES = {
    "uint8": _LogCode("uint8", signed=False, dynamic_range=1e8),
    "int8": _LogCode("int8", signed=True, dynamic_range=1e6),
}


class Quantized:
    """A moment array kept in fewer bits: what ``quantized_moments`` decodes before a step and
    re-encodes after it. ``QuantizedArray`` (8-bit) is one; a code of another module (e.g. the
    4-bit codes of ``gradchain.transforms.quantized_4bit``) brings its own."""

    def decode(self) -> jax.Array:
        """The array it stands for, in the dtype it was quantized from."""
        raise NotImplementedError

    def encode(self, x: jax.Array) -> Quantized:
        """``x`` (of the same shape and dtype) stored the same way: same code, same blocks."""
        raise NotImplementedError


@jax.tree_util.register_pytree_node_class
class QuantizedArray(Quantized):
    """One moment array stored in 8 bits: ``codes`` (the param's shape, int8 or uint8) and
    ``scales`` (float32, one absmax per block of ``block_size`` along the last axis).

    The code name, block size and the dtype it decodes to are static (part of the tree
    structure): the state is a pytree of two arrays per parameter, jit-safe, with fixed
    dtypes.
    """

    def __init__(self, codes: Any, scales: Any, code: str, block_size: int, dtype: Any):
        self.codes, self.scales = codes, scales
        self.code, self.block_size, self.logical_dtype = code, block_size, jnp.dtype(dtype)

    @property
    def logical_shape(self) -> tuple[int, ...]:
        """The shape of the array it stands for (the codes' shape)."""
        return tuple(jnp.shape(self.codes))

    @property
    def nbytes(self) -> int:
        """The real bytes it holds: one per code, four per scale."""
        return int(np.prod(self.logical_shape)) + 4 * int(np.prod(jnp.shape(self.scales)))

    def decode(self) -> jax.Array:
        return dequantize(self)

    def encode(self, x: jax.Array) -> QuantizedArray:
        return quantize(x, self.code, self.block_size)

    def tree_flatten(self):
        return (self.codes, self.scales), (self.code, self.block_size, self.logical_dtype)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, *aux)

    def __repr__(self) -> str:
        return (
            f"QuantizedArray({self.code}, shape={self.logical_shape}, "
            f"block_size={self.block_size}, decodes to {self.logical_dtype.name})"
        )


def _blocks(shape: tuple[int, ...], block_size: int) -> tuple[int, int]:
    """(block length, number of blocks) along the last axis."""
    n = shape[-1] if shape else 1
    size = min(block_size, n)
    return size, -(-n // size)


def as_blocks(x: jax.Array, block_size: int) -> jax.Array:
    """(..., n) -> (..., nb, size): the last axis cut into blocks of ``min(block_size, n)``,
    zero-padded at its end (a 0-d array is one block of one)."""
    x = x.reshape(x.shape or (1,))
    size, nb = _blocks(x.shape, block_size)
    pad = nb * size - x.shape[-1]
    if pad:
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])
    return x.reshape(*x.shape[:-1], nb, size)


def from_blocks(xb: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The inverse of ``as_blocks``: (..., nb, size) -> ``shape``, the padding dropped."""
    n = shape[-1] if shape else 1
    flat = xb.reshape(*xb.shape[:-2], -1)[..., :n]
    return flat.reshape(shape)


def quantize(x: jax.Array, code: str = "uint8", block_size: int = 256) -> QuantizedArray:
    """Encode an array: per block of ``block_size`` along the last axis, its absmax (float32)
    and one byte per entry. ``dequantize(quantize(x))`` is within the code's relative error
    of x for entries >= absmax / R of their block (see the module docstring)."""
    _checks.check_array("x", x)
    _checks.check_choice("code", code, tuple(CODES))
    _checks.check_int("block_size", block_size, minimum=1)
    book = CODES[code]
    c = compute_dtype(x.dtype)
    xb = as_blocks(jnp.asarray(x).astype(c), block_size)
    finite = jnp.isfinite(xb)
    if book.signed:  # a first moment whose square overflows: its second moment is inf
        finite = finite & (jnp.abs(xb) <= jnp.sqrt(jnp.asarray(jnp.finfo(c).max, c)))
    # The absmax of the finite entries only: one inf or NaN must not take its block with it
    # (and XLA's max over a NaN may or may not be NaN, depending on the array's shape).
    absmax = jnp.max(jnp.where(finite, jnp.abs(xb), 0), axis=-1, keepdims=True)
    faulty = ~jnp.all(finite, axis=-1, keepdims=True)
    # A block holding a non-finite entry keeps codes top - 1 and top for NaN and +-inf: its
    # scale is stretched so that its finite absmax falls on code top - 2, and stored negative.
    stretch = jnp.asarray(book.table[book.top - 2], c)
    scale = jnp.where(faulty, jnp.where(absmax > 0, absmax, 1) / stretch, absmax)
    r = jnp.where(finite & (scale > 0), xb / jnp.where(scale > 0, scale, 1), 0)
    k = book.encode_faults(book.encode(r), xb, finite)
    codes = from_blocks(k, jnp.shape(x))
    stored = jnp.where(faulty, -scale, scale).astype(jnp.float32)
    return QuantizedArray(codes, stored[..., 0], code, block_size, jnp.result_type(x))


def dequantize(q: Quantized) -> jax.Array:
    """Decode to the dtype the array had when it was quantized (8-bit, or any ``Quantized``)."""
    if not isinstance(q, Quantized):
        raise TypeError(f"dequantize() takes a QuantizedArray, got {type(q).__name__}")
    if not isinstance(q, QuantizedArray):
        return q.decode()
    book = CODES[q.code]
    c = compute_dtype(q.logical_dtype)
    codes = as_blocks(q.codes, q.block_size)
    scales = q.scales[..., None].astype(c)
    values = book.decode(codes, c) * jnp.abs(scales)
    values = jnp.where(scales < 0, book.decode_faults(values, codes), values)
    return from_blocks(values, q.logical_shape).astype(q.logical_dtype)


def _is_quantized(x: Any) -> bool:
    return isinstance(x, Quantized)


def _check_size(name: str, value: Any, minimum: int) -> None:
    """A size given as an array (Optax's ``inject_hyperparams``) is checked when it is known."""
    if isinstance(value, jax.core.Tracer):
        return
    if isinstance(value, (np.ndarray, jax.Array)) and np.shape(value) == ():
        x = np.asarray(value)
        real = jnp.issubdtype(x.dtype, jnp.integer) or jnp.issubdtype(x.dtype, jnp.floating)
        if real and np.isfinite(x) and float(x).is_integer():
            value = int(x)  # a whole number given as a 0-d array (Optax's inject_hyperparams)
    _checks.check_int(name, value, minimum)


def _size(name: str, value: Any) -> int:
    """A size that sets shapes, as a Python int: it must be known when ``init`` runs. (A
    TypeError, not a GradchainError: a chain's trace-time state check then skips this member.)"""
    if isinstance(value, jax.core.Tracer):
        raise TypeError(
            f"{name} sets the shape of the quantized state, so it cannot be traced at init: "
            f"keep it a Python int (optax.inject_hyperparams(..., static_args=({name!r},)))"
        )
    return int(np.asarray(value))


def quantized_moments(
    transform: GradientTransformation,
    *,
    block_size: int = 256,
    min_size: int = 4096,
    **slot_codes: str,
) -> GradientTransformation:
    r"""Store some of a transform's moment slots in 8 bits, block-wise (or in a 4-bit code).

    Update:     s <- dequantize(state.s) ; (u, state) <- transform.update(u, state) ;
                state.s <- quantize(s)   for every named slot s. The transform's math is
                unchanged and runs in float32 at least; only storage is 8-bit.
    State:      the transform's own state type, each named slot a tree of ``QuantizedArray``
                (codes: param's shape, 1 byte; scales: float32, one per block) for leaves of
                at least ``min_size`` entries, the slot's usual array for smaller leaves.
                Memory: ~0.25x of a float32 slot (1 byte + 4 / block_size bytes per entry).
    Args:       transform -- a gradchain transform whose state is a NamedTuple with the slots.
                block_size -- entries per scale along each row's last axis (> 0). It and
                min_size are read at ``init`` only (concrete arrays are accepted there).
                min_size -- smaller leaves stay unquantized (their scales would cost more than
                they save; bitsandbytes uses 4096).
                slot=code -- which slots, and their code: "int8" for signed moments (mu),
                "uint8" for non-negative ones (nu); or a code object, anything with a ``name``
                and ``quantize(x, block_size)`` returning a ``Quantized`` (the 4-bit codes of
                ``gradchain.transforms.quantized_4bit``).
    Example:    quantized_moments(scale_by_rms(0.999, bias_correction=True), nu="uint8")
    Reference:  Dettmers, Lewis, Shleifer & Zettlemoyer, "8-bit Optimizers via Block-wise
                Quantization", ICLR 2022.
    """
    if not slot_codes:
        raise _checks.GradchainError('quantized_moments() needs at least one slot, e.g. nu="uint8"')
    for slot, code in slot_codes.items():
        if isinstance(code, str) or not callable(getattr(code, "quantize", None)):
            _checks.check_choice(f"the code of slot {slot}", code, tuple(CODES))
    _check_size("block_size", block_size, 1)
    _check_size("min_size", min_size, 0)
    inner_name = getattr(transform, "name", "transform")

    def check_slots(state):
        fields = getattr(state, "_fields", ())
        missing = [s for s in slot_codes if s not in fields]
        if missing:
            raise _checks.GradchainError(
                f"quantized_moments({inner_name}): its state has no slot {missing[0]!r}; "
                f"its slots are {list(fields)}"
            )

    def encode_slot(tree, code):
        def leaf(x):  # update re-encodes with each leaf's own block size: sizes are for init
            if jnp.size(x) < _size("min_size", min_size):
                return x
            if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
                return x
            size = _size("block_size", block_size)
            return quantize(x, code, size) if isinstance(code, str) else code.quantize(x, size)

        return jax.tree.map(leaf, tree)

    def init(params):
        state = transform.init(params)
        check_slots(state)
        return state._replace(
            **{s: encode_slot(getattr(state, s), code) for s, code in slot_codes.items()}
        )

    def update(updates, state, params=None, **extra):
        decoded = {
            s: jax.tree.map(
                lambda x: dequantize(x) if _is_quantized(x) else x,
                getattr(state, s),
                is_leaf=_is_quantized,
            )
            for s in slot_codes
        }
        updates, new_state = transform.update(updates, state._replace(**decoded), params, **extra)

        def reencode(old, new):
            return old.encode(new) if _is_quantized(old) else new

        encoded = {
            s: jax.tree.map(
                reencode, getattr(state, s), getattr(new_state, s), is_leaf=_is_quantized
            )
            for s in slot_codes
        }
        return updates, new_state._replace(**encoded)

    slots = ", ".join(f"{s}={getattr(c, 'name', c)}" for s, c in slot_codes.items())
    return GradientTransformation(
        init,
        update,
        name=f"quantized_moments({inner_name}, {slots})",
        preprocessing=getattr(transform, "preprocessing", False),
    )
