"""Curvature: estimates of the Hessian's diagonal, and the Sophia preconditioner that divides
by one (clipped, so that a wrong estimate costs at most one bounded step)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import (
    Child,
    GradientTransformation,
    _as_transform,
    chain,
    describe,
    updater,
)
from gradchain.transforms.moment_math import accumulator_zeros, compute_dtype, increment
from gradchain.transforms.momentum import bias_correct, scale_by_momentum

__all__ = [
    "HessianDiagonalState",
    "HutchinsonState",
    "SophiaState",
    "hutchinson_estimator_diag_hessian",
    "scale_by_hessian_diagonal",
    "scale_by_sophia",
]


@describe(key="the random key the next step splits (raw uint32 key data)")
class HutchinsonState(NamedTuple):
    key: jax.Array


def hutchinson_estimator_diag_hessian(random_seed: Any = None) -> GradientTransformation:
    r"""Hutchinson's estimate of the Hessian's diagonal of ``obj_fn`` at the params.

    Update:     key_t, k = split(key_{t-1});  r ~ Rademacher (+-1), one key per leaf from
                split(k, leaves);  emit r * (H r), H r by forward-over-reverse autodiff
                (unbiased: E[r * Hr] = diag(H)). The incoming update is not read.
    State:      key -- raw uint32 key data.   Memory: 0x params (one key).
    Args:       random_seed -- a jax.random key (raw or typed); None: PRNGKey(0).
    Extra args: obj_fn -- the objective, a function of the params alone returning a scalar
                (``update(u, s, params, obj_fn=lambda p: loss(p, batch))``).
    Note:       Optax's ``contrib.hutchinson_estimator_diag_hessian``: the same draws for
                the same key. Costs one Hessian-vector product (~2 gradients) per call.
    Reference:  Hutchinson, 1990; Liu et al., "Sophia", 2023.
    """
    dtype = getattr(random_seed, "dtype", None)
    if random_seed is None:
        key = None  # PRNGKey(0), made in init: building it here would start a backend at import
    elif dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(random_seed)
    elif dtype == jnp.uint32 and jnp.shape(random_seed) == (2,):
        key = jnp.asarray(random_seed)
    else:
        raise _checks.GradchainError(
            f"random_seed must be a jax.random key (jax.random.PRNGKey(0)), got {random_seed!r}"
        )

    def init(params):
        start = jax.random.PRNGKey(0) if key is None else key
        return HutchinsonState(key=jnp.array(start, copy=True))

    def update(updates, state, params=None, *, obj_fn=None, **extra):
        if params is None:
            _checks.refuse_missing_params("hutchinson_estimator_diag_hessian")
        if obj_fn is None:
            raise _checks.GradchainError(
                "hutchinson_estimator_diag_hessian differentiates the objective: give "
                "update(updates, state, params, obj_fn=f), f a function of the params alone"
            )
        next_key, key_now = jax.random.split(state.key)
        leaves, treedef = jax.tree.flatten(params)
        keys = jax.random.split(key_now, len(leaves))
        signs = treedef.unflatten(
            [
                jax.random.rademacher(k, jnp.shape(p), jnp.float32).astype(jnp.result_type(p))
                for k, p in zip(keys, leaves)
            ]
        )
        hvp = jax.jvp(jax.grad(obj_fn), (params,), (signs,))[1]
        return jax.tree.map(lambda h, r: h * r, hvp, signs), HutchinsonState(key=next_key)

    return GradientTransformation(init, update, name="hutchinson_estimator_diag_hessian", preprocessing=False)


@describe(
    count="steps taken so far (int32 scalar); the estimate is refreshed when count % "
    "update_interval == 0",
    nu="moving average of the Hessian diagonal estimates, one array per parameter",
    hessian_fn_state="the state of the Hessian diagonal estimator",
)
class HessianDiagonalState(NamedTuple):
    count: jax.Array
    nu: Any
    hessian_fn_state: Any


# Optax's name (contrib.SophiaState: count, mu, nu, hessian_fn_state, one tuple). gradchain's
# scale_by_sophia is a chain: this is its own slot (count, nu, hessian_fn_state); mu is the
# chain's MomentumState before it.
SophiaState = HessianDiagonalState

def scale_by_hessian_diagonal(
    b2: float = 0.99,
    eps: float = 1e-8,
    gamma: float = 0.01,
    update_interval: int = 10,
    hessian_diagonal_fn: Any = None,
    *,
    clip_threshold: float | None = None,
    verbose: bool = False,
    print_win_rate_every_n_steps: int = 0,
) -> GradientTransformation:
    r"""Divide by a moving average of the Hessian's diagonal (Sophia's preconditioner).

    Update:     u_t = clip(u_t / max(gamma * nu_{t-1}, eps), -clip_threshold, clip_threshold)
                (+-inf is kept, not clipped: an infinite gradient shows in the update)
                every ``update_interval`` steps (t - 1 = 0, k, 2k, ...), after the division:
                nu_t = b2 * nu_{t-1} + (1 - b2) * h_t,  h_t = hessian_diagonal_fn(g_t, params,
                **extra)  (g: the gradient, see ``chain``; ``extra``: e.g. ``obj_fn``)
    State:      count -- int32 scalar.  nu -- like the params, starts at 0.
                hessian_fn_state -- the estimator's.   Memory: +1x params.
    Args:       b2 -- in [0, 1); the effective decay is 1 - (1 - b2) / update_interval.
                eps -- >= 0.  gamma -- >= 0.  update_interval -- integer >= 1.
                hessian_diagonal_fn -- a transform whose output is the diagonal estimate
                (default: ``hutchinson_estimator_diag_hessian()``).
                clip_threshold -- >= 0, or None: no clipping.
                verbose, print_win_rate_every_n_steps -- with ``verbose`` and n > 0, every
                n-th step prints the fraction of coordinates below clip_threshold (the
                authors' "win rate", healthy between 0.1 and 0.5).
    Note:       On purpose unlike Optax, whose clip turns an infinite ratio into
                +-clip_threshold: one infinite gradient entry would then leave mu infinite
                and drive that parameter at full speed for good, with finite updates.
    Reference:  Liu et al., "Sophia: A Scalable Stochastic Second-order Optimizer for
                Language Model Pre-training", ICLR 2024.
    """
    _checks.check_unit_interval("b2", b2)
    _checks.check_non_negative("eps", eps)
    _checks.check_non_negative("gamma", gamma)
    if not isinstance(update_interval, jax.core.Tracer):
        _checks.check_int("update_interval", update_interval, minimum=1)
    if not isinstance(print_win_rate_every_n_steps, jax.core.Tracer):
        _checks.check_int("print_win_rate_every_n_steps", print_win_rate_every_n_steps)
    if hessian_diagonal_fn is None:
        hessian_diagonal_fn = hutchinson_estimator_diag_hessian()
    estimator = _as_transform(hessian_diagonal_fn)
    estimate = updater(estimator)
    if clip_threshold is not None:
        _checks.check_non_negative("clip_threshold", clip_threshold, allow_inf=True)
    report = verbose and clip_threshold is not None

    def init(params):
        return HessianDiagonalState(
            count=jnp.zeros([], jnp.int32),
            nu=accumulator_zeros(params),
            hessian_fn_state=estimator.init(params),
        )

    def update(updates, state, params=None, *, gradient=None, **extra):
        if params is None:
            _checks.refuse_missing_params("scale_by_hessian_diagonal")
        grads = updates if gradient is None else gradient

        def divide_and_clip(u, nu):
            # in >= float32, cast to u's dtype last: a float16 ratio m / eps overflows to inf
            c = compute_dtype(u.dtype, nu.dtype)
            denom = jnp.maximum(jnp.asarray(gamma, c) * nu.astype(c), jnp.asarray(eps, c))
            ratio = u.astype(c) / denom
            if clip_threshold is not None:  # an infinite ratio stays infinite: a fault shows
                limit = jnp.asarray(clip_threshold, c)
                ratio = jnp.where(jnp.isinf(ratio), ratio, jnp.clip(ratio, -limit, limit))
            return ratio.astype(u.dtype)

        out = jax.tree.map(divide_and_clip, updates, state.nu)
        count = increment(state.count)
        if report:
            inside = sum(jnp.sum(jnp.abs(u) < clip_threshold) for u in jax.tree.leaves(out))
            rate = inside / max(1, sum(jnp.size(u) for u in jax.tree.leaves(out)))
            every = jnp.asarray(print_win_rate_every_n_steps)
            jax.lax.cond(
                (every > 0) & (count % jnp.maximum(every, 1) == 0),
                lambda: jax.debug.print("Sophia optimizer win rate: {}", rate),
                lambda: None,
            )

        def refresh(hessian_fn_state, nu):
            h, hessian_fn_state = estimate(grads, hessian_fn_state, params, None, extra)

            def average(h_leaf, nu_leaf):
                c = compute_dtype(nu_leaf.dtype, jnp.result_type(h_leaf))
                b = jnp.asarray(b2, c)
                new = (1 - b) * jnp.asarray(h_leaf).astype(c) + b * nu_leaf.astype(c)
                return new.astype(nu_leaf.dtype)

            return hessian_fn_state, jax.tree.map(average, h, nu)

        hessian_fn_state, nu = jax.lax.cond(
            state.count % update_interval == 0,
            refresh,
            lambda s, n: (s, n),
            state.hessian_fn_state,
            state.nu,
        )
        return out, HessianDiagonalState(count=count, nu=nu, hessian_fn_state=hessian_fn_state)

    return GradientTransformation(
        init,
        update,
        name="scale_by_hessian_diagonal",
        preprocessing=False,
        children=(Child(None, estimator, ("hessian_fn_state",)),),
    )


def scale_by_sophia(
    b1: float = 0.965,
    b2: float = 0.99,
    eps: float = 1e-8,
    gamma: float = 0.01,
    clip_threshold: float | None = 1.0,
    update_interval: int = 10,
    hessian_diagonal_fn: Any = None,
    mu_dtype: Any = None,
    verbose: bool = False,
    print_win_rate_every_n_steps: int = 0,
) -> GradientTransformation:
    r"""Sophia's direction: bias-corrected momentum over a clipped Hessian diagonal.

    Update:     mu_t = b1 * mu_{t-1} + (1 - b1) * g_t ;  m_t = mu_t / (1 - b1**t)
                u_t = clip(m_t / max(gamma * nu_{t-1}, eps), -clip_threshold, clip_threshold)
                nu: see ``scale_by_hessian_diagonal`` (refreshed every update_interval steps)
    State:      chain(scale_by_momentum: mu; bias_correct: count; scale_by_hessian_diagonal:
                count, nu, hessian_fn_state).   Memory: +2x params.
    Args:       as Optax's ``contrib.scale_by_sophia`` (same names and defaults;
                ``hessian_diagonal_fn`` None is its default, Hutchinson's estimator).
                clip_threshold -- None: no clipping.  Extra args go to the estimator
                (``obj_fn`` for Hutchinson's).
    Note:       Written as a chain of three transforms; Optax keeps one state with the same
                slots (count, mu, nu, hessian_fn_state). An infinite ratio is not clipped
                (see ``scale_by_hessian_diagonal``); finite ones are, as Optax's.
    Reference:  Liu et al., "Sophia", ICLR 2024.
    """
    _checks.check_unit_interval("b1", b1)  # checked here to name b1, not the momentum's decay
    return chain(
        scale_by_momentum(b1, ema=True, mu_dtype=mu_dtype),  # mu (+1x params)
        bias_correct(b1),
        scale_by_hessian_diagonal(  # nu (+1x params)
            b2,
            eps,
            gamma,
            update_interval,
            hessian_diagonal_fn,
            clip_threshold=clip_threshold,
            verbose=verbose,
            print_win_rate_every_n_steps=print_win_rate_every_n_steps,
        ),
    )
