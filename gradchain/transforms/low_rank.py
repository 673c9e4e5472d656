"""GaLore: an optimizer run on a low-rank projection of each matrix gradient.

Family: low-rank. For an m x n gradient G, GaLore keeps an orthonormal basis P of r columns
(the top singular vectors of G on the short side, refreshed every ``update_proj_gap`` steps),
gives the base optimizer (Adam by default) the projected r x n (or m x r) gradient, and maps
its output back. The base optimizer's moments are therefore r/min(m, n) of their usual size.

Which leaves are matrices: by default the 2-D ones (axis 0 fan-in, axis 1 fan-out). A
``GaLoreDimensionNumbers`` per leaf says which axes of a larger leaf are the reduction axes
and which the output axes (each group flattened into one); every axis must be in one group.
Other leaves (vectors, scalars, leaves given None) go to the base optimizer unprojected.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain import _checks
from gradchain.base import Child, GradientTransformation, describe
from gradchain.transforms.adam import scale_by_adam
from gradchain.transforms.mesh_axes import refuse_if_sharded, sharded_like, whole
from gradchain.transforms.moment_math import compute_dtype, increment

__all__ = [
    "GaLoreDimensionNumbers",
    "GaLoreState",
    "scale_by_galore",
]


class GaLoreDimensionNumbers(NamedTuple):
    """Which axes of a leaf form the rows (``reduction_axis``: the fan-in) and which the
    columns (``output_axis``: the fan-out) of the matrix GaLore projects; an int or a tuple of
    ints each (several axes are flattened into one, in the order given). Together they must
    name every axis. The default is a plain ``x @ W`` matrix: (0, 1). E.g. an attention
    kernel (embed, heads, head_dim) is ``GaLoreDimensionNumbers(0, (1, 2))``: an
    embed x (heads * head_dim) matrix. Optax's ``contrib.GaLoreDimensionNumbers``."""

    reduction_axis: Any = 0
    output_axis: Any = 1


@describe(
    count="steps taken so far (int32 scalar): the projectors are refreshed when count % "
    "update_proj_gap == 0",
    base_optimizer_state="the base optimizer's state, made for the projected shapes: r x n "
    "(or m x r) for a projected leaf, the leaf's own shape otherwise",
    projector="per leaf, the orthonormal basis P (m x r when m >= n, else n x r; the "
    "params' dtype), or None for a leaf that is not projected",
)
class GaLoreState(NamedTuple):
    count: jax.Array
    base_optimizer_state: Any
    projector: Any


class _Matrix(NamedTuple):
    """How one leaf is seen as an m x n matrix, and the side its rank-r basis is on."""

    order: tuple[int, ...]  # the leaf's axes, reduction axes first
    shape: tuple[int, ...]  # the leaf's shape after that transpose
    m: int
    n: int
    rank: int

    @property
    def left(self) -> bool:  # a tall (or square) matrix: P spans its columns, P is m x r
        return self.m >= self.n

    @property
    def projected_shape(self) -> tuple[int, int]:
        return (self.rank, self.n) if self.left else (self.m, self.rank)

    @property
    def projector_shape(self) -> tuple[int, int]:
        return (self.m, self.rank) if self.left else (self.n, self.rank)

    def flatten(self, x: jax.Array) -> jax.Array:
        return x.transpose(self.order).reshape(self.m, self.n)

    def unflatten(self, y: jax.Array) -> jax.Array:
        return y.reshape(self.shape).transpose(np.argsort(self.order))


def _is_spec(x: Any) -> bool:
    """None, or dimension numbers (ours, or another library's with the same two fields)."""
    return x is None or (
        isinstance(x, tuple) and hasattr(x, "reduction_axis") and hasattr(x, "output_axis")
    )


def _axes(group: Any, ndim: int, where: str, name: str) -> tuple[int, ...]:
    axes = (group,) if isinstance(group, (int, np.integer)) else tuple(group)
    for a in axes:
        if not -ndim <= a < ndim:
            raise _checks.GradchainError(
                f"weight_dimension_numbers at {where}: {name} {a} is out of range for a leaf "
                f"with {ndim} axes"
            )
    return tuple(int(a) % ndim for a in axes)


def _matrix(x: Any, dims: Any, rank: int, where: str) -> _Matrix | None:
    """The matrix view of leaf ``x`` under ``dims``; None when it is not projected (no dims,
    or an empty matrix: there is nothing to project)."""
    if dims is None:
        return None
    shape = tuple(np.shape(x))
    if len(shape) < 2:
        raise _checks.GradchainError(
            f"weight_dimension_numbers at {where}: GaLore projects matrices, got a leaf of "
            f"shape {shape}; give None for it (it then goes to the base optimizer unprojected)"
        )
    red = _axes(dims.reduction_axis, len(shape), where, "reduction_axis")
    out = _axes(dims.output_axis, len(shape), where, "output_axis")
    if set(red) & set(out) or len(set(red)) + len(set(out)) != len(shape) or not red or not out:
        raise _checks.GradchainError(
            f"weight_dimension_numbers at {where}: reduction axes {red} and output axes {out} "
            f"must split the {len(shape)} axes of a leaf of shape {shape} between them, "
            "each axis in exactly one"
        )
    order = red + out
    m, n = math.prod(shape[a] for a in red), math.prod(shape[a] for a in out)
    r = min(rank, m, n)
    if r == 0:
        return None
    return _Matrix(order, tuple(shape[a] for a in order), m, n, r)


