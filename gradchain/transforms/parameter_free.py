"""Parameter-free steps: the step size is estimated from the run itself, not chosen.

D-Adaptation and Prodigy estimate D, the distance from the start to a solution, from an inner
product of the gradients with the way travelled; Mechanic learns a scale for another
optimizer's steps by betting on them; COCOB bets on each coordinate. Each keeps its estimate
in its state, so its learning rate is a multiplier on the estimate (1.0 by default), and the
D-Adaptation transforms take it themselves: they replace ``scale_by_learning_rate`` at the end
of a chain, and emit the step with its sign.

Scalars (D, the running numerator, Mechanic's betting state) are kept in at least float32,
whatever the params' dtype. A sum over every parameter (an inner product, an l1 norm) is
refused for a leaf sharded inside ``shard_map``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import (
    GradientTransformation,
    LearningRate,
    describe,
    tree_map_split,
    tree_zeros_like,
)
from gradchain.transforms.mesh_axes import refuse_if_sharded
from gradchain.transforms.moment_math import (
    accumulator_zeros,
    compute_dtype,
    increment,
    scalar_dtype,
)

__all__ = [
    "COCOBState",
    "DAdaptAdamWState",
    "CocobState",
    "DadaptAdamState",
    "MechanicState",
    "ProdigyState",
    "scale_by_cocob",
    "scale_by_dadapt_adam",
    "scale_by_mechanic",
    "scale_by_prodigy",
]


# --- sums over every parameter --------------------------------------------------------------


def _total(per_leaf: list[jax.Array], dtype: Any) -> jax.Array:
    """The sum of per-leaf scalars, in leaf order (0 for an empty tree)."""
    total = jnp.zeros([], dtype)
    for x in per_leaf:
        total = total + x.astype(dtype)
    return total


def _inner(a: Any, b: Any, dtype: Any, who: str) -> jax.Array:
    """<a, b> over every leaf, each leaf's product summed in ``dtype`` at full precision."""

    def leaf(x, y):
        refuse_if_sharded(x, who)
        c = compute_dtype(x.dtype, y.dtype, dtype)
        mesh = jax.typeof(x).sharding.mesh  # an explicit mesh: say where the scalar lives
        out = jax.sharding.NamedSharding(mesh, jax.P()) if mesh.are_all_axes_explicit else None
        return jnp.tensordot(
            x.astype(c), y.astype(c), x.ndim, precision=jax.lax.Precision.HIGHEST, out_sharding=out
        )

    return _total(jax.tree.leaves(jax.tree.map(leaf, a, b)), dtype)


def _l1(tree: Any, dtype: Any, who: str) -> jax.Array:
    def leaf(x):
        refuse_if_sharded(x, who)
        return jnp.sum(jnp.abs(x.astype(compute_dtype(x.dtype, dtype))))

    return _total([leaf(x) for x in jax.tree.leaves(tree)], dtype)


def _l2(tree: Any, dtype: Any, who: str) -> jax.Array:
    def leaf(x):
        refuse_if_sharded(x, who)
        x = x.astype(compute_dtype(x.dtype, dtype))
        return jnp.sum(x * x)

    return jnp.sqrt(_total([leaf(x) for x in jax.tree.leaves(tree)], dtype))


def _ratio_or_zero(num: jax.Array, den: jax.Array) -> jax.Array:
    """num / den, and 0 where den == 0 exactly (a NaN or inf denominator still shows)."""
    return jnp.where(den == 0, jnp.zeros_like(num), num / jnp.where(den == 0, 1, den))


def _check_learning_rate_and_betas(learning_rate, b1, b2) -> None:
    _checks.check_learning_rate(learning_rate)
    _checks.check_unit_interval("b1", b1)
    _checks.check_unit_interval("b2", b2)


def _needs_params(who: str, params: Any, updates: Any) -> None:
    if params is None:
        raise _checks.GradchainError(f"{who} needs the params: call update(updates, state, params)")
    _checks.check_same_structure("updates", updates, "params", params)


def _copy(params: Any) -> Any:
    """A distinct buffer per leaf: the state and the params may be donated together."""
    return jax.tree.map(lambda p: jnp.array(p, copy=True), params)


# --- D-Adaptation (Adam form) ---------------------------------------------------------------


