"""Complex parameters seen as pairs of real ones: ``split_real_and_imaginary`` runs a
transform on (Re z, Im z) instead of z. Family: complex numbers.

gradchain's own transforms take complex leaves directly (moments use |g|**2, so Adam on z is
Adam on the modulus); splitting gives each part its own statistics instead: Adam on the
split is Adam on Re and on Im separately. A wrapper, so it lives with the wrappers.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import Child, GradientTransformation, all_preprocessing, describe, updater

__all__ = [
    "SplitRealAndImaginaryArrays",
    "SplitRealAndImaginaryState",
    "split_real_and_imaginary",
]


class SplitRealAndImaginaryArrays(NamedTuple):
    """Where a complex leaf was: its real and imaginary parts, two real arrays."""

    real: Any
    imaginary: Any


@describe(inner_state="the inner transform's state, built for the split params")
class SplitRealAndImaginaryState(NamedTuple):
    inner_state: Any


def _split(tree: Any) -> Any:
    def leaf(x):
        if jnp.iscomplexobj(x):
            return SplitRealAndImaginaryArrays(jnp.real(x), jnp.imag(x))
        return x

    return None if tree is None else jax.tree.map(leaf, tree)


def _join(tree: Any) -> Any:
    def leaf(x):
        if isinstance(x, SplitRealAndImaginaryArrays):
            return jax.lax.complex(x.real, x.imaginary)
        return x

    return jax.tree.map(leaf, tree, is_leaf=lambda x: isinstance(x, SplitRealAndImaginaryArrays))


def split_real_and_imaginary(inner: Any) -> Any:
    r"""Run ``inner`` on every complex leaf split into its real and imaginary parts.

    Update:     z = a + i b  ->  (a, b) ;  (u_a, u_b) = inner((g_a, g_b)) ;  u = u_a + i u_b
                real leaves reach ``inner`` unchanged.
    State:      inner_state -- ``inner``'s state for the split params (two real slots where a
                complex leaf had one: the same memory).
    Note:       Optax's ``contrib.split_real_and_imaginary``. The ``gradient`` keyword and the
                params are split like the updates; other extra arguments reach ``inner``.
    """
    if not (hasattr(inner, "init") and hasattr(inner, "update")):
        raise _checks.GradchainError(
            "split_real_and_imaginary(inner) takes a gradient transformation (with init and "
            f"update), got inner={inner!r}"
        )
    call = updater(inner)

    def init(params):
        return SplitRealAndImaginaryState(inner.init(_split(params)))

    def update(updates, state, params=None, *, gradient=None, **extra):
        split_updates = _split(updates)
        split_gradient = (
            split_updates if gradient is None or gradient is updates else _split(gradient)
        )
        out, inner_state = call(
            split_updates, state.inner_state, _split(params), split_gradient, extra
        )
        return _join(out), SplitRealAndImaginaryState(inner_state)

    return GradientTransformation(  # Optax's field name for the inner state: inner_state
        init,
        update,
        name="split_real_and_imaginary",
        preprocessing=all_preprocessing([inner]),
        children=(Child(None, inner, ("inner_state",)),),
    )
