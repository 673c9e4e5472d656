"""Muon's pieces: Newton–Schulz orthogonalization of matrix updates, and the shape-dependent
scale that follows it; ``scale_by_muon`` is their chain after a Nesterov momentum.

Family: orthogonal updates. By default they act on 2-D leaves (a matrix ``x @ W``: axis 0 is
fan-in, axis 1 fan-out). A ``MuonDimensionNumbers`` per leaf says which axes of a larger leaf
are fan-in (reduction) and fan-out (output); the other axes are a batch of matrices, each
orthogonalized on its own. Route vectors, scalars and embeddings elsewhere with parameter
groups, as ``gradchain.muon`` does.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain import _checks
from gradchain.base import EmptyState, GradientTransformation, chain
from gradchain.transforms.mesh_axes import refuse_if_sharded, sharded_like, whole
from gradchain.transforms.moment_math import compute_dtype
from gradchain.transforms.momentum import bias_correct, scale_by_momentum

__all__ = [
    "DION_NS_COEFFS",
    "MuonDimensionNumbers",
    "NS_COEFFS",
    "NS_COEFFS_PRESETS",
    "PRECONDITIONINGS",
    "newton_schulz",
    "scale_by_muon",
    "scale_by_newton_schulz",
    "scale_by_shape",
]

# Keller Jordan's quintic coefficients: the largest slope at 0 that still keeps every
# singular value in about [0.7, 1.2] after five steps.
NS_COEFFS = (3.4445, -4.7750, 2.0315)
# Ahn et al.'s (Dion) five per-step triples, as Optax's "dion" preset.
DION_NS_COEFFS = (
    (4.0848, -6.8946, 2.9270),
    (3.9505, -6.3029, 2.6377),
    (3.7418, -5.5913, 2.3037),
    (2.8769, -3.1427, 1.2046),
    (2.8366, -3.0525, 1.2012),
)
NS_COEFFS_PRESETS = {"standard": NS_COEFFS, "dion": DION_NS_COEFFS}  # Optax's preset names
# What the iteration starts from: x / ||x||_F, x / ||x||_2, or x as it is with the first step
# rescaled (AOL's per-row scaling, or the Schatten-4 norm): see ``newton_schulz``.
PRECONDITIONINGS = ("frobenius", "spectral", "aol", "schatten")
_FIRST_STEP_EPS = 1e-8  # Optax's floor on ||x x^H||_F in the rescaled first step (not eps)


class MuonDimensionNumbers(NamedTuple):
    """Which axes of a leaf are the matrix's fan-in (``reduction_axis``) and fan-out
    (``output_axis``), an int or a tuple of ints each (several axes are flattened into one).
    The remaining axes are a batch: each matrix in it is orthogonalized on its own. The
    default is a plain ``x @ W`` matrix: (0, 1). Optax's ``contrib.MuonDimensionNumbers``."""

    reduction_axis: Any = 0
    output_axis: Any = 1


def _axes(x: jax.Array, dims: MuonDimensionNumbers) -> tuple[tuple[int, ...], tuple[int, ...]]:
    as_tuple = lambda a: (a,) if isinstance(a, (int, np.integer)) else tuple(a)  # noqa: E731
    red = tuple(a % x.ndim for a in as_tuple(dims.reduction_axis))
    out = tuple(a % x.ndim for a in as_tuple(dims.output_axis))
    if set(red) & set(out):
        raise _checks.GradchainError(
            f"MuonDimensionNumbers: reduction axes {red} and output axes {out} overlap for a "
            f"leaf of shape {x.shape}"
        )
    return red, out


def _fans(x: jax.Array, dims: MuonDimensionNumbers | None) -> tuple[int, int]:
    if dims is None:
        return x.shape[0], x.shape[1]
    red, out = _axes(x, dims)
    return math.prod(x.shape[a] for a in red), math.prod(x.shape[a] for a in out)


