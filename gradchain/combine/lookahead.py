"""Lookahead: k fast steps forward, one step back toward slow weights (see
``gradchain.combine`` for the wrapper conventions)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import Child, GradientTransformation, _as_transform, describe, updater
from gradchain.combine.wrapping import cast_like
from gradchain.transforms.moment_math import compute_dtype

__all__ = [
    "LookaheadParams",
    "LookaheadState",
    "lookahead",
]


class LookaheadParams(NamedTuple):
    """The two sets of weights lookahead moves: take gradients at ``fast``, evaluate (and keep
    for inference) ``slow``. Optax's ``LookaheadParams``; a state or params of either library
    is accepted by the other."""

    fast: Any
    slow: Any

    @classmethod
    def init_synced(cls, params: Any) -> LookaheadParams:
        """Fast and slow weights both equal to ``params``."""
        return cls(fast=params, slow=params)


@describe(
    fast_state="the fast optimizer's state",
    steps_since_sync="fast steps since the last synchronization (int32 scalar, 0 to "
    "sync_period - 1)",
)
class LookaheadState(NamedTuple):
    fast_state: Any
    steps_since_sync: jax.Array


def lookahead(
    fast_optimizer: Any,
    sync_period: int,
    slow_step_size: float,
    reset_state: bool = False,
) -> GradientTransformation:
    r"""Lookahead: run ``fast_optimizer`` on the fast weights; every ``sync_period`` steps,
    move the slow weights toward them and restart the fast weights from there.

    Update:     u = fast_optimizer(g, params=fast);  d = fast + u - slow
                step k < sync_period - 1:  fast += u
                step k = sync_period - 1:  slow += a * d ;  fast := the new slow, i.e.
                                           fast += u - (1 - a) * d      (a: slow_step_size)
                the update is a ``LookaheadParams`` of both; ``reset_state``: the fast
                optimizer restarts from init at each synchronization.
    State:      fast_state -- the fast optimizer's.  steps_since_sync -- int32 scalar.
                Memory: the fast optimizer's (the slow weights live in the params, 1x).
    Args:       fast_optimizer -- the inner optimizer.  sync_period -- integer >= 1 (may
                be a traced integer).  slow_step_size -- a, in [0, 1] (may be traced).
                reset_state -- restart the fast optimizer after each synchronization.
    Note:       Optax's ``lookahead``, same arguments, state fields and ``LookaheadParams``;
                equal to it over 120 steps (tests/test_lookahead.py). ``init`` takes the
                ``LookaheadParams`` (or the fast params alone, as Optax allows); ``update``
                needs the ``LookaheadParams`` and the gradient at ``fast``. Apply the update
                unchanged: anything in between breaks the synchronization. The reset is a
                ``jnp.where``, not Optax's ``(1 - s) * x + s * x0``, so a non-finite value
                in the old state cannot leak into the restarted one.
    Reference:  Zhang et al., "Lookahead Optimizer: k steps forward, 1 step back",
                NeurIPS 2019.
    """
    inner = _as_transform(fast_optimizer)
    call = updater(inner)
    if not isinstance(sync_period, jax.core.Tracer):
        _checks.check_int("sync_period", sync_period, minimum=1)
    _checks.check_closed_unit_interval("slow_step_size", slow_step_size)
    if not isinstance(reset_state, bool):
        raise _checks.GradchainError(f"reset_state must be a bool, got {reset_state!r}")

    def init(params):
        fast = params.fast if isinstance(params, LookaheadParams) else params
        return LookaheadState(
            fast_state=inner.init(fast), steps_since_sync=jnp.zeros([], jnp.int32)
        )

    def update(updates, state, params=None, *, gradient=None, **extra):
        if not isinstance(state, LookaheadState):
            raise _checks.GradchainError(
                "this state does not belong to this optimizer: lookahead expects a "
                f"LookaheadState, got {type(state).__name__}"
            )
        if not hasattr(params, "fast") or not hasattr(params, "slow"):
            raise _checks.GradchainError(
                "lookahead needs both weights: call update(grads_at_fast, state, params) with "
                "params = gradchain.LookaheadParams(fast=..., slow=...) (LookaheadParams."
                "init_synced(params) to start)"
            )
        _checks.check_same_structure("updates", updates, "params.fast", params.fast)
        _checks.check_same_structure("params.slow", params.slow, "params.fast", params.fast)
        u, fast_state = call(updates, state.fast_state, params.fast, None, extra)
        u = cast_like(u, updates)
        sync = state.steps_since_sync == sync_period - 1

        def step(p_fast, p_slow, u_):
            c = compute_dtype(u_.dtype, jnp.result_type(p_fast))
            a = jnp.asarray(slow_step_size, c)
            d = jnp.where(sync, p_fast.astype(c) + u_.astype(c) - p_slow.astype(c), 0)
            return (u_.astype(c) - (1 - a) * d).astype(u_.dtype), (a * d).astype(u_.dtype)

        leaves, treedef = jax.tree.flatten(u)
        pairs = [
            step(f, s, x)
            for f, s, x in zip(
                treedef.flatten_up_to(params.fast), treedef.flatten_up_to(params.slow), leaves
            )
        ]
        out = LookaheadParams(
            fast=treedef.unflatten([f for f, _ in pairs]),
            slow=treedef.unflatten([s for _, s in pairs]),
        )
        if reset_state:
            fresh = cast_like(inner.init(params.fast), fast_state)
            fast_state = jax.tree.map(lambda a, b: jnp.where(sync, a, b), fresh, fast_state)
        count = (state.steps_since_sync + 1) % sync_period
        return out, LookaheadState(fast_state=fast_state, steps_since_sync=count)

    return GradientTransformation(
        init, update, name="lookahead", preprocessing=False, children=(Child(None, inner, ("fast_state",)),)
    )
