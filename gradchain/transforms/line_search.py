"""Quasi-Newton directions and the line searches that pick their step: L-BFGS, zoom (strong
Wolfe) and backtracking (Armijo).

A line search is a transform that calls the objective. Its ``update`` takes, besides the
direction, the extra arguments ``value`` (f at the params), ``grad`` (its gradient) and
``value_fn`` (f itself); any further keyword argument is handed to ``value_fn`` (a batch, a
key), as in Optax. The value and gradient it computes at the accepted step are kept in its
state, so the next step need not recompute them: see ``value_and_grad_from_state``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.errors import ArgumentError
from gradchain.base import GradientTransformation, describe, tree_zeros_like
from gradchain.transforms.mesh_axes import explicit_spec, refuse_if_sharded, zeros_stacked
from gradchain.transforms.moment_math import abs_sq, compute_dtype, increment, real_dtype

__all__ = [
    "ScaleByLBFGSState",
    "ScaleByBacktrackingLinesearchState",
    "ScaleByZoomLinesearchState",
    "BacktrackingLinesearchState",
    "LbfgsState",
    "ZoomLinesearchState",
    "scale_by_backtracking_linesearch",
    "scale_by_lbfgs",
    "scale_by_zoom_linesearch",
    "value_and_grad_from_state",
]

_HIGHEST = jax.lax.Precision.HIGHEST


# --- tree arithmetic -----------------------------------------------------------------------


def _value_dtype(tree: Any) -> jnp.dtype:
    """The real dtype of values, slopes and step sizes: the leaves' widest, at least float32."""
    return real_dtype(compute_dtype(*(jnp.result_type(x) for x in jax.tree.leaves(tree))))


def _inner(a: Any, b: Any, dtype: Any) -> jax.Array:
    """Re <a, b> = Re sum(conj(a) * b) over all leaves, in ``dtype``."""
    for x in jax.tree.leaves(a) + jax.tree.leaves(b):
        refuse_if_sharded(x, "an inner product over the whole tree (L-BFGS, the line searches)")
    def vdot(x, y):  # in the wider of the two dtypes (a bfloat16 ring against a float32 update)
        c = compute_dtype(x.dtype, y.dtype)
        x, y = x.astype(c), y.astype(c)
        if explicit_spec(x) is None and explicit_spec(y) is None:
            return jnp.vdot(x, y, precision=_HIGHEST).real
        # On an Explicit mesh a leaf sharded along some axis cannot be flattened, and a
        # product that contracts sharded dimensions must be told its output's sharding: contract
        # every axis in place, to a replicated scalar.
        axes = tuple(range(x.ndim))
        x = jnp.conj(x) if jnp.iscomplexobj(x) else x
        dims = ((axes, axes), ((), ()))
        replicated = jax.sharding.PartitionSpec()
        return jax.lax.dot_general(x, y, dims, precision=_HIGHEST, out_sharding=replicated).real

    parts = [vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]
    return functools.reduce(lambda s, p: s + p.astype(dtype), parts, jnp.zeros([], dtype))


def _squared_norm(tree: Any, dtype: Any) -> jax.Array:
    """sum |x|**2 over all leaves, in ``dtype``."""
    for x in jax.tree.leaves(tree):
        refuse_if_sharded(x, "a norm over the whole tree (L-BFGS, the line searches)")
    parts = [jnp.sum(abs_sq(x, real_dtype(x.dtype))) for x in jax.tree.leaves(tree)]
    return functools.reduce(lambda s, p: s + p.astype(dtype), parts, jnp.zeros([], dtype))


def _slope(grad: Any, direction: Any, dtype: Any) -> jax.Array:
    """d/d eta of f(w + eta * direction) at w, from JAX's gradient of f at w: Re sum(g * d)."""
    return _inner(jax.tree.map(jnp.conj, grad), direction, dtype)


def _plus(x: Any, scalar: jax.Array, y: Any) -> Any:
    """x + scalar * y, leaf by leaf, in x's dtype."""
    def plus(a, b):
        c = compute_dtype(a.dtype, b.dtype)
        return (a.astype(c) + scalar.astype(c) * b.astype(c)).astype(a.dtype)

    return jax.tree.map(plus, x, y)