@describe(
    mu="first moment of d * lr * g (D-Adaptation folds the step size into it), like params",
    nu="second moment of g: moving average of g**2, like params",
    s="moving average (decay sqrt(b2)) of d * lr * g: the denominator's l1 norm, like params",
    d="the distance estimate D (scalar), never decreasing; starts at estim_lr0",
    numerator="running weighted sum of d * lr * <g, s / (sqrt(nu) + eps)> (scalar)",
    count="steps taken so far (int32 scalar): bias correction, and the schedule's argument",
)
class DadaptAdamState(NamedTuple):
    mu: Any
    nu: Any
    s: Any
    d: jax.Array
    numerator: jax.Array
    count: jax.Array


def scale_by_dadapt_adam(
    learning_rate: LearningRate = 1.0,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    estim_lr0: float = 1e-6,
    weight_decay: float = 0.0,
) -> GradientTransformation:
    r"""AdamW whose step size d * lr is estimated by D-Adaptation; emits the signed step.

    Update:     t = count + 1;  dlr = d * lr * sqrt(1 - b2**t) / (1 - b1**t);  r = sqrt(b2)
                A = r * A + (1 - r) * dlr * <g, s / (sqrt(nu) + eps)>      (old s and nu)
                mu = b1 * mu + (1 - b1) * dlr * g ;  nu = b2 * nu + (1 - b2) * g**2
                s = r * s + (1 - r) * dlr * g
                d = max(d, A / ((1 - r) * ||s||_1))  (kept while ||s||_1 == 0)
                emit -weight_decay * dlr * p - mu / (sqrt(nu) + eps)
    State:      mu, nu, s -- like params; d, numerator -- scalars (>= float32); count --
                int32.   Memory: +3x params.
    Args:       learning_rate -- >= 0, or a schedule of the step count: multiplies the
                estimate (1.0 lets D set the step).  b1, b2 -- in [0, 1).  eps -- >= 0.
                estim_lr0 -- the first estimate of D, > 0.  weight_decay -- >= 0, decoupled
                and scaled by dlr, as AdamW's by its learning rate.
    Note:       Needs the params. The estimate uses the gradient as received: put it first
                in a chain (or after pre-processing only). Where ||s||_1 == 0 (every gradient
                so far zero, or lr == 0 so far) D is kept, as the authors' code does, where
                Optax's ``dadapt_adamw`` divides 0 / 0 and D becomes NaN for good.
    Reference:  Defazio & Mishchenko, "Learning-Rate-Free Learning by D-Adaptation",
                ICML 2023 (Adam variant: the authors' ``dadaptation.DAdaptAdam``).
    """
    _check_learning_rate_and_betas(learning_rate, b1, b2)
    _checks.check_non_negative("eps", eps)
    _checks.check_positive("estim_lr0", estim_lr0)
    _checks.check_non_negative("weight_decay", weight_decay)
    who = "scale_by_dadapt_adam (sums over every parameter)"

    def init(params):
        s = scalar_dtype(params)
        return DadaptAdamState(
            mu=accumulator_zeros(params),
            nu=accumulator_zeros(params),
            s=accumulator_zeros(params),
            d=jnp.asarray(estim_lr0, s),
            numerator=jnp.zeros([], s),
            count=jnp.zeros([], jnp.int32),
        )

    def update(updates, state, params=None, *, gradient=None, **extra):
        _needs_params("scale_by_dadapt_adam", params, updates)
        h = state.d.dtype
        count = increment(state.count)
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        # constants from the values as given (Python floats stay exact until this cast)
        b1_, b2_, eps_, r = (jnp.asarray(x, h) for x in (b1, b2, eps, b2**0.5))
        one_b1, one_b2, one_r = (jnp.asarray(1 - x, h) for x in (b1, b2, b2**0.5))
        t = count.astype(h)
        dlr = state.d * jnp.asarray(lr, h) * (1 - b2_**t) ** 0.5 / (1 - b1_**t)

        def weighted(s, nu):
            c = compute_dtype(s.dtype, nu.dtype, h)
            return s.astype(c) / (jnp.sqrt(nu.astype(c)) + eps_.astype(c))

        new_sum = _inner(updates, jax.tree.map(weighted, state.s, state.nu), h, who)

        def moments(g, mu, nu, s):
            c = compute_dtype(g.dtype, mu.dtype, h)
            g, k = g.astype(c), dlr.astype(c)
            mu_new = b1_.astype(c) * mu.astype(c) + one_b1.astype(c) * k * g
            nu_new = b2_.astype(c) * nu.astype(c) + one_b2.astype(c) * g * g
            s_new = r.astype(c) * s.astype(c) + one_r.astype(c) * k * g
            return mu_new.astype(mu.dtype), nu_new.astype(nu.dtype), s_new.astype(s.dtype)

        mu, nu, s = tree_map_split(moments, 3, updates, state.mu, state.nu, state.s)
        numerator = r * state.numerator + one_r * dlr * new_sum
        d = jnp.maximum(state.d, _ratio_or_zero(numerator, one_r * _l1(s, h, who)))

        def step(u, p, mu, nu):
            c = compute_dtype(mu.dtype, h)
            p = jnp.asarray(p).astype(c)
            decay = jnp.asarray(weight_decay, c) * dlr.astype(c) * p
            out = -decay - mu.astype(c) / (jnp.sqrt(nu.astype(c)) + eps_.astype(c))
            return out.astype(u.dtype)  # mu may be wider (float16 params: float32 moments)

        out = jax.tree.map(step, updates, params, mu, nu)
        return out, DadaptAdamState(mu, nu, s, d.astype(h), numerator.astype(h), count)

    return GradientTransformation(init, update, name="scale_by_dadapt_adam", preprocessing=False)