def _on_matrices(fn: Any, x: jax.Array, dims: MuonDimensionNumbers | None) -> jax.Array:
    """``fn`` applied to each (fan_in, fan_out) matrix of ``x`` (see ``MuonDimensionNumbers``)."""
    if dims is None or (x.ndim == 2 and _axes(x, dims) == ((0,), (1,))):
        return fn(x)
    red, out = _axes(x, dims)
    batch = tuple(a for a in range(x.ndim) if a not in red + out)
    order = batch + red + out
    shape = tuple(x.shape[a] for a in order)
    flat = x.transpose(order).reshape(
        math.prod(shape[: len(batch)]), math.prod(shape[len(batch) : len(batch) + len(red)]), -1
    )
    return jax.vmap(fn)(flat).reshape(shape).transpose(np.argsort(order))


def _resolve_dims(weight_dimension_numbers: Any, updates: Any) -> Any:
    """One ``MuonDimensionNumbers`` (or None: a 2-D matrix) per leaf of ``updates``."""
    dims = weight_dimension_numbers
    if callable(dims) and not isinstance(dims, MuonDimensionNumbers):
        dims = dims(updates)
    is_spec = lambda d: d is None or isinstance(d, MuonDimensionNumbers)  # noqa: E731
    if is_spec(dims):
        return jax.tree.map(lambda u: dims, updates)
    return jax.tree.map(
        lambda d, sub: jax.tree.map(lambda u: d, sub), dims, updates, is_leaf=is_spec
    )


def newton_schulz(
    x: jax.Array,
    coeffs: Any = NS_COEFFS,
    steps: int = 5,
    eps: float = 1e-8,
    *,
    preconditioning: str = "frobenius",
):
    r"""Approximately orthogonalize a matrix: ``U S V^T -> U S' V^T`` with ``S'`` near 1.

    Update:     X_0 = x / (||x||_F + eps) ; for k < steps:
                A = X X^H ;  X_{k+1} = a X + (b A + c A A) X      (a, b, c = coeffs[k])
                computed on the wide orientation (rows <= columns), transposed back.
                ``preconditioning``: "frobenius" (above), "spectral" (X_0 = x / (||x||_2 +
                eps)), "schatten" (X_0 = x; the first step first rescales X by
                max(||X X^H||_F, 1e-8) ** -1/2, A by its square: the Schatten-4 norm), "aol"
                (X_0 = x; the first step rescales row i of X by max(sum_j |A_ij|, 1e-8)
                ** -1/2 and A to D A D: an almost-orthogonal layer's scaling).
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
                Bernstein & Newhouse, "Old Optimizer, New Norm", 2024; Boissin et al.,
                "Turbo-Muon", 2025 (aol); Grishina et al., 2025 (schatten).
    """
    _checks.check_array("x", x, ndim=2)
    _checks.check_choice("preconditioning", preconditioning, PRECONDITIONINGS)
    given, x = x, whole(x)  # on an Explicit mesh: the whole matrix on every device
    table = np.asarray(coeffs, dtype=np.float64)
    tall = x.shape[0] > x.shape[1]
    c = compute_dtype(x.dtype)
    y = (x.T if tall else x).astype(c)
    if preconditioning in ("frobenius", "spectral"):
        norm = jnp.linalg.norm(y, ord="fro" if preconditioning == "frobenius" else 2)
        y = y / (norm + jnp.asarray(eps, norm.dtype)).astype(c)
    rescale_first = preconditioning if preconditioning in ("aol", "schatten") else None

    def step(abc, y, first=None):
        a, b, k = abc
        gram = y @ jnp.conj(y.T)
        if first == "schatten":  # X <- X / sqrt(||X X^H||_F): the Schatten-4 norm
            size = jnp.linalg.norm(gram)
            floor = jnp.asarray(_FIRST_STEP_EPS, size.dtype)
            s = jax.lax.rsqrt(jnp.maximum(size, floor)).astype(c)
            y, gram = y * s, gram * (s * s)
        elif first == "aol":  # X <- D X, A <- D A D, D = diag(sum_j |A_ij|) ** -1/2 (per row)
            rows = jnp.sum(jnp.abs(gram), axis=-1, keepdims=True)
            floor = jnp.asarray(_FIRST_STEP_EPS, rows.dtype)
            d = jax.lax.rsqrt(jnp.maximum(rows, floor)).astype(c)
            y, gram = y * d, gram * d * d.T
        return a * y + (b * gram + k * (gram @ gram)) @ y

    if table.ndim == 1 and not isinstance(steps, (int, np.integer)):  # a count given as an array
        abc = jnp.asarray(table, c)
        if rescale_first:
            y = jax.lax.cond(steps > 0, lambda y: step(abc, y, rescale_first), lambda y: y, y)
            y = jax.lax.fori_loop(1, steps, lambda _, y: step(abc, y), y)
        else:
            y = jax.lax.fori_loop(0, steps, lambda _, y: step(abc, y), y)
    else:
        rows = jnp.asarray(table if table.ndim == 2 else np.tile(table, (steps, 1)), c)
        for i, abc in enumerate(rows):
            # unrolled: steps is small and static
            y = step(abc, y, rescale_first if i == 0 else None)
    return sharded_like((y.T if tall else y).astype(x.dtype), given)


