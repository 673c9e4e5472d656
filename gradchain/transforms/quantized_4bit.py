"""4-bit moments (Li, Chen & Zhu, 2023): two codes per byte, and a scale chosen per moment.

``quantized_moments(scale_by_rms(0.999), nu=RANK1_LINEAR4, block_size=128)`` is
``scale_by_rms`` whose ``nu`` is stored in 4 bits: the wrapper of ``quantized.py`` decodes the
slot, lets the transform update it in float32 (at least), and encodes the new value with the
code given here. Three codes:

  DE4 ("de4", signed: first moments). One float32 absmax per block of ``block_size`` (the
      paper's 128) along the last axis, and a dynamic-exponent table of 16 values: the sign,
      then the exponent as the count of leading zeros (10**-e), an indicator bit, and the
      remaining bits a linear fraction in [0.1, 1]:
          0, +-0.0055, +-0.0325, +-0.0775, +-0.2125, +-0.4375, +-0.6625, +-0.8875, +1
      (no -1: 16 values). Rounding is *stochastic*: between the two table values around an
      entry, the upper with probability proportional to the distance, so the stored moment is
      unbiased. The error is below the gap around the entry (<= 0.225 * absmax; 0.0055 *
      absmax near 0; an entry below -0.8875 * absmax rounds to -0.8875 * absmax).
      The uniform numbers come from a hash of each entry's float32 bits and position: no key
      to keep, and the same array always encodes the same way. Differs from the paper on
      purpose, which rounds to nearest (DE4_NEAREST here): a moving-average step (1 - b1) *
      (g - m) smaller than half a gap of the table (up to 0.11 * absmax) rounds back to where
      it was, and the momentum stalls. Measured on ``tests/test_quantized_4bit.py``'s curves:
      the worst loss gap to float32 AdamW is 6.4% / 10.5% of the starting loss rounding to
      nearest, 0.72% / 0.42% rounding stochastically.
  DE4_NEAREST ("de4_nearest"): the same table rounded to nearest, as the paper does: error
      <= half the widest gap, 0.1125 * absmax.
  RANK1_LINEAR4 ("rank1_linear4", >= 0: second moments). Rank-1 normalisation: for a leaf of
      two or more axes, one float32 vector per axis holding the max over all other axes; an
      entry's scale is the smallest of its vectors' entries (min(row max, column max) for a
      matrix), so one large entry only coarsens its own row-and-column cross. 1-d leaves fall
      back to blocks of ``block_size``. The table is linear *without zero*: (k + 1) / 16,
      k = 0..15. A small nu never rounds to 0 -- the paper's zero-point problem: a zero nu
      makes Adam divide by eps, a step of lr * m / eps. Values below scale / 16 round *up* to
      scale / 16 (a larger denominator: a smaller, safe step). Rounds to nearest (stochastic
      rounding measured worse here: 1.3% / 2.1%). Error <= scale / 32 for entries >= scale /
      16; below, the entry decodes to scale / 16.

Layout: codes are uint8 holding two 4-bit indices each along the last axis (entry 2j in the low
nibble, 2j + 1 in the high one; an odd last axis is padded by one nibble per row), shape
``(..., ceil(n / 2))``, so the leading axes keep the parameter's sharding. Scales are float32:
``(..., ceil(n / block_size))`` for DE4 and 1-d leaves, one vector per axis for rank-1. Per entry
of a float32 parameter: DE4 0.5 + 4 / 128 bytes; rank-1 0.5 byte plus 4 * (sum of the axes) /
(product of the axes): ~0.13x and ~0.125x a float32 moment.

Faults stay in their entry. Scales are maxima over the *finite* entries only, so a NaN or an
overflow never changes its neighbours' codes (and never depends on how XLA reduces a NaN). A
scale whose block (row, column) holds a non-finite entry is stored negated -- its sign bit is
otherwise always clear -- and in such a block the top code (index 15) is kept for the non-finite
entries: it decodes to NaN (DE4) or +inf (RANK1_LINEAR4, the value an overflowed g**2 has in
float32 Adam), and the finite entries there use the other 15 codes. The step that meets the
fault emits the transform's own float update (NaN where float32 Adam has NaN), and the state
remembers it as float32 Adam's would.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradchain import _checks
from gradchain.transforms.mesh_axes import refuse_if_sharded
from gradchain.transforms.moment_math import compute_dtype
from gradchain.transforms.quantized import Quantized, as_blocks, from_blocks

__all__ = [
    "CODES_4BIT",
    "DE4",
    "DE4_NEAREST",
    "Quantized4bitArray",
    "RANK1_LINEAR4",
    "dynamic_exponent_table",
    "pack_nibbles",
    "quantize_4bit",
    "unpack_nibbles",
]

TOP = 15  # the largest index; in a block that holds a non-finite entry, that entry's code


def dynamic_exponent_table() -> np.ndarray:
    """The 16 values of the signed 4-bit dynamic-exponent code, ascending (float64).

    A code is a sign bit and 3 magnitude bits. With e leading zeros (e = 0, 1, 2) the magnitude
    is 10**-e times a fraction in [0.1, 1] set by the 2 - e bits after the indicator bit: the
    middle of one of 2**(2 - e) equal bins. All three bits zero is 0; the negative zero is +1.
    """
    magnitudes = []
    for e in range(3):
        bins = 2 ** (2 - e)
        magnitudes += [10.0**-e * (0.1 + 0.9 * (j + 0.5) / bins) for j in range(bins)]
    return np.sort(np.array([0.0, 1.0, *magnitudes, *(-m for m in magnitudes)]))


class _Code4:
    """One 4-bit code: a table of 16 values (ascending), how it normalises and rounds, and what
    its top code means in a block that holds a non-finite entry."""

    def __init__(self, name, table, *, rank1: bool, stochastic: bool, fault_value: float):
        self.name, self.table, self.rank1 = name, table, rank1
        self.stochastic, self.fault_value = stochastic, fault_value

    def quantize(self, x: jax.Array, block_size: int) -> Quantized4bitArray:
        """What ``quantized_moments`` calls: ``quantize_4bit(x, this code, block_size)``."""
        return quantize_4bit(x, self.name, block_size)

    def __repr__(self) -> str:
        return self.name


_DE = dynamic_exponent_table()
DE4 = _Code4("de4", _DE, rank1=False, stochastic=True, fault_value=math.nan)
DE4_NEAREST = _Code4("de4_nearest", _DE, rank1=False, stochastic=False, fault_value=math.nan)
RANK1_LINEAR4 = _Code4(
    "rank1_linear4", np.arange(1, 17) / 16, rank1=True, stochastic=False, fault_value=math.inf
)
CODES_4BIT = {c.name: c for c in (DE4, DE4_NEAREST, RANK1_LINEAR4)}


@jax.tree_util.register_pytree_node_class
class Quantized4bitArray(Quantized):
    """One moment array in 4 bits: ``codes`` (uint8, two per byte along the last axis) and
    ``scales`` (a tuple of float32 arrays: one per block, or one vector per axis for rank-1).

    The code name, block size, logical shape and dtype are static (the tree structure): the
    state is a pytree of arrays with fixed shapes and dtypes, jit-safe.
    """

    def __init__(self, codes, scales, code: str, block_size: int, shape, dtype):
        self.codes, self.scales = codes, tuple(scales)
        self.code, self.block_size = code, block_size
        self.logical_shape, self.logical_dtype = tuple(shape), jnp.dtype(dtype)

    @property
    def nbytes(self) -> int:
        """The real bytes it holds: half a byte per entry (rounded up per row), 4 per scale."""
        return int(np.prod(jnp.shape(self.codes))) + sum(4 * int(np.size(s)) for s in self.scales)

    def decode(self) -> jax.Array:
        return _decode(self)

    def encode(self, x: jax.Array) -> Quantized4bitArray:
        return quantize_4bit(x, self.code, self.block_size)

    def tree_flatten(self):
        aux = (self.code, self.block_size, self.logical_shape, self.logical_dtype)
        return (self.codes, self.scales), aux

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, *aux)

    def __repr__(self) -> str:
        return (
            f"Quantized4bitArray({self.code}, shape={self.logical_shape}, "
            f"block_size={self.block_size}, decodes to {self.logical_dtype.name})"
        )


def pack_nibbles(codes: jax.Array) -> jax.Array:
    """Indices in [0, 16), shape (..., n) -> uint8 (..., ceil(n / 2)): entry 2j in the low
    nibble of byte j, entry 2j + 1 in the high one (0 where n is odd)."""
    codes = jnp.asarray(codes, jnp.uint8).reshape(jnp.shape(codes) or (1,))
    if codes.shape[-1] % 2:
        codes = jnp.pad(codes, [(0, 0)] * (codes.ndim - 1) + [(0, 1)])
    pairs = codes.reshape(*codes.shape[:-1], -1, 2)
    return pairs[..., 0] | (pairs[..., 1] << 4)


def unpack_nibbles(packed: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The inverse of ``pack_nibbles``: uint8 indices of ``shape``."""
    pairs = jnp.stack([packed & 15, packed >> 4], axis=-1)
    n = shape[-1] if shape else 1
    return pairs.reshape(*packed.shape[:-1], -1)[..., :n].reshape(shape)