# --- Prodigy --------------------------------------------------------------------------------


@describe(
    mu="first moment of d * g, like params",
    nu="second moment of d * g: moving average of d**2 * g**2, like params",
    s="weighted sum (decay b3) of (dlr / d0) * d * g: the denominator's l1 norm, like params",
    params0="the params at init: the start the distance D is measured from",
    d="the distance estimate D (scalar), never decreasing; starts at estim_lr0",
    numerator="weighted sum (decay b3) of (d / d0) * dlr * <g, params0 - p> (scalar)",
    count="steps taken so far (int32 scalar): bias correction, and the schedule's argument",
)
class ProdigyState(NamedTuple):
    mu: Any
    nu: Any
    s: Any
    params0: Any
    d: jax.Array
    numerator: jax.Array
    count: jax.Array


def scale_by_prodigy(
    learning_rate: LearningRate = 1.0,
    b1: float = 0.9,
    b2: float = 0.999,
    b3: float | None = None,
    eps: float = 1e-8,
    estim_lr0: float = 1e-6,
    estim_lr_coef: float = 1.0,
    weight_decay: float = 0.0,
    *,
    safeguard_warmup: bool = False,
) -> GradientTransformation:
    r"""Adam on d * g, with D estimated by Prodigy (D-Adaptation weighted towards recent steps).

    Update:     t = count + 1;  dlr = d * lr * sqrt(1 - b2**t) / (1 - b1**t);  d0 = estim_lr0
                mu = b1 * mu + (1 - b1) * d * g ;  nu = b2 * nu + (1 - b2) * d**2 * g**2
                s = b3 * s + (w / d0) * d * g,  w = dlr (``safeguard_warmup``: w = d)
                A = b3 * A + (d / d0) * dlr * <g, params0 - p>
                d' = max(d, estim_lr_coef * A / ||s||_1)  (kept while ||s||_1 == 0)
                emit -weight_decay * dlr * p - dlr * mu / (sqrt(nu) + d' * eps)
    State:      mu, nu, s, params0 -- like params; d, numerator -- scalars (>= float32);
                count -- int32.   Memory: +4x params.
    Args:       learning_rate -- >= 0, or a schedule of the step count: multiplies the
                estimate (1.0 lets D set the step).  b1, b2 -- in [0, 1).  b3 -- in [0, 1),
                None for sqrt(b2).  eps -- >= 0.  estim_lr0 -- the first D, > 0.
                estim_lr_coef -- >= 0, scales every estimate.  weight_decay -- >= 0,
                decoupled and scaled by dlr.  safeguard_warmup -- leave lr out of s (for
                warmup schedules).
    Note:       Needs the params; the estimate uses the gradient as received. Where
                ||s||_1 == 0 (every gradient so far zero, or lr == 0 so far: a warmup from 0)
                D is kept, as in the authors' code, where Optax's ``prodigy`` divides 0 / 0
                and every later update is NaN. (At a step with lr == 0 the authors' code also
                skips the moments and the count; this transform, as Optax's, updates them:
                0.023 apart in the params after 120 steps on a quadratic with a 10-step
                warmup from 0, float64.)
                mu, nu and s are kept in the params' dtype, as Optax's, except for float16
                params: they hold d * g and d**2 * g**2 (d starts at 1e-6), which underflow
                in float16, so float16 params keep them in float32 (``moment_math``).
    Reference:  Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free
                Learner", ICML 2024 (the authors' ``prodigyopt.Prodigy``).
    """
    _check_learning_rate_and_betas(learning_rate, b1, b2)
    if b3 is not None:
        _checks.check_unit_interval("b3", b3)
    _checks.check_non_negative("eps", eps)
    _checks.check_positive("estim_lr0", estim_lr0)
    _checks.check_non_negative("estim_lr_coef", estim_lr_coef)
    _checks.check_non_negative("weight_decay", weight_decay)
    who = "scale_by_prodigy (sums over every parameter)"

    def init(params):
        s = scalar_dtype(params)
        return ProdigyState(
            mu=accumulator_zeros(params),
            nu=accumulator_zeros(params),
            s=accumulator_zeros(params),
            params0=_copy(params),
            d=jnp.asarray(estim_lr0, s),
            numerator=jnp.zeros([], s),
            count=jnp.zeros([], jnp.int32),
        )

    def update(updates, state, params=None, *, gradient=None, **extra):
        _needs_params("scale_by_prodigy", params, updates)
        h, d = state.d.dtype, state.d
        count = increment(state.count)
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        # constants from the values as given (Python floats stay exact until this cast)
        b1_, b2_, eps_, d0 = (jnp.asarray(x, h) for x in (b1, b2, eps, estim_lr0))
        one_b1, one_b2 = jnp.asarray(1 - b1, h), jnp.asarray(1 - b2, h)
        b3_ = jnp.asarray(b2**0.5 if b3 is None else b3, h)
        t = count.astype(h)
        dlr = d * jnp.asarray(lr, h) * (1 - b2_**t) ** 0.5 / (1 - b1_**t)
        travelled = jax.tree.map(
            lambda p0, p: p0 - jnp.asarray(p).astype(p0.dtype), state.params0, params
        )
        new_sum = _inner(updates, travelled, h, who)
        s_weight = d if safeguard_warmup else dlr

        def moments(g, mu, nu, s):
            c = compute_dtype(g.dtype, mu.dtype, h)
            dg = d.astype(c) * g.astype(c)
            mu_new = b1_.astype(c) * mu.astype(c) + one_b1.astype(c) * dg
            nu_new = b2_.astype(c) * nu.astype(c) + one_b2.astype(c) * dg * dg
            s_new = b3_.astype(c) * s.astype(c) + s_weight.astype(c) * dg / d0.astype(c)
            return mu_new.astype(mu.dtype), nu_new.astype(nu.dtype), s_new.astype(s.dtype)

        mu, nu, s = tree_map_split(moments, 3, updates, state.mu, state.nu, state.s)
        numerator = b3_ * state.numerator + (d / d0) * dlr * new_sum
        estimate = jnp.asarray(estim_lr_coef, h) * numerator
        d_new = jnp.maximum(d, _ratio_or_zero(estimate, _l1(s, h, who)))

        def step(u, p, mu, nu):
            c = compute_dtype(mu.dtype, h)
            k = dlr.astype(c)
            decay = jnp.asarray(weight_decay, c) * k * jnp.asarray(p).astype(c)
            denom = jnp.sqrt(nu.astype(c)) + d_new.astype(c) * eps_.astype(c)
            return (-decay - k * mu.astype(c) / denom).astype(u.dtype)  # mu may be wider

        out = jax.tree.map(step, updates, params, mu, nu)
        new_state = ProdigyState(
            mu, nu, s, state.params0, d_new.astype(h), numerator.astype(h), count
        )
        return out, new_state

    return GradientTransformation(init, update, name="scale_by_prodigy", preprocessing=False)


