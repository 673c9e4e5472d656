"""Grafting: one transform's direction with another's per-leaf norm (Agarwal et al., 2020).

A combinator: it holds two transforms and keeps their states in its own (``magnitude``,
``direction``), as the other wrappers here do. Public as ``gradchain.graft``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain.base import Child, GradientTransformation, _as_transform, describe, updater
from gradchain.transforms.mesh_axes import refuse_if_sharded
from gradchain.transforms.moment_math import compute_dtype, divide

__all__ = [
    "GraftState",
    "graft",
]


@describe(
    magnitude="the state of the transform whose per-leaf norm the update takes",
    direction="the state of the transform whose direction the update takes",
)
class GraftState(NamedTuple):
    magnitude: Any
    direction: Any


def graft(magnitude: Any, direction: Any) -> GradientTransformation:
    r"""Take each leaf's direction from one transform and its norm from another.

    Update:     m = magnitude(u) ;  d = direction(u) ;  u_i = d_i * ||m_i|| / ||d_i||
                per leaf (per layer), Frobenius norms; 0 where d_i = 0.
    State:      magnitude, direction -- the two transforms' states.  Memory: theirs.
    Args:       magnitude, direction -- transforms; both see the same updates and gradient.
    Note:       Shampoo's step size is not comparable across layers or with Adam's; grafting
                an AdaGrad or Adam norm lets it reuse their learning rates (``gradchain.shampoo``).
    Reference:  Agarwal et al., "Disentangling Adaptive Gradient Methods from Learning
                Rates", 2020; Anil et al., 2020, section 4.
    """
    mag, dirn = _as_transform(magnitude), _as_transform(direction)
    call_mag, call_dir = updater(mag), updater(dirn)

    def init(params):
        return GraftState(magnitude=mag.init(params), direction=dirn.init(params))

    def update(updates, state, params=None, *, gradient=None, **extra):
        m, m_state = call_mag(updates, state.magnitude, params, gradient, extra)
        d, d_state = call_dir(updates, state.direction, params, gradient, extra)

        def rescale(m_leaf, d_leaf):
            refuse_if_sharded(m_leaf, "graft (a norm per leaf)")
            refuse_if_sharded(d_leaf, "graft (a norm per leaf)")
            c = compute_dtype(m_leaf.dtype, d_leaf.dtype)
            ratio = divide(jnp.linalg.norm(m_leaf.astype(c)), jnp.linalg.norm(d_leaf.astype(c)))
            return (d_leaf.astype(c) * ratio).astype(d_leaf.dtype)

        return jax.tree.map(rescale, m, d), GraftState(m_state, d_state)

    children = (Child(None, mag, ("magnitude",)), Child(None, dirn, ("direction",)))
    return GradientTransformation(init, update, name="graft", children=children, preprocessing=False)
