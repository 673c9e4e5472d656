"""The arithmetic every moment shares: the dtype it runs in, |g|**2, a guarded division.

Moment math runs in at least float32 whatever the params' dtype, so that b2 = 0.999 does not
round to 1.0 in bfloat16 and eps does not underflow in float16; each result is cast back to
the dtype of the state or update it belongs to, so dtypes never change between steps.

Where a moment is *stored* (``moment_dtype``, ``accumulator_dtype``): in the params' dtype,
except for float16 params, whose moments are stored in float32 unless the transform's
``*_dtype`` keyword says otherwise. float16 has 5 exponent bits: a sum of g**2 overflows to
inf at |g| ~ 256 (AdaGrad's after a few steps of |g| = 100), and g**2 * (1 - b2) underflows to
0 below |g| ~ 8e-3, so a second moment that is inf or 0 freezes or blows up its parameter.
bfloat16 has float32's exponent range and keeps its moments in bfloat16 (the math is float32).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from gradchain import _checks

__all__ = [
    "abs_sq",
    "accumulator_dtype",
    "accumulator_zeros",
    "cast",
    "compute_dtype",
    "divide",
    "increment",
    "moment_dtype",
    "moment_zeros",
    "real_dtype",
    "safe_increment",
    "scalar_dtype",
]


def compute_dtype(*dtypes: Any) -> jnp.dtype:
    """The dtype moment math runs in: the widest of ``dtypes`` and float32."""
    return _widest(tuple(jnp.dtype(d) for d in dtypes))


@functools.cache
def _widest(dtypes: tuple[jnp.dtype, ...]) -> jnp.dtype:
    # Our own dtype arithmetic, made at trace time: the user's promotion mode (often "strict")
    # rules their math, not this choice. Cached: a step asks once per leaf.
    with jax.numpy_dtype_promotion("standard"):
        return jnp.dtype(jnp.result_type(jnp.float32, *dtypes))


def cast(x: Any, dtype: Any) -> jax.Array:
    """``x`` as ``dtype``; ``x`` itself when it already is one (a step asks this of every leaf,
    and skipping the no-op cast keeps tracing cheap: ~20 us a call, several per leaf)."""
    if getattr(x, "dtype", None) == dtype:
        return x
    return jnp.asarray(x).astype(dtype)


def scalar_dtype(*trees: Any) -> jnp.dtype:
    """The dtype a transform computes its scalars in (1 - b2, 1 - b1**t, ...): once per
    step for all leaves, at least float32 -- the compute dtype of the widest leaf. A leaf cast
    to the same dtype costs nothing, so a step traces one scalar expression, not one per leaf."""
    return compute_dtype(*{jnp.result_type(x) for t in trees for x in jax.tree.leaves(t)})


def real_dtype(dtype: Any) -> jnp.dtype:
    """The real counterpart of a complex dtype (the dtype of ``|g|**2``)."""
    if not jnp.issubdtype(dtype, jnp.inexact):
        raise _checks.GradchainError(
            f"a moment needs a floating or complex dtype, got {jnp.dtype(dtype).name} "
            "(keep integer leaves out of the optimizer)"
        )
    return jnp.finfo(dtype).dtype


def _widen_float16(dtype: jnp.dtype) -> jnp.dtype:
    # float16's range (6e-8 .. 65504) is too narrow for a running sum or average of g or g**2
    return jnp.dtype(jnp.float32) if dtype == jnp.float16 else dtype


def moment_dtype(param: Any, dtype: Any = None) -> jnp.dtype:
    """The storage dtype of a second moment of ``param``: ``dtype`` when given, else the
    param's real dtype -- float32 for float16 params (see the module's docstring)."""
    if dtype is not None:
        return jnp.dtype(dtype)
    return _widen_float16(real_dtype(jnp.result_type(param)))


def accumulator_dtype(param: Any, dtype: Any = None) -> jnp.dtype:
    """The storage dtype of a first moment (a velocity, a sum of g) of ``param``: ``dtype``
    when given, else the param's dtype (complex stays complex) -- float32 for float16 params."""
    if dtype is not None:
        return jnp.dtype(dtype)
    return _widen_float16(jnp.dtype(jnp.result_type(param)))


def moment_zeros(params: Any, dtype: Any = None) -> Any:
    """A second moment's starting zeros: one buffer per leaf, in ``moment_dtype``."""
    return jax.tree.map(lambda p: jnp.zeros_like(p, moment_dtype(p, dtype)), params)


def accumulator_zeros(params: Any, dtype: Any = None) -> Any:
    """A first moment's starting zeros: one buffer per leaf, in ``accumulator_dtype``."""
    return jax.tree.map(lambda p: jnp.zeros_like(p, accumulator_dtype(p, dtype)), params)


def increment(count: jax.Array) -> jax.Array:
    """count + 1, saturating at its dtype's maximum instead of wrapping to a negative step."""
    return jnp.where(count < jnp.iinfo(count.dtype).max, count + 1, count)


def safe_increment(count: Any) -> jax.Array:
    """``count + 1`` in ``count``'s dtype, staying at the dtype's largest value instead of
    overflowing (an integer would wrap to a negative count). Optax's ``safe_increment``:
    integer and floating counts; another dtype is refused."""
    count = jnp.asarray(count)
    if jnp.issubdtype(count.dtype, jnp.integer):
        return increment(count)
    if not jnp.issubdtype(count.dtype, jnp.floating):
        raise _checks.GradchainError(
            f"safe_increment: a count must be an integer or a float, got dtype {count.dtype}"
        )
    top = jnp.asarray(jnp.finfo(count.dtype).max, count.dtype)
    return jnp.where(count < top, count + jnp.ones((), count.dtype), top)


def abs_sq(g: jax.Array, dtype: Any) -> jax.Array:
    """|g|**2 in the real ``dtype``: g * conj(g) for complex gradients."""
    g = cast(g, compute_dtype(g.dtype))
    return cast((g * jnp.conj(g)).real if jnp.iscomplexobj(g) else g * g, dtype)


def divide(u: jax.Array, denom: jax.Array) -> jax.Array:
    """u / denom in u's dtype, and 0 where denom == 0 (eps = 0 and a zero statistic).

    Only an exact zero is guarded: a NaN or infinite denominator (from a non-finite gradient)
    gives NaN or 0 as IEEE arithmetic says, so a fault stays visible instead of becoming a
    quiet zero that freezes the parameter."""
    c = compute_dtype(u.dtype)
    quotient = cast(u, c) / cast(denom, c)
    return cast(jnp.where(denom == 0, jnp.zeros((), c), quotient), u.dtype)