def _check_matrix(u: jax.Array, who: str, dims: MuonDimensionNumbers | None = None) -> None:
    if u.ndim != 2 and not (dims is not None and u.ndim >= 2):
        raise _checks.GradchainError(
            f"{who} acts on matrices (2-D leaves), got a leaf of shape {u.shape}: give its "
            "MuonDimensionNumbers in weight_dimension_numbers, or route the other leaves to "
            "another transform with gradchain.partition (as gradchain.muon does)"
        )


def _coeff_table(ns_coeffs: Any, ns_steps: Any) -> np.ndarray:
    if isinstance(ns_coeffs, str):
        _checks.check_choice("ns_coeffs", ns_coeffs, tuple(NS_COEFFS_PRESETS))
        ns_coeffs = NS_COEFFS_PRESETS[ns_coeffs]
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
    return table


def scale_by_newton_schulz(
    ns_coeffs: Any = NS_COEFFS,
    ns_steps: int = 5,
    eps: float = 1e-8,
    *,
    preconditioning: str = "frobenius",
    adaptive: bool = False,
    weight_dimension_numbers: Any = None,
) -> GradientTransformation:
    r"""Replace every matrix update by its Newton–Schulz orthogonalization.

    Update:     O_t = newton_schulz(u_t)   (see ``newton_schulz``): the singular vectors of u
                kept, its singular values pushed towards 1 -- steepest descent under the
                spectral norm.  u_t = O_t, or with ``adaptive`` <u_t, O_t> O_t (the step
                scaled by the dual norm of u_t; the inner product over the whole leaf).
    State:      none.   Memory: 0 (a few transient matrices of the leaf's size).
    Args:       ns_coeffs -- (a, b, c), or ``ns_steps`` such triples (one per step), or a
                preset name: "standard" (``NS_COEFFS``) or "dion" (``DION_NS_COEFFS``).
                ns_steps -- >= 1 (an array, traced or not, with a single triple).  eps -- >= 0,
                guards the Frobenius normalisation of 0.  preconditioning -- one of
                ``PRECONDITIONINGS`` (see ``newton_schulz``).
                weight_dimension_numbers -- a ``MuonDimensionNumbers`` for every leaf, a tree
                of them (None: a 2-D leaf) with the updates' tree as its prefix, or a
                function of the updates returning one; a leaf with more than two axes is a
                batch of matrices (see ``MuonDimensionNumbers``).
    Sharding:   the matrix products need the whole matrix: a leaf sharded inside
                ``shard_map`` is refused at trace time. Under ``jit`` over sharded arrays
                GSPMD inserts the gathers; on a mesh with Explicit axes each sharded matrix is
                gathered whole onto every device (see ``newton_schulz`` for the cost).
    Reference:  Jordan et al., 2024 (Muon); Bernstein & Newhouse, "Old Optimizer, New Norm",
                2024 (``adaptive``).
    """
    table = _coeff_table(ns_coeffs, ns_steps)
    _checks.check_non_negative("eps", eps)
    _checks.check_choice("preconditioning", preconditioning, PRECONDITIONINGS)

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):
        dims_tree = _resolve_dims(weight_dimension_numbers, updates)

        def orthogonalize(u, dims):
            _check_matrix(u, "scale_by_newton_schulz", dims)
            refuse_if_sharded(u, "scale_by_newton_schulz")
            def ns(m):
                return newton_schulz(m, table, ns_steps, eps, preconditioning=preconditioning)

            out = _on_matrices(ns, u, dims)
            if adaptive:  # the dual norm of u under the spectral norm, about <u, O>
                c = compute_dtype(u.dtype)
                scale = jnp.sum(jnp.conj(u.astype(c)) * out.astype(c))
                out = (scale * out.astype(c)).astype(u.dtype)
            return out

        return jax.tree.map(orthogonalize, updates, dims_tree), state

    return GradientTransformation(init, update, name="scale_by_newton_schulz", preprocessing=False)