# --- Mechanic -------------------------------------------------------------------------------


@describe(
    x0="the params at the first update: the point the learned scale multiplies steps from",
    r="reward of each bettor (num_betas,), one per beta 1 - 0.1**i",
    m="running max of |h| per bettor (num_betas,): the clip and the wealth's floor",
    v="running sum of h**2 per bettor (num_betas,), discounted by beta**2",
    s="each bettor's scale (num_betas,); the step's scale is their sum",
    count="steps taken so far (int32 scalar): x0 is reset to the params at the first",
)
class MechanicState(NamedTuple):
    x0: Any
    r: jax.Array
    m: jax.Array
    v: jax.Array
    s: jax.Array
    count: jax.Array


def scale_by_mechanic(
    weight_decay: float = 1e-2, eps: float = 1e-8, s_init: float = 1e-6, num_betas: int = 6
) -> GradientTransformation:
    r"""Learn the scale of the steps it receives (another optimizer's) by betting on them.

    Update:     (u: the incoming step, g: the gradient, x: the params, x0: the params at
                the first step, S = sum(s))
                g' = g + weight_decay * S * ||g|| / (||x|| + eps) * x
                D = (x0 - x) / (S + eps) ;  h = <g', D>   (one scalar over every parameter)
                beta_i = 1 - 0.1**i, i = 1..num_betas;  each bettor i:
                m = max(beta * m, |h| + eps) ;  v = beta**2 * v + h**2
                r = beta * r + clip(h, -m_old, m_old) * s
                s = (s_init / num_betas * m + max(r, 0)) / (sqrt(v) + eps)
                emit x0 - sum(s) * (D + u) - x      (the params move to x0 + sum(s) * steps)
    State:      x0 -- like params; r, m, v, s -- (num_betas,) in >= float32; count -- int32.
                Memory: +1x params.
    Args:       weight_decay -- >= 0, Mechanic's own (not the inner optimizer's).  eps --
                >= 0.  s_init -- > 0, the first scale.  num_betas -- an integer >= 1.
    Note:       Put it after the optimizer whose steps it scales (``mechanize`` does): it
                reads the gradient from the ``gradient`` keyword (``chain``'s), else the
                params' gradient must be passed so. Needs the params.
    Reference:  Cutkosky, Defazio & Mehta, "Mechanic: A Learning Rate Tuner", NeurIPS 2023.
    """
    _checks.check_non_negative("weight_decay", weight_decay)
    _checks.check_non_negative("eps", eps)
    _checks.check_positive("s_init", s_init)
    if not isinstance(num_betas, jax.core.Tracer):
        _checks.check_int("num_betas", num_betas, minimum=1)
    who = "scale_by_mechanic (sums over every parameter)"

    def init(params):
        s = scalar_dtype(params)
        zeros = jnp.zeros([num_betas], s)
        return MechanicState(
            x0=_copy(params),
            r=zeros,
            m=jnp.zeros([num_betas], s),
            v=jnp.zeros([num_betas], s),
            s=jnp.full([num_betas], s_init, s),
            count=jnp.zeros([], jnp.int32),
        )

    def update(updates, state, params=None, *, gradient=None, **extra):
        _needs_params("scale_by_mechanic", params, updates)
        grads = updates if gradient is None else gradient
        h_ = state.s.dtype
        first = state.count == 0
        x0 = jax.tree.map(
            lambda p, x: jnp.where(first, jnp.asarray(p).astype(x.dtype), x), params, state.x0
        )
        wd, eps_, floor = (jnp.asarray(x, h_) for x in (weight_decay, eps, s_init / num_betas))
        total = jnp.sum(state.s)
        pull = wd * total * _l2(grads, h_, who) / (_l2(params, h_, who) + eps_)

        def decayed(g, p):
            c = compute_dtype(g.dtype, h_)
            return g.astype(c) + pull.astype(c) * jnp.asarray(p).astype(c)

        def away(p, x0):
            c = compute_dtype(x0.dtype, h_)
            return (x0.astype(c) - jnp.asarray(p).astype(c)) / (total + eps_).astype(c)

        delta_prev = jax.tree.map(away, params, x0)
        h = _inner(jax.tree.map(decayed, grads, params), delta_prev, h_, who)
        betas = jnp.asarray([1 - 0.1**i for i in range(1, num_betas + 1)], h_)
        clipped = jnp.clip(h, -state.m, state.m)
        m = jnp.maximum(betas * state.m, jnp.abs(h) + eps_)
        v = betas**2 * state.v + h**2
        r = betas * state.r + clipped * state.s
        s = (floor * m + jnp.maximum(r, 0)) / (jnp.sqrt(v) + eps_)
        scale_now = jnp.sum(s)

        def step(u, p, x0, dp):
            c = compute_dtype(u.dtype, x0.dtype, h_)
            new = x0.astype(c) - scale_now.astype(c) * (dp.astype(c) - u.astype(c))
            return (new - jnp.asarray(p).astype(c)).astype(u.dtype)

        out = jax.tree.map(step, updates, params, x0, delta_prev)
        return out, MechanicState(x0, r, m, v, s, increment(state.count))

    return GradientTransformation(init, update, name="scale_by_mechanic", preprocessing=False)