def _times(scalar: jax.Array, tree: Any) -> Any:
    def mul(u):
        c = compute_dtype(u.dtype)
        return (scalar.astype(c) * u.astype(c)).astype(u.dtype)

    return jax.tree.map(mul, tree)


def _pick(condition: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), new, old)


# --- L-BFGS ---------------------------------------------------------------------------------


@describe(
    count="steps taken so far (int32 scalar)",
    params="the params at the last step, for the next parameter difference s",
    updates="the incoming update (gradient) at the last step, for the next difference y",
    diff_params_memory="the last memory_size parameter differences s, stacked on a leading "
    "axis (a ring buffer)",
    diff_updates_memory="the last memory_size gradient differences y, stacked likewise",
    weights_memory="rho = 1 / Re<y, s> for each stored pair (0 for an unusable pair), "
    "shape (memory_size,)",
)
class LbfgsState(NamedTuple):
    count: jax.Array
    params: Any
    updates: Any
    diff_params_memory: Any
    diff_updates_memory: Any
    weights_memory: jax.Array


def scale_by_lbfgs(memory_size: int = 10, scale_init_precond: bool = True) -> GradientTransformation:
    r"""Multiply the update by L-BFGS's approximation of the inverse Hessian.

    Update:     s_k = w_k - w_{k-1},  y_k = g_k - g_{k-1},  rho_k = 1 / Re<y_k, s_k>
                (0 when <y, s> = 0; all three 0 at the first step), stored in a ring of
                the last ``memory_size`` pairs; then the two-loop recursion
                  q = g;  for i newest..oldest: a_i = rho_i Re<s_i, q>;  q -= a_i y_i
                  r = gamma q;  for i oldest..newest: b_i = rho_i Re<y_i, r>;  r += (a_i - b_i) s_i
                emit r ~ H^{-1} g.   gamma = <y_k, s_k> / <y_k, y_k> (1 when y_k = 0) if
                ``scale_init_precond``, else 1; at the first step gamma = min(1, 1 / ||g||)
                (the first step stays in the unit ball).
    State:      count; params, updates (the last ones); diff_params_memory,
                diff_updates_memory (memory_size x params each); weights_memory.
    Memory:     (2 + 2 * memory_size)x params (on an Explicit mesh every ring is sharded as
                its parameter is, and the inner products reduce across the mesh).
    Args:       memory_size -- integer >= 1: pairs kept.  scale_init_precond -- gamma as above.
    Note:       emits a *descent direction times -1* as Optax does (r ~ H^{-1} g): follow it
                with ``scale(-1.0)`` or ``scale_by_learning_rate`` and a line search, as
                ``gradchain.lbfgs`` does. Needs the params in ``update``. Equal to
                ``optax.scale_by_lbfgs`` (see tests/test_line_search.py).
    Reference:  Nocedal & Wright, "Numerical Optimization", 1999, Algorithms 7.4-7.5;
                Liu & Nocedal, "On the limited memory BFGS method", 1989.
    """
    _checks.check_int("memory_size", memory_size, minimum=1)
    m = memory_size

    def init(params):
        def ring(p):  # typed like p on its trailing axes (on an Explicit mesh: sharded alike)
            return zeros_stacked(p, m, jnp.result_type(p))

        return LbfgsState(
            count=jnp.zeros([], jnp.int32),
            params=tree_zeros_like(params),
            updates=tree_zeros_like(params),
            diff_params_memory=jax.tree.map(ring, params),
            diff_updates_memory=jax.tree.map(ring, params),
            weights_memory=jnp.zeros([m], _value_dtype(params)),
        )

    def update(updates, state, params=None, **extra):
        if params is None:
            _checks.refuse_missing_params("scale_by_lbfgs")
        h = state.weights_memory.dtype
        started = state.count > 0
        s = jax.tree.map(lambda a, b: jnp.where(started, a - b, jnp.zeros_like(a)), params, state.params)
        y = jax.tree.map(  # in the kept dtype (the params'), fixed at init
            lambda a, b: jnp.where(started, a.astype(b.dtype) - b, jnp.zeros_like(b)),
            updates,
            state.updates,
        )
        sy = _inner(y, s, h)
        rho = jnp.where(sy == 0, jnp.zeros([], h), 1 / jnp.where(sy == 0, jnp.ones([], h), sy))
        newest = (state.count - 1) % m
        s_mem = jax.tree.map(lambda ring, x: ring.at[newest].set(x), state.diff_params_memory, s)
        y_mem = jax.tree.map(lambda ring, x: ring.at[newest].set(x), state.diff_updates_memory, y)
        rho_mem = state.weights_memory.at[newest].set(rho)

        if scale_init_precond:
            yy = _squared_norm(y, h)
            zero = yy == 0  # only an exact zero is guarded: a NaN stays visible
            gamma = jnp.where(zero, jnp.ones([], h), sy / jnp.where(zero, jnp.ones([], h), yy))
            g_norm = jnp.sqrt(_squared_norm(updates, h))
            gamma = jnp.where(started, gamma, jnp.minimum(1, 1 / g_norm))
        else:
            gamma = jnp.ones([], h)

        order = (state.count + jnp.arange(m, dtype=jnp.int32)) % m  # oldest .. newest

        def newest_to_oldest(q, i):
            s_i, y_i = jax.tree.map(lambda ring: ring[i], (s_mem, y_mem))
            a = rho_mem[i] * _inner(s_i, q, h)
            return _plus(q, -a, y_i), a

        q, alphas = jax.lax.scan(newest_to_oldest, updates, order, reverse=True)
        r = _times(gamma, q)

        def oldest_to_newest(r, i_a):
            i, a = i_a
            s_i, y_i = jax.tree.map(lambda ring: ring[i], (s_mem, y_mem))
            b = rho_mem[i] * _inner(y_i, r, h)
            return _plus(r, a - b, s_i), None

        r, _ = jax.lax.scan(oldest_to_newest, r, (order, alphas))
        kept = jax.tree.map(lambda u, o: u.astype(o.dtype), updates, state.updates)
        new_state = LbfgsState(increment(state.count), params, kept, s_mem, y_mem, rho_mem)
        return r, new_state

    return GradientTransformation(init, update, name="scale_by_lbfgs", preprocessing=False)


