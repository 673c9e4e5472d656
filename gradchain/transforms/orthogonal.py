"""Muon's pieces: Newton–Schulz orthogonalization of matrix updates, and the shape-dependent
scale that follows it.

Both act on 2-D leaves only (a matrix ``x @ W``: axis 0 is fan-in, axis 1 fan-out). Route
vectors, scalars and embeddings elsewhere with parameter groups, as ``gradchain.muon`` does.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradchain import _checks
from gradchain.base import EmptyState, GradientTransformation
from gradchain.transforms.mesh_axes import refuse_if_sharded, sharded_like, whole
from gradchain.transforms.moment_math import compute_dtype

__all__ = [
    "NS_COEFFS",
    "newton_schulz",
    "scale_by_newton_schulz",
    "scale_by_shape",
]

# Keller Jordan's quintic coefficients: the largest slope at 0 that still keeps every
# singular value in about [0.7, 1.2] after five steps.
NS_COEFFS = (3.4445, -4.7750, 2.0315)


def newton_schulz(x: jax.Array, coeffs: Any = NS_COEFFS, steps: int = 5, eps: float = 1e-8):
    r"""Approximately orthogonalize a matrix: ``U S V^T -> U S' V^T`` with ``S'`` near 1.

    Update:     X_0 = x / (||x||_F + eps) ; for k < steps:
                A = X X^H ;  X_{k+1} = a X + (b A + c A A) X      (a, b, c = coeffs[k])
                computed on the wide orientation (rows <= columns), transposed back.
    Sharding:   on a mesh with Explicit axes (``jax.set_mesh``) a sharded ``x`` is gathered
                whole onto every device first (``jax.sharding.reshard`` to ``P()``), the
                iteration runs replicated, and the result is cut back to ``x``'s sharding (a
                local slice, no communication). Cost, per matrix and step: one all-gather of
                the matrix; every device then holds it whole (m n entries, plus the m x m
                Gram matrices, in the compute dtype) and does all of the iteration's
                ``steps * (2 m^2 n + m^3)`` multiply-adds itself, with no speed-up from the
                sharding. The products would otherwise contract a sharded dimension, which
                JAX refuses on an Explicit mesh without an output sharding; gathering keeps
                the result equal to a one-device run (muon on a 128 x 256 matrix on a 4 x 2
                mesh, float64: at most 2.5e-18 apart, on updates up to 3.4e-4).
    Args:       coeffs -- one (a, b, c) for every step, or a sequence of ``steps`` triples.
                steps -- a Python int (the loop is unrolled), or with one triple an integer
                array, traced or not (a ``fori_loop``: Optax's ``inject_hyperparams``).
    Reference:  Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024;
                Bernstein & Newhouse, "Old Optimizer, New Norm", 2024.
    """
    _checks.check_array("x", x, ndim=2)
    given, x = x, whole(x)  # on an Explicit mesh: the whole matrix on every device
    table = np.asarray(coeffs, dtype=np.float64)
    tall = x.shape[0] > x.shape[1]
    c = compute_dtype(x.dtype)
    y = (x.T if tall else x).astype(c)
    norm = jnp.linalg.norm(y)  # real, also for complex y
    y = y / (norm + jnp.asarray(eps, norm.dtype)).astype(c)

    def step(abc, y):
        a, b, k = abc
        gram = y @ jnp.conj(y.T)
        return a * y + (b * gram + k * (gram @ gram)) @ y

    if table.ndim == 1 and not isinstance(steps, (int, np.integer)):  # a count given as an array
        y = jax.lax.fori_loop(0, steps, lambda _, y: step(jnp.asarray(table, c), y), y)
    else:
        for abc in jnp.asarray(table if table.ndim == 2 else np.tile(table, (steps, 1)), c):
            y = step(abc, y)  # unrolled: steps is small and static
    return sharded_like((y.T if tall else y).astype(x.dtype), given)


def _check_matrix(u: jax.Array, who: str) -> None:
    if u.ndim != 2:
        raise _checks.GradchainError(
            f"{who} acts on matrices (2-D leaves), got a leaf of shape {u.shape}: route the "
            "other leaves to another transform with gradchain.partition (as gradchain.muon does)"
        )


def scale_by_newton_schulz(
    ns_coeffs: Any = NS_COEFFS, ns_steps: int = 5, eps: float = 1e-8
) -> GradientTransformation:
    r"""Replace every matrix update by its Newton–Schulz orthogonalization.

    Update:     u_t = newton_schulz(u_t)   (see ``newton_schulz``): the singular vectors of u
                kept, its singular values pushed towards 1 -- steepest descent under the
                spectral norm.
    State:      none.   Memory: 0 (a few transient matrices of the leaf's size).
    Args:       ns_coeffs -- (a, b, c), or ``ns_steps`` such triples (one per step).
                ns_steps -- >= 1 (an array, traced or not, with a single triple).  eps -- >= 0,
                guards the Frobenius normalisation of 0.
    Sharding:   the matrix products need the whole matrix: a leaf sharded inside
                ``shard_map`` is refused at trace time. Under ``jit`` over sharded arrays
                GSPMD inserts the gathers; on a mesh with Explicit axes each sharded matrix is
                gathered whole onto every device (see ``newton_schulz`` for the cost).
    Reference:  Jordan et al., 2024 (Muon).
    """
    table = np.asarray(ns_coeffs, dtype=np.float64)
    if isinstance(ns_steps, (bool, int, np.integer)) or table.ndim == 2:  # it selects triples
        _checks.check_int("ns_steps", ns_steps, minimum=1)
    else:  # an array (Optax's inject_hyperparams): only a loop count
        _checks.check_positive("ns_steps", ns_steps)
    if table.shape[-1:] != (3,) or table.ndim > 2:
        raise _checks.GradchainError(
            f"ns_coeffs must be (a, b, c) or a sequence of such triples, got shape {table.shape}"
        )
    if table.ndim == 2:
        if table.shape[0] < ns_steps:
            raise _checks.GradchainError(
                f"ns_coeffs gives {table.shape[0]} triples but ns_steps is {ns_steps}"
            )
        table = table[-ns_steps:]  # Optax keeps the last ns_steps triples
    _checks.check_non_negative("eps", eps)

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):

        def orthogonalize(u):
            _check_matrix(u, "scale_by_newton_schulz")
            refuse_if_sharded(u, "scale_by_newton_schulz")
            return newton_schulz(u, table, ns_steps, eps)

        return jax.tree.map(orthogonalize, updates), state

    return GradientTransformation(init, update, name="scale_by_newton_schulz", preprocessing=False)


def scale_by_shape(consistent_rms: float | None = None) -> GradientTransformation:
    r"""Scale each matrix update by a factor of its shape (fan_in, fan_out) = u.shape.

    Update:     u_t = sqrt(max(1, fan_out / fan_in)) * u_t            (consistent_rms=None)
                u_t = sqrt(max(fan_in, fan_out)) * consistent_rms * u_t   (otherwise)
    State:      none.   Memory: 0.
    Args:       consistent_rms -- None (Jordan's width scaling), or e.g. 0.2 to give the update
                AdamW's RMS (Liu et al.).
    Reference:  Jordan et al., 2024; Liu et al., "Muon is Scalable for LLM Training", 2025.
    """
    if consistent_rms is not None:
        _checks.check_non_negative("consistent_rms", consistent_rms)

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):

        def scale_leaf(u):
            _check_matrix(u, "scale_by_shape")
            fan_in, fan_out = u.shape
            if consistent_rms is None:
                factor = np.sqrt(max(1.0, fan_out / fan_in)) if fan_in else 1.0  # 0 x n: empty
            else:
                factor = np.sqrt(max(fan_in, fan_out)) * consistent_rms
            c = compute_dtype(u.dtype)
            return (u.astype(c) * jnp.asarray(factor, c)).astype(u.dtype)

        return jax.tree.map(scale_leaf, updates), state

    return GradientTransformation(init, update, name="scale_by_shape", preprocessing=False)