# --- COCOB ----------------------------------------------------------------------------------


@describe(
    params0="the params at init: each coordinate's bets are made from its start",
    neg_sum="running sum of -g, like params",
    max_abs="running max of |g| (starts at eps), like params",
    abs_sum="running sum of |g|, like params",
    reward="the wealth won so far, max(reward - g * (p - p0), 0), like params",
)
class CocobState(NamedTuple):
    params0: Any
    neg_sum: Any
    max_abs: Any
    abs_sum: Any
    reward: Any


def scale_by_cocob(alpha: float = 100.0, eps: float = 1e-8) -> GradientTransformation:
    r"""COCOB-Backprop: each coordinate bets a fraction of its wealth on the gradient's sign.

    Update:     (per coordinate; p: the params, p0: the params at init)
                L = max(L, |g|) ;  G = G + |g| ;  R = max(R - g * (p - p0), 0) ;  C = C - g
                emit p0 + C / (L * max(G + L, alpha * L)) * (L + R) - p
    State:      params0, neg_sum (C), max_abs (L, starts at eps), abs_sum (G), reward (R) --
                like params.   Memory: +5x params.
    Args:       alpha -- >= 0, caps the first bets (100 in the paper).  eps -- > 0, the start
                of L (a floor under the division).
    Note:       Emits the whole step, so no learning rate follows it; ``cocob`` scales the
                gradient by its learning_rate before it (as Optax's). L is floored at eps at
                every step, in >= float32: the same as Optax's in float32 and float64 (L never
                falls), but where Optax's float16 L starts at 0 (1e-8 underflows) and its
                first step is 0 / 0 = NaN, this one steps.
    Reference:  Orabona & Tommasi, "Training Deep Networks without Learning Rates Through Coin
                Betting", NeurIPS 2017, Algorithm 2.
    """
    _checks.check_non_negative("alpha", alpha)
    _checks.check_positive("eps", eps)

    def init(params):
        def floor(p):
            return jnp.full_like(p, eps)

        return CocobState(
            params0=_copy(params),
            neg_sum=tree_zeros_like(params),
            max_abs=jax.tree.map(floor, params),
            abs_sum=tree_zeros_like(params),
            reward=tree_zeros_like(params),
        )

    def update(updates, state, params=None, **extra):
        _needs_params("scale_by_cocob", params, updates)

        def step(g, p, p0, neg, big, total, reward):
            c = compute_dtype(g.dtype, p0.dtype)
            gc, pc, p0c = g.astype(c), jnp.asarray(p).astype(c), p0.astype(c)
            # the floor eps again: stored in float16, eps = 1e-8 underflows to 0 (then 0 / 0)
            big_new = jnp.maximum(jnp.maximum(big.astype(c), jnp.asarray(eps, c)), jnp.abs(gc))
            total_new = total.astype(c) + jnp.abs(gc)
            reward_new = jnp.maximum(reward.astype(c) - gc * (pc - p0c), 0)
            neg_new = neg.astype(c) - gc
            bet = neg_new / (
                big_new * jnp.maximum(total_new + big_new, jnp.asarray(alpha, c) * big_new)
            )
            out = -pc + (p0c + bet * (big_new + reward_new))
            return (
                out.astype(g.dtype),
                neg_new.astype(neg.dtype),
                big_new.astype(big.dtype),
                total_new.astype(total.dtype),
                reward_new.astype(reward.dtype),
            )

        out, *kept = tree_map_split(step, 5, updates, params, *state)
        return out, CocobState(state.params0, *kept)

    return GradientTransformation(init, update, name="scale_by_cocob", preprocessing=False)

COCOBState = CocobState  # optax.contrib's name; gradchain's own field names
DAdaptAdamWState = DadaptAdamState  # optax.contrib's name (its state of dadapt_adamw)
