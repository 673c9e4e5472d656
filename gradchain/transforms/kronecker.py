"""Kronecker-factored preconditioners: one d x d statistic per axis of a matrix (SOAP, Shampoo).

A leaf G of shape (d_1, ..., d_k) with k >= 2 axes keeps, for every axis a, the statistic

    S_a = sum over the other axes of G G^T          (d_a x d_a; a matrix: L = G G^T, R = G^T G)

Blocks. An axis longer than ``block_size`` is cut into blocks of ``block_size`` (the last one
shorter when it does not divide), each with its own statistic: S_a is kept block-diagonal.
A 50,000 x 64 embedding with block_size 1024 keeps 48 blocks of 1024 x 1024, one of
848 x 848 and one 64 x 64 -- about 50,000 * 1024 numbers, not 50,000**2. Blocks of one size
are stacked into one array (count, size, size), so the linear algebra is batched.

More than two axes: one factor per axis, with the exponent -1/(2k) for Shampoo (Gupta et al.,
section 4; pytorch-optimizer's SOAP with ``merge_dims=False``). A conv kernel (3, 3, C_in,
C_out) keeps 3x3, 3x3, C_in x C_in and C_out x C_out. To factor it as one matrix instead,
reshape the leaf yourself. Fewer than two axes: no statistic, the rotation is the identity
(``scale_by_soap`` is then Adam, one step late; ``scale_by_shampoo`` passes the update on);
the named optimizers send such leaves to AdamW instead.

Statistics and bases are kept in float32 at least (eigh needs it), whatever the params' dtype.

Reproducibility. A factor of rank below its size (a 8 x 16 matrix's 16 x 16 G^T G, any factor
after one step) has a degenerate eigenspace, whose basis eigh and QR pick by roundoff; SOAP's
Adam is not invariant to that choice. So a sharded run (other summation order) follows a
different trajectory: 3e-4 on the params of tests/sharding_cases.py after 3 steps (1.4%
relative); Shampoo's roots differ by 3e-10 relative there. pytorch-optimizer behaves alike.
Sharding. Inside ``shard_map`` a sharded leaf is refused (a factor is a product over the whole
leaf). On a mesh with Explicit axes (``jax.set_mesh``), where a contraction over a sharded axis
is refused without an output sharding, each step gathers every sharded gradient, update (and
SOAP's mu and nu) whole onto every device, runs replicated, and cuts the update (and mu, nu)
back to their own sharding: per step an all-gather of 2x params (SOAP: 4x), every device
holding whole leaves and doing all of the rotations' and factors' multiply-adds. The factors
and bases are replicated anyway (jit(init) makes them so), and their eigh/QR need whole
blocks. Measured on a 4 x 2 mesh in float64 (tests/sharding_explicit_cases.py's params and
gradient), updates of about 1e-3 against one device: Shampoo 8.7e-16 after one step, 5e-16
after three; SOAP 4.3e-19 after one (statistics only), 1.3e-8 after three (its degenerate
eigenspaces, above).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain import _checks
from gradchain.base import GradientTransformation, describe, tree_map_split
from gradchain.transforms.mesh_axes import refuse_if_sharded, sharded_like, whole
from gradchain.transforms.moment_math import (
    accumulator_dtype,
    compute_dtype,
    increment,
    moment_dtype,
)

__all__ = [
    "ShampooState",
    "SoapState",
    "kronecker_layout",
    "scale_by_shampoo",
    "scale_by_soap",
]

_HIGHEST = jax.lax.Precision.HIGHEST  # no TF32 in statistics and rotations

# --- the block layout and the per-axis linear algebra ------------------------------------


def kronecker_layout(
    shape: tuple[int, ...], block_size: int
) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Per axis, the blocks it is cut into as ``(count, size)`` pairs; ``()`` for a leaf with
    fewer than two axes or none of its own. ``kronecker_layout((50000, 64), 1024)`` is
    ``(((48, 1024), (1, 848)), ((1, 64),))``."""
    if len(shape) < 2 or 0 in shape:
        return ()

    def axis(d: int) -> tuple[tuple[int, int], ...]:
        if d <= block_size:
            return ((1, d),)
        full, rest = divmod(d, block_size)
        return ((full, block_size),) + (((1, rest),) if rest else ())

    return tuple(axis(d) for d in shape)