# --- what a line search needs from the caller ---------------------------------------------


def _objective(who: str, params, value, grad, value_fn, extra) -> Callable[[Any], Any]:
    """``value_fn`` with the extra keyword arguments it accepts bound; refuse the rest."""
    missing = [n for n, v in (("params", params), ("value", value), ("grad", grad),
                              ("value_fn", value_fn)) if v is None]
    if missing:
        raise ArgumentError(
            f"{who} calls the objective: give update(updates, state, params, value=f(params), "
            f"grad=grad_f(params), value_fn=f); missing: {', '.join(missing)}"
        )
    accepted = inspect.signature(value_fn).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    unused = sorted(k for k in extra if k not in accepted and not takes_any)
    if unused:
        raise ArgumentError(
            f"{who}: Unexpected keyword arguments {unused}: value_fn does not take them (its "
            f"arguments: {list(accepted)}); pass only what value_fn takes"
        )
    return functools.partial(value_fn, **extra)


class _AmbiguousState(_checks.GradchainError, KeyError):
    """Several candidates in a state where one was needed: a GradchainError that code written
    for Optax catches as the KeyError Optax raises."""

    __str__ = Exception.__str__  # KeyError's own would quote the message


# --- zoom line search (strong Wolfe) ---------------------------------------------------------


@describe(
    learning_rate="the step size the last search accepted (the next guess under "
    "initial_guess_strategy='keep')",
    value="f at the accepted step: the next step's value (see value_and_grad_from_state)",
    grad="the gradient of f at the accepted step, like params",
    num_linesearch_steps="objective evaluations in the last search (Optax: info.)",
    decrease_error="how far the accepted step misses sufficient decrease; 0 when met",
    curvature_error="how far the accepted step misses the curvature condition; 0 when met",
)
class ZoomLinesearchState(NamedTuple):
    learning_rate: jax.Array
    value: jax.Array
    grad: Any
    num_linesearch_steps: jax.Array
    decrease_error: jax.Array
    curvature_error: jax.Array