def _matrices(weight_dimension_numbers: Any, tree: Any, rank: int) -> list[_Matrix | None]:
    """One ``_Matrix`` (or None) per leaf of ``tree``, in its leaf order."""
    leaves_with_paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    dims = weight_dimension_numbers
    if dims is None:  # the default: every 2-D leaf is a matrix, as it stands
        per_leaf = [
            GaLoreDimensionNumbers() if np.ndim(x) == 2 else None for _, x in leaves_with_paths
        ]
    else:
        if callable(dims) and not _is_spec(dims):
            dims = dims(tree)
        if dims is not None and _is_spec(dims):  # one for all: every leaf with >= 2 axes
            per_leaf = [dims if np.ndim(x) >= 2 else None for _, x in leaves_with_paths]
        else:  # a tree of them, a prefix of the params' (None covers a subtree: not projected)
            try:
                nested = jax.tree.map(
                    lambda d, sub: jax.tree.map(lambda _: d, sub), dims, tree, is_leaf=_is_spec
                )
                per_leaf = jax.tree.structure(tree).flatten_up_to(nested)
            except (ValueError, TypeError) as error:
                raise _checks.GradchainError(
                    "weight_dimension_numbers must be a GaLoreDimensionNumbers, a tree of them "
                    "(None where a leaf is not projected) with the params' tree as its prefix, "
                    f"or a function of the params returning one; it does not fit them: {error}"
                ) from None
    return [
        _matrix(x, d, rank, _checks.path_str(path))
        for (path, x), d in zip(leaves_with_paths, per_leaf)
    ]


def _zeros(shape: tuple[int, ...], param: jax.Array) -> jax.Array:
    """Zeros in the param's dtype; laid out like the param when shaped like it (P of a full-
    rank tall matrix), as ``gradchain.state_shardings`` lays out every param-shaped slot."""
    return jnp.zeros_like(param) if shape == np.shape(param) else jnp.zeros(shape, param.dtype)


def _basis(g2: jax.Array, mat: _Matrix, dtype: Any) -> jax.Array:
    """The top ``mat.rank`` singular vectors of ``g2`` on its short side, as columns. The SVD
    runs in single precision whatever the dtype, as Optax's: in float64 a float64 SVD flips the
    sign of some singular vectors at a refresh, and the moments kept from the old basis then
    take another (equally valid) path -- 0.38 apart from Optax's after 50 steps, measured."""
    single = jnp.complex64 if jnp.iscomplexobj(g2) else jnp.float32
    u, _, vh = jnp.linalg.svd(g2.astype(single), full_matrices=False)
    p = u[:, : mat.rank] if mat.left else jnp.conj(vh[: mat.rank, :]).T
    return p.astype(dtype)


def _down(g2: jax.Array, p: jax.Array, mat: _Matrix) -> jax.Array:
    """The gradient in the subspace: P^H G (left) or G P (right)."""
    p = p.astype(g2.dtype)
    return jnp.conj(p).T @ g2 if mat.left else g2 @ p


def _up(low: jax.Array, p: jax.Array, mat: _Matrix) -> jax.Array:
    """An update in the subspace mapped back: P U (left) or U P^H (right)."""
    p = p.astype(low.dtype)
    return p @ low if mat.left else low @ jnp.conj(p).T