def _block_scales(mag: jax.Array, bad: jax.Array, block_size: int):
    """Per block along the last axis: (stored scales, per-entry scale, per-entry flag)."""
    shape = mag.shape
    top = jnp.max(as_blocks(mag, block_size), axis=-1)
    flagged = jnp.any(as_blocks(bad, block_size), axis=-1)
    stored = jnp.where(flagged, -top, top).astype(jnp.float32)  # -0.0 for an all-bad block
    return (stored,), *_spread_blocks(stored, shape, block_size)


def _spread_blocks(stored: jax.Array, shape: tuple[int, ...], block_size: int):
    size = min(block_size, shape[-1] if shape else 1)

    def spread(s):
        return from_blocks(jnp.broadcast_to(s[..., None], (*s.shape, size)), shape)

    return spread(jnp.abs(stored)), spread(jnp.signbit(stored))


def _rank1_scales(mag: jax.Array, bad: jax.Array):
    """One vector per axis, the max over the other axes: (stored, per-entry scale, flag)."""
    stored = []
    for axis in range(mag.ndim):
        others = tuple(a for a in range(mag.ndim) if a != axis)
        top, flagged = jnp.max(mag, axis=others), jnp.any(bad, axis=others)
        stored.append(jnp.where(flagged, -top, top).astype(jnp.float32))
    return tuple(stored), *_spread_rank1(stored, mag.shape)