def _split(x: jax.Array, axis: int, blocks: tuple[tuple[int, int], ...]) -> list[jax.Array]:
    """``x`` unfolded along ``axis`` and cut into blocks: one (count, size, rest) per entry."""
    flat = jnp.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
    parts, start = [], 0
    for n, s in blocks:
        parts.append(flat[start : start + n * s].reshape(n, s, -1))
        start += n * s
    return parts


def _unsplit(parts: list[jax.Array], axis: int, shape: tuple[int, ...]) -> jax.Array:
    """The inverse of ``_split``."""
    moved = (shape[axis], *(d for i, d in enumerate(shape) if i != axis))
    flat = jnp.concatenate([p.reshape(-1, p.shape[-1]) for p in parts])
    return jnp.moveaxis(flat.reshape(moved), 0, axis)


def _apply(x: jax.Array, mats: Any, layout: Any, spec: str) -> jax.Array:
    """Multiply ``x`` along every axis by that axis' block-diagonal matrix (``spec`` says
    how: Q^T x, Q x)."""
    for axis, (blocks, m) in enumerate(zip(layout, mats)):
        parts = [
            jnp.einsum(spec, mi.astype(x.dtype), p, precision=_HIGHEST)
            for mi, p in zip(m, _split(x, axis, blocks))
        ]
        x = _unsplit(parts, axis, x.shape)
    return x


def _into(x, basis, layout):  # Q^T x along every axis
    return _apply(x, basis, layout, "nji,njr->nir")


def _out_of(x, basis, layout):  # Q x along every axis
    return _apply(x, basis, layout, "nij,njr->nir")


def _gram(g: jax.Array, layout: Any) -> tuple[tuple[jax.Array, ...], ...]:
    """Per axis and block: G_a G_a^T, G_a the block's rows of ``g`` unfolded along the axis."""
    return tuple(
        tuple(jnp.einsum("nir,njr->nij", p, p, precision=_HIGHEST) for p in _split(g, a, blocks))
        for a, blocks in enumerate(layout)
    )


def _stack(shape, block_size, dtype, fill):
    """One array per block group, per axis: zeros, or identities when ``fill == "eye"``."""

    def block(n, s):
        return (
            jnp.tile(jnp.eye(s, dtype=dtype), (n, 1, 1))
            if fill == "eye"
            else jnp.zeros((n, s, s), dtype)
        )

    return tuple(
        tuple(block(n, s) for n, s in axis) for axis in kronecker_layout(shape, block_size)
    )


def _accumulate(stats, g, layout, decay, weight, c):
    """S <- decay * S + weight * G G^T, per axis and block."""
    gram = _gram(g.astype(c), layout)
    return tuple(
        tuple((decay * s.astype(c) + weight * gg).astype(s.dtype) for s, gg in zip(axis_s, axis_g))
        for axis_s, axis_g in zip(stats, gram)
    )


def _check_sizes(precondition_frequency: Any, block_size: Any) -> None:
    """Integers >= 1; a whole number given as a 0-d array (Optax's ``inject_hyperparams``)
    counts, a traced one is checked where it is used."""
    for name, value in (
        ("precondition_frequency", precondition_frequency),
        ("block_size", block_size),
    ):
        if isinstance(value, jax.core.Tracer):
            continue
        if isinstance(value, (np.ndarray, jax.Array)) and np.shape(value) == ():
            x = np.asarray(value)
            if np.issubdtype(x.dtype, np.number) and np.isfinite(x) and float(x).is_integer():
                value = int(x)
        _checks.check_int(name, value, minimum=1)


def _block_size(value: Any) -> int:
    """``block_size`` as a Python int: it sets the state's shapes, so ``init`` must know it.
    (A TypeError: a chain's trace-time state check then skips this member.)"""
    if isinstance(value, jax.core.Tracer):
        raise TypeError(
            "block_size sets the shapes of the Kronecker factors, so it cannot be traced at "
            "init: keep it a Python int "
            "(optax.inject_hyperparams(..., static_args=('block_size',)))"
        )
    return int(np.asarray(value))


def _layout_of(factors: Any) -> tuple[tuple[tuple[int, int], ...], ...]:
    """The block layout a leaf's factors were built with (update reads it from the state, so
    a block_size given as a traced array is never needed there)."""
    return tuple(tuple((f.shape[0], f.shape[1]) for f in axis) for axis in factors)


def _every(precondition_frequency: Any, count: jax.Array) -> jax.Array:
    """count % precondition_frequency == 0, for a Python int or a (traced) array."""
    return count % jnp.asarray(precondition_frequency).astype(count.dtype) == 0