class _Bracket(NamedTuple):
    """The zoom search's loop carry, alive during one update only: the last trial step, the
    bracket [low, high] once found, the point the cubic fit reuses, and the best step with
    sufficient decrease seen so far (the fallback)."""

    count: Any
    stepsize: Any
    value: Any
    grad: Any
    slope: Any
    decrease_error: Any
    curvature_error: Any
    interval_found: Any
    done: Any
    failed: Any
    low: Any
    value_low: Any
    slope_low: Any
    high: Any
    value_high: Any
    slope_high: Any
    cubic_ref: Any
    value_cubic_ref: Any
    safe_stepsize: Any
    safe_value: Any
    safe_grad: Any


def _cubic_minimizer(a, fa, dfa, b, fb, c, fc):
    """The critical point of the cubic through (a, fa), (b, fb), (c, fc) with slope dfa at a
    (NaN when it has none: the caller then falls back)."""
    db, dc = b - a, c - a
    denom = (db * dc) ** 2 * (db - dc)
    m = jnp.stack([jnp.stack([dc**2, -(db**2)]), jnp.stack([-(dc**3), db**3])])
    rhs = jnp.stack([fb - fa - dfa * db, fc - fa - dfa * dc])
    A, B = jnp.dot(m, rhs, precision=_HIGHEST) / denom
    return a + (-B + jnp.sqrt(B * B - 3.0 * A * dfa)) / (3.0 * A)


def _quadratic_minimizer(a, fa, dfa, b, fb):
    """The critical point of the parabola through (a, fa), (b, fb) with slope dfa at a."""
    curvature = (fb - fa - dfa * (b - a)) / ((b - a) ** 2)
    return a - dfa / (2.0 * curvature)