def scale_by_galore(
    rank: int = 128,
    update_proj_gap: int = 200,
    scale: float = 1.0,
    base_optimizer: GradientTransformation | None = None,
    weight_dimension_numbers: Any = None,
) -> GradientTransformation:
    r"""GaLore's direction: the base optimizer run on each matrix gradient's low-rank projection.

    Update:     per matrix leaf G (m x n, ``weight_dimension_numbers``), r = min(rank, m, n):
                every ``update_proj_gap`` steps (the first included) P <- the top r left
                singular vectors of G (m >= n: P is m x r) or right ones (m < n: n x r),
                from an SVD in float32 (complex64) whatever the dtype, as Optax's;
                R = P^H G (or G P) ;  N, base_state = base_optimizer(R, base_state)
                u = scale * P N (or scale * N P^H).
                Every other leaf: u = base_optimizer's update of its gradient (no ``scale``,
                as in the paper's code and Optax).
    State:      count (int32), base_optimizer_state (made for the projected shapes),
                projector -- per matrix leaf P, in the params' dtype (None for other leaves).
    Memory:     per m x n matrix with Adam, (max(m, n) + 2 min(m, n)) r -- P, then mu and nu
                -- instead of 2 m n; +2x for the other leaves.
    Args:       rank -- an int >= 1 (capped at min(m, n) per leaf).
                update_proj_gap -- an int >= 1: steps between refreshes of P.
                scale -- a number multiplying the projected leaves' updates (the paper's alpha).
                base_optimizer -- a transform of gradients alone (it is called without params,
                on low-rank shapes): ``scale_by_adam()`` when None; not ``adamw`` (decay
                the weights after this transform, as ``gradchain.galore`` does).
                weight_dimension_numbers -- None: the 2-D leaves are matrices. One
                ``GaLoreDimensionNumbers``: every leaf with >= 2 axes is, seen through it. A
                tree of them with the params' tree as its prefix (None: not projected), or a
                function of the params returning one.
    Note:       Optax's ``contrib.scale_by_galore``: same arguments, state fields and numbers.
                A singular vector's sign is arbitrary: another SVD (float64, another device)
                may flip one at a refresh, and the base optimizer's moments, kept from the old
                basis, then take another path -- GaLore's, not this code's, sensitivity.
                An empty matrix (an axis of size 0) is passed to the base optimizer as it is.
    Sharding:   the SVD and the projections need the whole matrix: a projected leaf sharded
                inside ``shard_map`` is refused at trace time. Under ``jit`` GSPMD inserts the
                gathers; on a mesh with Explicit axes each sharded matrix gradient is gathered
                whole onto every device (one all-gather per matrix and step), the projected
                gradient, P and the base state of that leaf are replicated, and the update is
                cut back to the gradient's sharding.
    Reference:  Zhao et al., "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank
                Projection", ICML 2024 (arXiv:2403.03507).
    """
    for name, value in (("rank", rank), ("update_proj_gap", update_proj_gap)):
        if isinstance(value, jax.Array):  # e.g. handed in by optax.inject_hyperparams
            raise _checks.GradchainError(
                f"{name} must be a Python int (it sets the state's shapes or the refresh "
                f"schedule), got an array {value!r}: under inject_hyperparams, name it in "
                "static_args"
            )
        _checks.check_int(name, value, minimum=1)
    _checks.check_hyperparam("scale", scale)
    if base_optimizer is None:
        base_optimizer = scale_by_adam()
    if not (
        callable(getattr(base_optimizer, "init", None))
        and callable(getattr(base_optimizer, "update", None))
    ):
        raise _checks.GradchainError(
            "base_optimizer must be a gradient transformation (with init and update), e.g. "
            f"gradchain.scale_by_adam(); got {type(base_optimizer).__name__}"
        )

    def init(params):
        count = jnp.zeros([], jnp.int32)
        leaves, treedef = jax.tree.flatten(params)
        if not leaves:  # tree_map_params's mark (or no params): the slots are per parameter
            return GaLoreState(count, base_optimizer.init(params), params)
        mats = _matrices(weight_dimension_numbers, params, rank)
        seen, projector = [], []  # what the base optimizer will be given; the bases P
        for x, mat in zip(leaves, mats):
            seen.append(x if mat is None else _zeros(mat.projected_shape, x))
            projector.append(None if mat is None else _zeros(mat.projector_shape, x))
        return GaLoreState(
            count=count,
            base_optimizer_state=base_optimizer.init(treedef.unflatten(seen)),
            projector=treedef.unflatten(projector),
        )

    def update(updates, state, params=None, **extra):
        del params, extra  # the base optimizer sees low-rank shapes: no params for it
        leaves, treedef = jax.tree.flatten(updates)
        mats = _matrices(weight_dimension_numbers, updates, rank)
        refresh = state.count % update_proj_gap == 0

        def project(g, p, mat):  # -> (what the base optimizer gets, the basis P)
            if mat is None:
                return g, p
            refuse_if_sharded(g, "scale_by_galore")  # an SVD of a shard would be wrong
            g2 = mat.flatten(whole(g))  # on an Explicit mesh: the whole matrix (see Sharding)
            p = jax.lax.cond(refresh, lambda: sharded_like(_basis(g2, mat, p.dtype), p), lambda: p)
            return _down(g2, whole(p), mat), p

        def lift(g, n, p, mat):  # the base optimizer's step, back in the leaf's space
            if mat is None:
                return n
            full = mat.unflatten(_up(n, whole(p), mat))
            c = compute_dtype(full.dtype)
            return sharded_like((full.astype(c) * jnp.asarray(scale, c)).astype(g.dtype), g)

        pairs = [
            project(g, p, mat)
            for g, p, mat in zip(leaves, treedef.flatten_up_to(state.projector), mats)
        ]
        low, projectors = [r for r, _ in pairs], [p for _, p in pairs]
        steps, base_state = base_optimizer.update(
            treedef.unflatten(low), state.base_optimizer_state, None
        )
        out = [lift(*args) for args in zip(leaves, treedef.flatten_up_to(steps), projectors, mats)]
        new_state = GaLoreState(
            count=increment(state.count),
            base_optimizer_state=base_state,
            projector=treedef.unflatten(projectors),
        )
        return treedef.unflatten(out), new_state

    return GradientTransformation(
        init,
        update,
        name="scale_by_galore",
        preprocessing=False,
        reads_gradient=False,
        children=(Child(None, base_optimizer, ("base_optimizer_state",)),),
    )