def _spread_rank1(stored, shape: tuple[int, ...]):
    def along(v, axis):  # the vector of `axis`, broadcast over the other axes
        return v.reshape([-1 if a == axis else 1 for a in range(len(shape))])

    scale = math.inf
    flag = True
    for axis, v in enumerate(stored):
        scale = jnp.minimum(scale, jnp.abs(along(v, axis)))
        flag = flag & jnp.signbit(along(v, axis))
    return jnp.broadcast_to(scale, shape), jnp.broadcast_to(flag, shape)


def _uses_rank1(book: _Code4, ndim: int) -> bool:
    return book.rank1 and ndim >= 2


def quantize_4bit(x: jax.Array, code: str = "de4", block_size: int = 128) -> Quantized4bitArray:
    """Encode an array in 4 bits with ``code`` ("de4" or "rank1_linear4", see the module
    docstring); ``block_size`` sets DE4's blocks and rank-1's fallback for 1-d arrays.
    ``_decode(quantize_4bit(x))`` is within the code's error bound of every finite entry."""
    _checks.check_array("x", x)
    _checks.check_choice("code", code, tuple(CODES_4BIT))
    _checks.check_int("block_size", block_size, minimum=1)
    book = CODES_4BIT[code]
    x = jnp.asarray(x)
    c = compute_dtype(x.dtype)
    xc = x.astype(c)
    bad = ~jnp.isfinite(xc)
    mag = jnp.where(bad, 0, jnp.abs(xc))  # scales from the finite entries only
    if _uses_rank1(book, x.ndim):
        refuse_if_sharded(x, f"the {code} code (a max over each row and column)")
        stored, scale, flagged = _rank1_scales(mag, bad)
    else:
        stored, scale, flagged = _block_scales(mag, bad, block_size)
    scale = scale.astype(c)
    r = jnp.where(scale > 0, jnp.where(bad, 0, xc) / jnp.where(scale > 0, scale, 1), 0)
    k = _round(book, r, _uniform_from_bits(xc) if book.stochastic else 0.5)
    k = jnp.where(bad, TOP, jnp.where(flagged, jnp.minimum(k, TOP - 1), k))
    return Quantized4bitArray(pack_nibbles(k), stored, code, block_size, x.shape, x.dtype)