# --- SOAP ---------------------------------------------------------------------------------


@describe(
    mu="first moment: moving average of the updates, in the params' own basis (1x params)",
    nu="second moment: moving average of the rotated gradient squared, (Q_L^T G Q_R)**2, "
    "in the eigenbasis (1x params)",
    stats="Kronecker factors: per matrix axis a moving average of G G^T (rows) and G^T G "
    "(columns), d x d per axis, block-diagonal above block_size",
    basis="eigenvectors of each factor (largest eigenvalue first), d x d per axis, refreshed "
    "every precondition_frequency steps",
    count="steps taken so far (int32 scalar); the first only fills stats and basis",
)
class SoapState(NamedTuple):
    mu: Any
    nu: Any
    stats: Any
    basis: Any
    count: jax.Array


def scale_by_soap(
    b1: float = 0.95,
    b2: float = 0.95,
    eps: float = 1e-8,
    shampoo_beta: float | None = None,
    precondition_frequency: int = 10,
    block_size: int = 1024,
    *,
    mu_dtype: Any = None,
) -> GradientTransformation:
    r"""Adam in the eigenbasis of Shampoo's Kronecker factors (SOAP).

    Update:     step 1: S_a = (1 - beta_s) G_a G_a^T ;  Q_a = eigh(S_a) ;  u = 0 (no step)
                then, with t = count - 1 Adam steps and Q = (Q_1, ..., Q_k):
                G' = Q^T g          (g rotated: Q_L^T G Q_R for a matrix)
                mu = b1 mu + (1 - b1) u ;  nu = b2 nu + (1 - b2) G'**2
                u  = sqrt(1 - b2**t) / (1 - b1**t) * Q [ Q^T mu / (sqrt(nu) + eps) ]
                S_a = beta_s S_a + (1 - beta_s) G_a G_a^T          (beta_s = shampoo_beta or b2)
                every precondition_frequency Adam steps: one power step and QR per factor,
                Q_a = qr(S_a Q_a) with columns sorted by diag(Q_a^T S_a Q_a), descending;
                nu's entries follow their columns.
    State:      mu, nu -- like params; stats, basis -- d x d per axis (block-diagonal above
                ``block_size``), float32 at least; count.
    Memory:     2x params + 2 * sum over axes of (block count * block size**2) per leaf:
                a 1024 x 1024 matrix keeps 2 + 4 = 6x its size; see ``kronecker_layout``.
    Args:       b1, b2, shampoo_beta -- in [0, 1).  eps -- >= 0.
                precondition_frequency, block_size -- integers >= 1 (static).
    Note:       mu stays in the params' basis and is rotated every step, as in the paper's
                code, so a new basis never strands old momentum. Leaves with fewer than two
                axes: Adam, one step late. eps sits where the paper's code puts it, next
                to the raw sqrt(nu), the bias corrections in the step size (Kingma & Ba's
                "epsilon hat" form): not ``gradchain.adam``'s sqrt(nu_hat) + eps, which
                differs wherever a rotated coordinate's |g| is near eps (about 1e-6 on the
                params after 30 steps against pytorch-optimizer with eps 1e-8).
                pytorch-optimizer's ``SOAP`` runs its QR in float32 whatever the dtype:
                measured 4.5e-7 after 30 float64 steps; with its QR in float64, 3.2e-13.
    Reference:  Vyas et al., "SOAP: Improving and Stabilizing Shampoo using Adam", 2024,
                Algorithms 3 and 4.
    """
    _checks.check_unit_interval("b1", b1)
    _checks.check_unit_interval("b2", b2)
    _checks.check_non_negative("eps", eps)
    if shampoo_beta is not None:
        _checks.check_unit_interval("shampoo_beta", shampoo_beta)
    _check_sizes(precondition_frequency, block_size)
    _checks.check_dtype("mu_dtype", mu_dtype)
    beta_s = b2 if shampoo_beta is None else shampoo_beta

    def init(params):
        size = _block_size(block_size)

        def leaf(p):
            c = compute_dtype(p.dtype)
            mu = jnp.zeros_like(p, accumulator_dtype(p, mu_dtype))
            nu = jnp.zeros_like(p, moment_dtype(p))
            return (
                mu,
                nu,
                _stack(p.shape, size, c, "zeros"),
                _stack(p.shape, size, c, "eye"),
            )

        mu, nu, stats, basis = tree_map_split(leaf, 4, params)
        return SoapState(mu, nu, stats, basis, jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, *, gradient=None, **extra):
        grads = updates if gradient is None else gradient
        for g in jax.tree.leaves(grads):  # Kronecker factors are products over a whole leaf
            refuse_if_sharded(g, "the Kronecker factors (scale_by_shampoo, scale_by_soap)")
        given = updates, state.mu, state.nu  # on an Explicit mesh: whole leaves, cut back below
        updates, grads, mu, nu = jax.tree.map(whole, (updates, grads, state.mu, state.nu))
        t = state.count  # Adam steps before this one, plus the first (statistics only)
        first = t == 0

        def adam_step(u, g, mu, nu, stats, basis):
            layout = _layout_of(stats)
            c = compute_dtype(u.dtype, mu.dtype, nu.dtype)
            d1, d2, ds = (jnp.asarray(x, c) for x in (b1, b2, beta_s))
            n = jnp.maximum(t, 1).astype(c)
            mu_new = d1 * mu.astype(c) + (1 - d1) * u.astype(c)
            nu_new = d2 * nu.astype(c) + (1 - d2) * jnp.square(_into(g.astype(c), basis, layout))
            step_size = jnp.sqrt(1 - d2**n) / (1 - d1**n)  # both bias corrections
            ratio = _into(mu_new, basis, layout) / (jnp.sqrt(nu_new) + jnp.asarray(eps, c))
            out = step_size * _out_of(ratio, basis, layout)
            stats = _accumulate(stats, g, layout, ds, 1 - ds, c)
            return (
                jnp.where(first, jnp.zeros_like(out), out).astype(u.dtype),
                jnp.where(first, mu.astype(c), mu_new).astype(mu.dtype),
                jnp.where(first, nu.astype(c), nu_new).astype(nu.dtype),
                stats,
            )

        out, mu, nu, stats = tree_map_split(
            adam_step, 4, updates, grads, mu, nu, state.stats, state.basis
        )
        which = jnp.where(first, 0, jnp.where(_every(precondition_frequency, t), 1, 2))
        basis, nu = jax.lax.switch(
            which,
            (_eigh_all, _power_refresh, lambda s, q, v: (q, v)),
            stats,
            state.basis,
            nu,
        )
        out, mu, nu = jax.tree.map(sharded_like, (out, mu, nu), given)
        return out, SoapState(mu, nu, stats, basis, increment(state.count))

    return GradientTransformation(init, update, name="scale_by_soap", preprocessing=False)