def scale_by_zoom_linesearch(
    max_linesearch_steps: int,
    max_learning_rate: float | None = None,
    tol: float = 0.0,
    increase_factor: float = 2.0,
    slope_rtol: float = 1e-4,
    curv_rtol: float = 0.9,
    approx_dec_rtol: float | None = 1e-6,
    stepsize_precision: float = 1e-5,
    initial_guess_strategy: str = "keep",
    verbose: bool = False,
) -> GradientTransformation:
    r"""Scale the direction by a step size that meets the strong Wolfe conditions.

    Update:     find eta with, for phi(eta) = f(w + eta u) and phi'(eta) its slope,
                  decrease:   phi(eta) <= phi(0) + slope_rtol * eta * phi'(0)  (or, with
                              ``approx_dec_rtol``, Hager-Zhang's approximate form
                              phi'(eta) <= (2 slope_rtol - 1) phi'(0) and phi(eta) <=
                              phi(0) + approx_dec_rtol |phi(0)|)
                  curvature:  |phi'(eta)| <= curv_rtol |phi'(0)|
                in two phases: grow eta from the guess by ``increase_factor`` until a
                bracket is found, then shrink the bracket by cubic, quadratic or bisection
                steps. At most ``max_linesearch_steps`` evaluations of f and its gradient;
                when none meets both, the best step with sufficient decrease (or the last
                one). Emit eta * u.
    State:      learning_rate, value, grad (at the accepted step), num_linesearch_steps,
                decrease_error, curvature_error.   Memory: +1x params (grad).
    Args:       max_linesearch_steps -- integer >= 1.  max_learning_rate -- cap on eta, or
                None.  tol -- slack on both conditions.  increase_factor -- > 1.
                slope_rtol, curv_rtol -- 0 < slope_rtol < curv_rtol < 1.  approx_dec_rtol
                -- >= 0, or None for Armijo only.  stepsize_precision -- a bracket shorter
                than this ends the search.  initial_guess_strategy -- "one" (start at 1) or
                "keep" (start at the last accepted eta).
    Extra args: value, grad -- f and its gradient at the params; value_fn -- f; any other
                keyword argument is passed to value_fn.
    Note:       Optax's ``scale_by_zoom_linesearch`` step for step (tests/test_line_search.py).
                ``verbose`` is accepted and ignored: read the errors in the state instead.
                Optax keeps the last three fields under ``info``. The slope uses Re sum(g u)
                for complex params at every probe (Optax's first slope conjugates u instead).
    Reference:  Nocedal & Wright, "Numerical Optimization", 1999, Algorithms 3.5-3.6;
                Hager & Zhang, "Algorithm 851: CG_DESCENT", 2006.
    """
    _checks.check_int("max_linesearch_steps", max_linesearch_steps, minimum=1)
    if max_learning_rate is not None:
        _checks.check_positive("max_learning_rate", max_learning_rate, allow_inf=True)
    _checks.check_non_negative("tol", tol)
    _checks.check_positive("increase_factor", increase_factor)
    _checks.check_positive("slope_rtol", slope_rtol)
    _checks.check_positive("curv_rtol", curv_rtol)
    if approx_dec_rtol is not None:
        _checks.check_non_negative("approx_dec_rtol", approx_dec_rtol)
    _checks.check_non_negative("stepsize_precision", stepsize_precision)
    _checks.check_choice("initial_guess_strategy", initial_guess_strategy, ("one", "keep"))

    def init(params):
        v = _value_dtype(params)
        return ZoomLinesearchState(
            learning_rate=jnp.ones([], v),
            value=jnp.full([], jnp.inf, v),
            grad=tree_zeros_like(params),
            num_linesearch_steps=jnp.zeros([], jnp.int32),
            decrease_error=jnp.full([], jnp.inf, v),
            curvature_error=jnp.full([], jnp.inf, v),
        )

    def update(updates, state, params=None, *, value=None, grad=None, value_fn=None,
               gradient=None, **extra):
        f = _objective("scale_by_zoom_linesearch", params, value, grad, value_fn, extra)
        v = state.learning_rate.dtype
        hp = {k: jnp.asarray(x, v) for k, x in (("tol", tol), ("inc", increase_factor),
              ("c1", slope_rtol), ("c2", curv_rtol), ("eps", stepsize_precision))}
        value_0 = jnp.asarray(value, v)
        grad = jax.tree.map(lambda g, p: g.astype(jnp.result_type(p)), grad, params)
        slope_0 = _slope(grad, updates, v)

        def probe(eta):
            f_eta, g_eta = jax.value_and_grad(f)(_plus(params, eta, updates))
            return jnp.asarray(f_eta, v), g_eta, _slope(g_eta, updates, v)

        def errors(eta, f_eta, slope_eta):
            decrease = f_eta - value_0 - hp["c1"] * eta * slope_0
            if approx_dec_rtol is not None:
                approx = jnp.maximum(
                    slope_eta - (2 * hp["c1"] - 1.0) * slope_0,
                    f_eta - value_0 - jnp.asarray(approx_dec_rtol, v) * jnp.abs(value_0),
                )
                decrease = jnp.minimum(approx, decrease)
            curvature = jnp.abs(slope_eta) - hp["c2"] * jnp.abs(slope_0)
            no_nan = lambda e: jnp.where(jnp.isnan(e), jnp.inf, jnp.maximum(e, 0.0))  # noqa: E731
            return no_nan(decrease), no_nan(curvature)

        def search_bracket(b: _Bracket) -> _Bracket:  # grow eta until a bracket is found
            guess = jnp.ones([], v) if initial_guess_strategy == "one" else state.learning_rate
            eta = jnp.where(b.count == 0, guess, hp["inc"] * b.stepsize)
            at_cap = jnp.asarray(False)
            if max_learning_rate is not None:
                cap = jnp.asarray(max_learning_rate, v)
                at_cap, eta = eta >= cap, jnp.minimum(eta, cap)
            f_eta, g_eta, slope_eta = probe(eta)
            dec, curv = errors(eta, f_eta, slope_eta)
            met = jnp.maximum(dec, curv) <= hp["tol"]
            safe = _pick(dec <= hp["tol"], (eta, f_eta, g_eta), (b.safe_stepsize, b.safe_value, b.safe_grad))
            high_is_new = (dec > 0.0) | ((f_eta >= b.value) & (b.count > 0))
            low_is_new = (slope_eta >= 0.0) & ~high_is_new
            new, previous = (eta, f_eta, slope_eta), (b.stepsize, b.value, b.slope)
            low = _pick(low_is_new, new, previous)
            high = _pick(low_is_new, previous, new)
            found = high_is_new | low_is_new | met
            done = met | (at_cap & ~found)
            return _Bracket(
                increment(b.count), eta, f_eta, g_eta, slope_eta, dec, curv, found, done,
                (b.count + 1 >= max_linesearch_steps) & ~done, *low, *high, low[0], low[1], *safe,
            )

        def zoom(b: _Bracket) -> _Bracket:  # shrink the bracket [low, high]
            width = jnp.abs(b.high - b.low)
            left, right = jnp.minimum(b.high, b.low), jnp.maximum(b.high, b.low)
            cubic = _cubic_minimizer(b.low, b.value_low, b.slope_low, b.high, b.value_high,
                                     b.cubic_ref, b.value_cubic_ref)
            use_cubic = (cubic > left + 0.2 * width) & (cubic < right - 0.2 * width)
            quad = _quadratic_minimizer(b.low, b.value_low, b.slope_low, b.high, b.value_high)
            use_quad = ~use_cubic & (quad > left + 0.1 * width) & (quad < right - 0.1 * width)
            eta = jnp.where(use_cubic, cubic, jnp.where(use_quad, quad, (b.low + b.high) / 2.0))
            f_eta, g_eta, slope_eta = probe(eta)
            dec, curv = errors(eta, f_eta, slope_eta)
            done = jnp.maximum(dec, curv) <= hp["tol"]
            better = (dec <= hp["tol"]) & (f_eta < b.safe_value)
            safe = _pick(better, (eta, f_eta, g_eta), (b.safe_stepsize, b.safe_value, b.safe_grad))
            high_is_new = (dec > 0.0) | (f_eta >= b.value_low)
            high_is_low = (slope_eta * (b.high - b.low) >= 0.0) & ~high_is_new
            new = (eta, f_eta, slope_eta)
            low, high = (b.low, b.value_low, b.slope_low), (b.high, b.value_high, b.slope_high)
            new_high = _pick(high_is_low, low, _pick(high_is_new, new, high))
            new_low = _pick(high_is_new, low, new)
            ref = _pick(high_is_new | high_is_low, high[:2], low[:2])
            gave_up = (b.count + 1 >= max_linesearch_steps) | ((width <= hp["eps"]) & (safe[0] > 0.0))
            return _Bracket(
                increment(b.count), eta, f_eta, g_eta, slope_eta, dec, curv, b.interval_found,
                done, gave_up & ~done, *new_low, *new_high, *ref, *safe,
            )

        def step(b: _Bracket) -> _Bracket:
            b = jax.lax.cond(b.interval_found, zoom, search_bracket, b)
            fall_back = b.failed & ((b.safe_stepsize > 0.0) | jnp.isinf(b.decrease_error))
            eta, f_eta, g_eta = _pick(fall_back, (b.safe_stepsize, b.safe_value, b.safe_grad),
                                      (b.stepsize, b.value, b.grad))
            return b._replace(stepsize=eta, value=f_eta, grad=g_eta)

        zero, inf, no = jnp.zeros([], v), jnp.full([], jnp.inf, v), jnp.asarray(False)
        start = _Bracket(
            jnp.zeros([], jnp.int32), zero, value_0, grad, slope_0, inf, inf, no, no, no,
            zero, value_0, slope_0, zero, value_0, slope_0, zero, value_0, zero, value_0, grad,
        )
        end = jax.lax.while_loop(lambda b: ~(b.done | b.failed), step, start)
        new_state = ZoomLinesearchState(
            end.stepsize, end.value, end.grad, end.count, end.decrease_error, end.curvature_error
        )
        return _times(end.stepsize, updates), new_state

    return GradientTransformation(init, update, name="scale_by_zoom_linesearch", preprocessing=False)