def scale_by_shape(
    consistent_rms: float | None = None, *, weight_dimension_numbers: Any = None
) -> GradientTransformation:
    r"""Scale each matrix update by a factor of its shape (fan_in, fan_out).

    Update:     u_t = sqrt(max(1, fan_out / fan_in)) * u_t            (consistent_rms=None)
                u_t = sqrt(max(fan_in, fan_out)) * consistent_rms * u_t   (otherwise)
                (fan_in, fan_out) = u.shape, or the products of the axes a leaf's
                ``MuonDimensionNumbers`` names (``weight_dimension_numbers``, as in
                ``scale_by_newton_schulz``).
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
        dims_tree = _resolve_dims(weight_dimension_numbers, updates)

        def scale_leaf(u, dims):
            _check_matrix(u, "scale_by_shape", dims)
            fan_in, fan_out = _fans(u, dims)
            if consistent_rms is None:
                factor = np.sqrt(max(1.0, fan_out / fan_in)) if fan_in else 1.0  # 0 x n: empty
            else:
                factor = np.sqrt(max(fan_in, fan_out)) * consistent_rms
            c = compute_dtype(u.dtype)
            return (u.astype(c) * jnp.asarray(factor, c)).astype(u.dtype)

        return jax.tree.map(scale_leaf, updates, dims_tree), state

    return GradientTransformation(init, update, name="scale_by_shape", preprocessing=False)


@_checks.names_arguments
def scale_by_muon(
    ns_coeffs: Any = NS_COEFFS,
    ns_steps: int = 5,
    beta: float = 0.95,
    eps: float = 1e-8,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    weight_dimension_numbers: Any = None,
) -> GradientTransformation:
    r"""Muon's direction: Nesterov momentum, bias-corrected, orthogonalized by Newton–Schulz.

    Update:     mu_t = beta mu_{t-1} + (1 - beta) g_t ;  m = the Nesterov-corrected mu
                u_t = newton_schulz(m) (``adaptive``: <m, O> O), per matrix
    State:      mu (``mu_dtype``), count.   Memory: +1x params.
    Note:       Optax's ``contrib.scale_by_muon`` (its state keeps ns_coeffs; here they are
                fixed at construction). Matrices only: see ``weight_dimension_numbers`` in
                ``scale_by_newton_schulz``.
    Reference:  Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    """
    return chain(
        scale_by_momentum(beta, ema=True, mu_dtype=mu_dtype),  # momentum         (+1x params)
        bias_correct(beta, nesterov=nesterov),  # Nesterov look-ahead, unbiased
        scale_by_newton_schulz(  # orthogonalize each matrix
            ns_coeffs,
            ns_steps,
            eps,
            preconditioning=preconditioning,
            adaptive=adaptive,
            weight_dimension_numbers=weight_dimension_numbers,
        ),
    )