def _eigenvectors(s: jax.Array) -> jax.Array:
    """Eigenvectors of each block of ``s`` (count, d, d), largest eigenvalue first."""
    _, q = jnp.linalg.eigh(s)
    return q[..., ::-1]


def _eigh_all(stats, basis, nu):
    """The first basis: exact eigenvectors of every factor (nu is still zero)."""
    return jax.tree.map(_eigenvectors, stats), nu


def _power_refresh(stats, basis, nu):
    """One power iteration + QR for every factor (Vyas et al., Algorithm 4)."""

    def leaf(v, s_leaf, q_leaf):
        new_q = []
        for axis, (blocks, s_axis, q_axis) in enumerate(zip(_layout_of(s_leaf), s_leaf, q_leaf)):
            qs, orders = [], []
            for s, q in zip(s_axis, q_axis):
                sq = jnp.matmul(s, q, precision=_HIGHEST)
                order = jnp.argsort(-jnp.sum(q * sq, axis=1), axis=-1)  # diag(Q^T S Q)
                qr, _ = jnp.linalg.qr(jnp.take_along_axis(sq, order[:, None, :], axis=2))
                qs.append(qr)
                orders.append(order)
            parts = [  # nu's entries follow their eigenvectors
                jnp.take_along_axis(p, o[:, :, None], axis=1)
                for p, o in zip(_split(v, axis, blocks), orders)
            ]
            v = _unsplit(parts, axis, v.shape)
            new_q.append(tuple(qs))
        return tuple(new_q), v

    basis, nu = tree_map_split(leaf, 2, nu, stats, basis)
    return basis, nu


# --- Shampoo ------------------------------------------------------------------------------


@describe(
    stats="Kronecker factors: per matrix axis a discounted sum of G G^T (rows) and G^T G "
    "(columns), d x d per axis, block-diagonal above block_size",
    roots="inverse roots (S + eps I)^(-1/(2k)) of each factor, d x d per axis, refreshed "
    "every precondition_frequency steps",
    count="steps taken so far (int32 scalar)",
)
class ShampooState(NamedTuple):
    stats: Any
    roots: Any
    count: jax.Array