# --- backtracking line search (Armijo) -----------------------------------------------------


@describe(
    learning_rate="the step size the last search accepted (the next search starts from "
    "increase_factor times it)",
    value="f at the accepted step (see value_and_grad_from_state)",
    grad="the gradient of f at the accepted step, like params; None unless store_grad",
    num_linesearch_steps="objective evaluations in the last search (Optax: info.)",
    decrease_error="how far the accepted step misses sufficient decrease; 0 when met",
)
class BacktrackingLinesearchState(NamedTuple):
    learning_rate: jax.Array
    value: jax.Array
    grad: Any
    num_linesearch_steps: jax.Array
    decrease_error: jax.Array


def scale_by_backtracking_linesearch(
    max_backtracking_steps: int,
    slope_rtol: float = 1e-4,
    decrease_factor: float = 0.8,
    increase_factor: float = 1.5,
    max_learning_rate: float = 1.0,
    atol: float = 0.0,
    rtol: float = 0.0,
    store_grad: bool = False,
    verbose: bool = False,
) -> GradientTransformation:
    r"""Scale the direction by the first step size, shrinking, with sufficient decrease.

    Update:     eta_0 = min(increase_factor * eta_prev, max_learning_rate); then
                eta_j = decrease_factor**j * eta_0 until
                  f(w + eta u) <= (1 + rtol) f(w) + eta * slope_rtol * <grad f(w), u> + atol
                or j > max_backtracking_steps. A non-finite f everywhere gives eta = 0.
                Emit eta * u.
    State:      learning_rate, value (at the accepted step), grad (only if ``store_grad``),
                num_linesearch_steps, decrease_error.   Memory: +1x params with store_grad.
    Args:       max_backtracking_steps -- integer >= 0.  slope_rtol -- >= 0 (0: plain
                decrease, f(w + eta u) <= f(w)).  decrease_factor -- in (0, 1).
                increase_factor -- > 0; 1 keeps the last step size as the first guess, ``inf``
                starts every search at max_learning_rate (as Optax documents).
                max_learning_rate -- > 0.  atol, rtol -- >= 0.  store_grad -- keep the
                gradient at the accepted step for the next one (value_and_grad_from_state).
    Extra args: value, grad, value_fn, and keyword arguments for value_fn, as in
                ``scale_by_zoom_linesearch``.
    Note:       Optax's ``scale_by_backtracking_linesearch`` step for step; ``verbose`` is
                accepted and ignored. Optax keeps the last two fields under ``info``.
    Reference:  Armijo, "Minimization of functions having Lipschitz continuous first
                partial derivatives", 1966; Nocedal & Wright, 1999, Algorithm 3.1.
    """
    _checks.check_int("max_backtracking_steps", max_backtracking_steps)
    _checks.check_non_negative("slope_rtol", slope_rtol)
    _checks.check_unit_interval("decrease_factor", decrease_factor)
    _checks.check_positive("decrease_factor", decrease_factor)
    _checks.check_positive("increase_factor", increase_factor, allow_inf=True)
    _checks.check_positive("max_learning_rate", max_learning_rate)
    _checks.check_non_negative("atol", atol)
    _checks.check_non_negative("rtol", rtol)

    def init(params):
        v = _value_dtype(params)
        return BacktrackingLinesearchState(
            learning_rate=jnp.ones([], v),
            value=jnp.full([], jnp.inf, v),
            grad=tree_zeros_like(params) if store_grad else None,
            num_linesearch_steps=jnp.zeros([], jnp.int32),
            decrease_error=jnp.full([], jnp.inf, v),
        )

    def update(updates, state, params=None, *, value=None, grad=None, value_fn=None,
               gradient=None, **extra):
        f = _objective("scale_by_backtracking_linesearch", params, value, grad, value_fn, extra)
        v = state.learning_rate.dtype
        value_0, slope_0 = jnp.asarray(value, v), _slope(grad, updates, v)
        atol_, shrink = jnp.asarray(atol, v), jnp.asarray(decrease_factor, v)

        def body(carry):
            eta, _, g_old, _, j = carry
            eta = jnp.where(j > 0, shrink * eta, eta)
            f_raw, pullback = jax.vjp(f, _plus(params, eta, updates))
            f_eta = jnp.asarray(f_raw, v)
            dec = f_eta - (1.0 + jnp.asarray(rtol, v)) * value_0 - eta * jnp.asarray(slope_rtol, v) * slope_0
            dec = jnp.maximum(jnp.where(jnp.isnan(dec), jnp.inf, dec), 0.0)
            if store_grad:
                last = (dec <= atol_) | (j == max_backtracking_steps)
                g_old = jax.lax.cond(last, lambda: pullback(jnp.ones_like(f_raw))[0], lambda: g_old)
            return eta, f_eta, g_old, dec, j + 1

        grow, top = jnp.asarray(increase_factor, v), jnp.asarray(max_learning_rate, v)
        # inf: start from max_learning_rate every step (also after eta = 0: inf * 0 is NaN)
        eta_0 = jnp.where(jnp.isposinf(grow), top, jnp.minimum(grow * state.learning_rate, top))
        start = (eta_0, value_0, tree_zeros_like(params), jnp.full([], jnp.inf, v), jnp.zeros([], jnp.int32))
        eta, f_eta, g_eta, dec, j = jax.lax.while_loop(
            lambda c: ~(c[3] <= atol_) & (c[4] <= max_backtracking_steps), body, start
        )
        eta = jnp.where(jnp.isinf(dec), jnp.zeros([], v), eta)
        new_state = BacktrackingLinesearchState(eta, f_eta, g_eta if store_grad else None, j, dec)
        return _times(eta, updates), new_state

    return GradientTransformation(init, update, name="scale_by_backtracking_linesearch", preprocessing=False)


