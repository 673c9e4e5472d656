"""Distance over gradients: a step size read from how far the params have moved from where
they started, over the gradients seen so far -- no learning rate to tune (DoG, DoWG, LDoG).

Family: distance over gradients, a parameter-free family kept apart from
``parameter_free.py`` (D-Adaptation, Prodigy, Mechanic, COCOB: estimates from inner products
or bets) because that file is full. Each keeps a copy of the starting params (+1x) and a few
scalars, computed in at least float32. Each reads the params, and emits ``+eta * u``: chain a
``scale_by_learning_rate`` after it (``optimizers/distance_over_gradients.py``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import GradientTransformation, describe
from gradchain.transforms.mesh_axes import refuse_if_sharded
from gradchain.transforms.moment_math import abs_sq, cast, compute_dtype, real_dtype, scalar_dtype

__all__ = [
    "DistanceOverGradientsState",
    "DoGState",
    "DoWGState",
    "DogState",
    "DowgState",
    "scale_by_distance_over_gradients",
    "scale_by_dog",
    "scale_by_dowg",
]


def _sq_norm(x: jax.Array, dtype: Any, who: str) -> jax.Array:
    x = jnp.asarray(x)  # a Python-float leaf, as init and update accept
    refuse_if_sharded(x, who)
    return jnp.sum(abs_sq(x, real_dtype(compute_dtype(x.dtype, dtype))).astype(dtype))


def _tree_sq_norm(tree: Any, dtype: Any, who: str) -> jax.Array:
    total = jnp.zeros([], dtype)
    for x in jax.tree.leaves(tree):
        total = total + _sq_norm(x, dtype, who)
    return total


def _sq_distance(params: Any, start: Any, dtype: Any, who: str) -> jax.Array:
    def leaf(p, s):
        c = compute_dtype(p.dtype, s.dtype, dtype)
        return _sq_norm(p.astype(c) - s.astype(c), dtype, who)

    return sum(jax.tree.leaves(jax.tree.map(leaf, params, start)), jnp.zeros([], dtype))


def _needs_params(who: str, updates: Any, params: Any) -> None:
    if params is None:
        _checks.refuse_missing_params(who)
    _checks.check_same_structure("updates", updates, "params", params)


def _scaled(u: jax.Array, eta: jax.Array) -> jax.Array:
    c = compute_dtype(u.dtype, eta.dtype)
    return cast(cast(u, c) * cast(eta, c), u.dtype)


# --- layer-wise DoG ------------------------------------------------------------------------


@describe(
    max_dist="per leaf, the largest distance ||p - p_0|| seen, starting at reps_rel * (1 + "
    "||p_0||) (a scalar, >= float32)",
    grad_sum_of_squares="per leaf, the sum over steps of ||u||**2 (a scalar, >= float32)",
    init_params="the params at init, in param_dtype",
)
class DistanceOverGradientsState(NamedTuple):
    max_dist: Any
    grad_sum_of_squares: Any
    init_params: Any


def scale_by_distance_over_gradients(
    reps_rel: float = 1e-6,
    eps: float = 1e-8,
    param_dtype: Any = jnp.float32,
    global_scale: float = 1.0,
) -> GradientTransformation:
    r"""Layer-wise DoG: each leaf's step is its largest distance from the start over the root
    of its summed squared gradients.

    Update:     per leaf: r_t = max(r_{t-1}, ||p_t - p_0||), r_0 = reps_rel (1 + ||p_0||)
                G_t = G_{t-1} + ||u_t||**2 ;  u_t = global_scale * r_t / sqrt(G_t + eps) * u_t
    State:      max_dist, grad_sum_of_squares (per leaf, scalars); init_params (like params,
                in ``param_dtype``).   Memory: +1x params (at param_dtype) and 2 scalars a leaf.
    Args:       reps_rel -- > 0 (1e-6; 1e-4 with batch norm).  eps -- >= 0.
                param_dtype -- the dtype of the kept starting params.  global_scale -- e.g. -1.
    Note:       Optax's ``scale_by_distance_over_gradients`` ("LDoG"); its G is a shape (1,)
                array, so a scalar leaf's update comes back with shape (1,) there, and here
                with the leaf's shape. The authors recommend averaging the iterates.
    Reference:  Ivgi, Hinder & Carmon, "DoG is SGD's Best Friend: A Parameter-Free Dynamic
                Step Size Schedule", ICML 2023.
    """
    _checks.check_positive("reps_rel", reps_rel)
    _checks.check_non_negative("eps", eps)
    _checks.check_dtype("param_dtype", param_dtype)
    _checks.check_hyperparam("global_scale", global_scale)
    who = "scale_by_distance_over_gradients"

    def init(params):
        def start(p):
            c = compute_dtype(real_dtype(jnp.result_type(p)))
            return jnp.asarray(reps_rel, c) * (1 + jnp.sqrt(_sq_norm(jnp.asarray(p), c, who)))

        return DistanceOverGradientsState(
            max_dist=jax.tree.map(start, params),
            grad_sum_of_squares=jax.tree.map(
                lambda p: jnp.zeros([], compute_dtype(real_dtype(jnp.result_type(p)))), params
            ),
            init_params=jax.tree.map(lambda p: jnp.array(p, param_dtype, copy=True), params),
        )

    def update(updates, state, params=None, **extra):
        _needs_params(who, updates, params)

        def leaf(u, p, p0, r, g_sos):
            c = r.dtype
            r = jnp.maximum(r, jnp.sqrt(_sq_distance(p, p0, c, who)))
            g_sos = g_sos + _sq_norm(u, c, who)
            eta = jnp.asarray(global_scale, c) * r / jnp.sqrt(g_sos + jnp.asarray(eps, c))
            return _scaled(u, eta), r, g_sos

        treedef = jax.tree.structure(updates)
        out = [
            leaf(*xs)
            for xs in zip(
                jax.tree.leaves(updates),
                treedef.flatten_up_to(params),
                treedef.flatten_up_to(state.init_params),
                treedef.flatten_up_to(state.max_dist),
                treedef.flatten_up_to(state.grad_sum_of_squares),
            )
        ]
        pick = lambda i: treedef.unflatten([o[i] for o in out])  # noqa: E731
        return pick(0), DistanceOverGradientsState(pick(1), pick(2), state.init_params)

    return GradientTransformation(init, update, name=who, preprocessing=False)


# --- DoG and DoWG: one step size for the whole tree ----------------------------------------


@describe(
    is_init_step="True before the first step (bool scalar): the 'learning_rate' start uses it",
    init_params="the params at init (like params)",
    max_dist="the largest distance ||x - x_0|| over the whole tree seen so far, starting at "
    "r_eps (a scalar, >= float32)",
    sum_sq_norm_grads="the sum over steps of ||g||**2 (a scalar, >= float32)",
)
class DogState(NamedTuple):
    is_init_step: jax.Array
    init_params: Any
    max_dist: jax.Array
    sum_sq_norm_grads: jax.Array


DoGState = DogState  # Optax's name (contrib.DoGState): the same fields, in the same order

_DOG_STARTS = ("distance", "learning_rate", "heuristic")


def scale_by_dog(init_step: tuple[str, float], eps: float = 1e-8) -> GradientTransformation:
    r"""DoG's step size: the largest distance travelled over the root of the summed squared
    gradient norms, one scalar for the whole tree.

    Update:     r_t = max(r_{t-1}, ||x_t - x_0||) ;  G_t = G_{t-1} + ||u_t||**2
                u_t = r_t / sqrt(G_t + eps) * u_t   (norms over all leaves together)
                r_0 by ``init_step = (tag, value)``: "distance": value; "heuristic":
                value * (1 + ||x_0||); "learning_rate": 0, and the first step is value * u.
    State:      is_init_step, init_params (+1x params), max_dist, sum_sq_norm_grads.
                Memory: +1x params.
    Note:       Optax's ``contrib.dog`` direction. With "heuristic", init needs the real
                params, not zeros.
    Reference:  Ivgi, Hinder & Carmon, "DoG is SGD's Best Friend", ICML 2023.
    """
    if not (isinstance(init_step, (tuple, list)) and len(init_step) == 2):
        raise _checks.GradchainError(
            f"init_step must be a pair (tag, value) with tag one of {_DOG_STARTS}, got "
            f"{_checks._kind(init_step)}"
        )
    kind, value = init_step
    _checks.check_choice("init_step[0]", kind, _DOG_STARTS)
    _checks.check_non_negative("init_step[1]", value)
    _checks.check_non_negative("eps", eps)

    def init(params):
        c = scalar_dtype(params)
        if kind == "distance":
            r = jnp.asarray(value, c)
        elif kind == "heuristic":
            r = jnp.asarray(value, c) * (1 + jnp.sqrt(_tree_sq_norm(params, c, "scale_by_dog")))
        else:
            r = jnp.zeros([], c)
        return DogState(
            is_init_step=jnp.asarray(True),
            init_params=jax.tree.map(lambda p: jnp.array(p, copy=True), params),
            max_dist=r,
            sum_sq_norm_grads=jnp.zeros([], c),
        )

    def update(updates, state, params=None, **extra):
        _needs_params("scale_by_dog", updates, params)
        c = state.max_dist.dtype
        r = jnp.maximum(
            state.max_dist, jnp.sqrt(_sq_distance(params, state.init_params, c, "scale_by_dog"))
        )
        g_sq = state.sum_sq_norm_grads + _tree_sq_norm(updates, c, "scale_by_dog")
        eta = r / jnp.sqrt(g_sq + jnp.asarray(eps, c))
        if kind == "learning_rate":
            eta = jnp.where(state.is_init_step, jnp.asarray(value, c), eta)
        out = jax.tree.map(lambda u: _scaled(u, eta), updates)
        return out, DogState(jnp.asarray(False), state.init_params, r, g_sq)

    return GradientTransformation(init, update, name="scale_by_dog", preprocessing=False)


@describe(
    init_params="the params at init (like params)",
    weighted_sq_norm_grads="sum over steps of r_t**2 ||g_t||**2 (a scalar, >= float32)",
    estim_sq_dist="the largest squared distance ||x - x_0||**2 seen, starting at "
    "init_estim_sq_dist (a scalar, >= float32)",
)
class DowgState(NamedTuple):
    init_params: Any
    weighted_sq_norm_grads: jax.Array
    estim_sq_dist: jax.Array


DoWGState = DowgState  # Optax's name (contrib.DoWGState): the same fields, in the same order

def scale_by_dowg(
    init_estim_sq_dist: float | None = None, eps: float = 1e-4
) -> GradientTransformation:
    r"""DoWG's step size: DoG with the gradients weighted by the squared distance at their step.

    Update:     r2_t = max(r2_{t-1}, ||x_t - x_0||**2) ;  v_t = v_{t-1} + r2_t ||u_t||**2
                u_t = r2_t / (sqrt(v_t) + eps) * u_t   (norms over all leaves together)
    State:      init_params (+1x params), weighted_sq_norm_grads, estim_sq_dist.
                Memory: +1x params.
    Args:       init_estim_sq_dist -- r2_0 >= 0 (None: eps).  eps -- > 0.
    Note:       Optax's ``contrib.dowg`` direction.
    Reference:  Khaled, Mishchenko & Jin, "DoWG Unleashed: An Efficient Universal
                Parameter-Free Gradient Descent Method", NeurIPS 2023.
    """
    _checks.check_non_negative("eps", eps)
    if init_estim_sq_dist is not None:
        _checks.check_non_negative("init_estim_sq_dist", init_estim_sq_dist)

    def init(params):
        c = scalar_dtype(params)
        start = eps if init_estim_sq_dist is None else init_estim_sq_dist
        return DowgState(
            init_params=jax.tree.map(lambda p: jnp.array(p, copy=True), params),
            weighted_sq_norm_grads=jnp.zeros([], c),
            estim_sq_dist=jnp.asarray(start, c),
        )

    def update(updates, state, params=None, **extra):
        _needs_params("scale_by_dowg", updates, params)
        c = state.estim_sq_dist.dtype
        r2 = jnp.maximum(
            state.estim_sq_dist, _sq_distance(params, state.init_params, c, "scale_by_dowg")
        )
        v = state.weighted_sq_norm_grads + r2 * _tree_sq_norm(updates, c, "scale_by_dowg")
        eta = r2 / (jnp.sqrt(v) + jnp.asarray(eps, c))
        out = jax.tree.map(lambda u: _scaled(u, eta), updates)
        return out, DowgState(state.init_params, v, r2)

    return GradientTransformation(init, update, name="scale_by_dowg", preprocessing=False)