def scale_by_shampoo(
    b2: float = 1.0,
    eps: float = 1e-6,
    precondition_frequency: int = 1,
    block_size: int = 1024,
) -> GradientTransformation:
    r"""Precondition every axis by an inverse root of its Kronecker factor (Shampoo).

    Update:     S_a = b2 S_a + G_a G_a^T           (b2 = 1: the sum, Gupta et al.'s AdaGrad form)
                every precondition_frequency steps (the first included):
                P_a = (S_a + eps I)^(-1/(2k)) by eigh, k = the leaf's number of axes
                u = P_1 x_1 ... x_k P_k u          (a matrix: L^(-1/4) U R^(-1/4))
    State:      stats, roots -- d x d per axis (block-diagonal above ``block_size``), float32
                at least; count.
    Memory:     2 * sum over axes of (block count * block size**2) per leaf.
    Args:       b2 -- in [0, 1]: a discounted sum (no 1 - b2 factor: the scale is the graft's
                business, see ``gradchain.graft``).  eps -- >= 0.
                precondition_frequency, block_size -- integers >= 1 (static).
    Note:       Leaves with fewer than two axes pass through unchanged. Its magnitude is not
                Adam's: ``gradchain.shampoo`` grafts an AdaGrad or Adam norm onto it.
                pytorch-optimizer's ``Shampoo`` starts its factors at eps I and takes the
                root of the sum without adding eps (the same numbers), by SVD: measured
                5.6e-13 on the params after 30 steps with precondition_frequency=1. With a
                larger frequency its roots start at zero (no step until the first refresh);
                here the first step computes them.
    Reference:  Gupta, Koren & Singer, "Shampoo: Preconditioned Stochastic Tensor
                Optimization", 2018; Anil et al., "Scalable Second Order Optimization for
                Deep Learning", 2020 (blocks, grafting).
    """
    _checks.check_closed_unit_interval("b2", b2)
    _checks.check_non_negative("eps", eps)
    _check_sizes(precondition_frequency, block_size)

    def init(params):
        size = _block_size(block_size)

        def leaf(p):
            c = compute_dtype(p.dtype)
            return _stack(p.shape, size, c, "zeros"), _stack(p.shape, size, c, "zeros")

        stats, roots = tree_map_split(leaf, 2, params)
        return ShampooState(stats, roots, jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, *, gradient=None, **extra):
        grads = updates if gradient is None else gradient
        for g in jax.tree.leaves(grads):  # Kronecker factors are products over a whole leaf
            refuse_if_sharded(g, "the Kronecker factors (scale_by_shampoo, scale_by_soap)")
        given = updates  # on an Explicit mesh: whole leaves, cut back below
        updates, grads = jax.tree.map(whole, (updates, grads))

        def accumulate(g, s):
            c = compute_dtype(g.dtype)
            return _accumulate(s, g, _layout_of(s), jnp.asarray(b2, c), 1, c)

        stats = jax.tree.map(accumulate, grads, state.stats)

        def refresh(stats, roots):
            def leaf(g, s_leaf):  # exponent -1/(2k), k = the number of factored axes
                return jax.tree.map(lambda s: _inverse_root(s, eps, 2 * len(s_leaf)), s_leaf)

            return jax.tree.map(leaf, grads, stats)

        roots = jax.lax.cond(
            _every(precondition_frequency, state.count), refresh, lambda s, r: r, stats, state.roots
        )

        def precondition(u, r):
            c = compute_dtype(u.dtype)
            return _apply(u.astype(c), r, _layout_of(r), "nij,njr->nir").astype(u.dtype)

        out = jax.tree.map(sharded_like, jax.tree.map(precondition, updates, roots), given)
        return out, ShampooState(stats, roots, increment(state.count))

    return GradientTransformation(init, update, name="scale_by_shampoo", preprocessing=False)


def _inverse_root(s: jax.Array, eps: Any, p: int) -> jax.Array:
    """(S + eps I)^(-1/p) for each block of ``s`` (count, d, d), S symmetric PSD, by eigh."""
    w, v = jnp.linalg.eigh(s)
    w = jnp.maximum(w, 0) + jnp.asarray(eps, w.dtype)
    scaled = v * (w ** jnp.asarray(-1.0 / p, w.dtype))[..., None, :]
    return jnp.matmul(scaled, jnp.swapaxes(v, -1, -2), precision=_HIGHEST)