# --- reusing what the line search computed ---------------------------------------------------


def value_and_grad_from_state(value_fn: Callable[..., Any]) -> Callable[..., tuple[Any, Any]]:
    """``jax.value_and_grad(value_fn)``, except that it reuses the value and gradient the
    line search stored at the accepted step (they are f and grad f at the current params).

    Call it as ``value_and_grad(params, *args, state=opt_state, **kwargs)``. The state must
    hold exactly one line search that keeps its gradient (zoom, or backtracking with
    ``store_grad=True``); at the first step (value = inf) it computes them. Optax's
    ``value_and_grad_from_state`` works on gradchain states as well.
    """

    def _fresh(params, args, kwargs, kept):
        f, g = jax.value_and_grad(value_fn)(params, *args, **kwargs)
        return jnp.asarray(f, kept.value.dtype), g

    def value_and_grad(params, *args, state, **kwargs):
        kinds = (ZoomLinesearchState, BacktrackingLinesearchState)
        searches = [s for s in jax.tree.leaves(state, is_leaf=lambda s: isinstance(s, kinds))
                    if isinstance(s, kinds)]
        found = [s for s in searches if s.grad is not None]
        if len(searches) > 1 or len(found) != 1:
            error = _AmbiguousState if len(searches) > 1 else _checks.GradchainError
            raise error(
                "value_and_grad_from_state needs a state with exactly one line search that "
                "stores its gradient (zoom, or backtracking with store_grad=True); found "
                f"{len(searches)} line searches, {len(found)} storing it"
            )
        (kept,) = found
        return jax.lax.cond(
            jnp.isfinite(kept.value),
            lambda p, a, kw: (kept.value, kept.grad),
            lambda p, a, kw: _fresh(p, a, kw, kept),
            params, args, kwargs,
        )

    return value_and_grad

ScaleByLBFGSState = LbfgsState  # Optax's name; gradchain's field names are its own
ScaleByBacktrackingLinesearchState = BacktrackingLinesearchState  # Optax's name
ScaleByZoomLinesearchState = ZoomLinesearchState  # Optax's name