def _lookup(table: np.ndarray, k: jax.Array, dtype: Any) -> jax.Array:
    """table[k] as a 16-way select: no gather on the (possibly sharded) codes."""
    out = jnp.zeros(k.shape, dtype)
    for i, t in enumerate(table):
        out = jnp.where(k == i, jnp.asarray(t, dtype), out)
    return out


def _round(book: _Code4, r: jax.Array, u: Any) -> jax.Array:
    """The table index of r: between the two table values around r, the upper one when r is
    above ``lo + u * (hi - lo)``. u = 0.5 rounds to nearest; u uniform in [0, 1) rounds up with
    probability (r - lo) / (hi - lo), which is unbiased: a moving-average step smaller than half
    a gap still moves the moment on average instead of rounding back to where it was. Counting
    the thresholds below r finds that index with 15 compares and no lookup."""
    u, c = jnp.asarray(u, r.dtype), r.dtype
    k = jnp.zeros(r.shape, jnp.uint8)
    for lo, hi in zip(book.table[:-1], book.table[1:]):
        above = r > jnp.asarray(lo, c) + u * jnp.asarray(hi - lo, c)
        k = k + above.astype(jnp.uint8)
    return k


def _uniform_from_bits(x: jax.Array) -> jax.Array:
    """A number in [0, 1) per entry, from a hash of the entry's float32 bits and its position:
    deterministic (the same array encodes the same way, eager or jitted), no key to keep."""
    bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
    h = bits ^ (jnp.arange(x.size, dtype=jnp.uint32).reshape(x.shape) * jnp.uint32(0x9E3779B9))
    for shift, factor in ((16, 0x7FEB352D), (15, 0x846CA68B)):  # an integer mix (Wellons)
        h = (h ^ (h >> shift)) * jnp.uint32(factor)
    h = h ^ (h >> 16)
    return (h >> 8).astype(jnp.float32) / np.float32(2**24)


def _decode(q: Quantized4bitArray) -> jax.Array:
    book = CODES_4BIT[q.code]
    shape = q.logical_shape
    c = compute_dtype(q.logical_dtype)
    k = unpack_nibbles(q.codes, shape)
    if _uses_rank1(book, len(shape)):
        scale, flagged = _spread_rank1(q.scales, shape)
    else:
        scale, flagged = _spread_blocks(q.scales[0], shape, q.block_size)
    value = _lookup(book.table, k, c) * scale.astype(c)
    out = jnp.where(flagged & (k == TOP), jnp.asarray(book.fault_value, c), value)
    return out.astype(q.logical_dtype)
