"""Sharpness-aware minimization: step to the worst point nearby, take the gradient there, and
apply it at the point you came from (see ``gradchain.combine`` for the wrapper conventions)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import (
    Child,
    EmptyState,
    GradientTransformation,
    _as_transform,
    apply_updates,
    describe,
    updater,
)
from gradchain.combine.wrapping import cast_like
from gradchain.transforms.clipping import global_norm

__all__ = [
    "NormalizeState",
    "SAMState",
    "normalize",
    "sam",
]


def normalize() -> GradientTransformation:
    r"""Divide the update by its global L2 norm: SAM's adversary direction.

    Update:     u_t = u_t / ||u_t||  (all leaves together)
    State:      none.   Memory: 0.
    Note:       Optax's ``contrib.normalize``. A zero update gives NaN, as Optax's.
    Reference:  Foret et al., "Sharpness-Aware Minimization", ICLR 2021.
    """

    def init(params):
        return EmptyState()

    def update(updates, state, params=None, **extra):
        norm = global_norm(updates)
        return jax.tree.map(lambda u: (u / norm.astype(u.dtype)).astype(u.dtype), updates), state

    return GradientTransformation(init, update, name="normalize", preprocessing=True)


NormalizeState = EmptyState  # Optax's name (contrib.NormalizeState): normalize keeps no state


@describe(
    steps_since_sync="calls since the outer optimizer last stepped (int32 scalar, 0 to "
    "sync_period - 1)",
    opt_state="the outer optimizer's state; it changes on every sync_period-th call only",
    adv_state="the adversarial optimizer's state",
    cache="the outer params, kept while the adversary moves the params the loop holds (None "
    "in opaque mode)",
)
class SAMState(NamedTuple):
    steps_since_sync: jax.Array
    opt_state: Any
    adv_state: Any
    cache: Any


def _select(flag: jax.Array, if_true: Any, if_false: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(flag, a, b), if_true, if_false)


def sam(
    optimizer: GradientTransformation,
    adv_optimizer: GradientTransformation,
    sync_period: int = 2,
    reset_state: bool = True,
    opaque_mode: bool = False,
    batch_axis_name: str | None = None,
) -> GradientTransformation:
    r"""SAM: ``sync_period - 1`` ascent steps by ``adv_optimizer``, then one outer step by
    ``optimizer``, with the gradient of the last ascent point, taken from the outer params.

    Update:     (transparent) call k of a cycle (k = steps_since_sync):
                k < sync_period - 1:  emit -adv_optimizer(g); k = 0 also stores the params
                                      in ``cache`` (the outer params w)
                k = sync_period - 1:  u = optimizer(g, params=w); emit w + u - params (the
                                      params return to w and take the outer step);
                                      ``reset_state``: the adversary restarts from init
                (opaque) one call runs the whole cycle: ``sync_period - 1`` ascent steps,
                each taking ``grad_fn(adv_params, i)``, then the outer step; the loop sees
                only outer steps.
    State:      steps_since_sync -- int32 scalar.  opt_state, adv_state -- the two
                optimizers' states.  cache -- like the params (None in opaque mode).
                Memory: +1x params (cache) + both optimizers' (opaque: no cache).
    Args:       optimizer -- the outer optimizer.  adv_optimizer -- the ascent step, e.g.
                ``chain(normalize(), sgd(rho))``; its output is negated.
                sync_period -- integer >= 1.  reset_state -- restart the adversary after
                each outer step.  opaque_mode -- run the cycle inside one call; ``update``
                then needs ``grad_fn=lambda params, i: grad``.  batch_axis_name -- opaque
                mode under ``pmap``/``shard_map``: the ascent gradients are ``pmean``-ed
                over it.
    Note:       Optax's ``contrib.sam``, same arguments and state fields; equal to it over
                120 steps (tests/test_sharpness.py). On purpose: with sync_period=1
                Optax applies the outer step at the *previous* call's params (its cache is
                written after it is read: the params go p0, p0 + u1, p0 + u2, p1 + u3, ...);
                here the outer step is taken at this call's params, i.e. plain
                ``optimizer``. Branches are selected with ``jnp.where``, not Optax's
                ``c * a + (1 - c) * b``, so a non-finite value in the branch not taken
                cannot leak into the state.
    Reference:  Foret et al., "Sharpness-Aware Minimization for Efficiently Improving
                Generalization", ICLR 2021.
    """
    outer, adversary = _as_transform(optimizer), _as_transform(adv_optimizer)
    outer_call, adv_call = updater(outer), updater(adversary)
    _checks.check_int("sync_period", sync_period, minimum=1)
    if not isinstance(reset_state, bool) or not isinstance(opaque_mode, bool):
        raise _checks.GradchainError("sam: reset_state and opaque_mode must be bools")

    def init(params):
        return SAMState(
            steps_since_sync=jnp.zeros([], jnp.int32),
            opt_state=outer.init(params),
            adv_state=adversary.init(params),
            cache=None if opaque_mode else jax.tree.map(lambda p: jnp.array(p, copy=True), params),
        )

    def check(state, updates, params):
        if not isinstance(state, SAMState):
            raise _checks.GradchainError(
                f"this state does not belong to this optimizer: sam expects a SAMState, got "
                f"{type(state).__name__}"
            )
        if params is None:
            _checks.refuse_missing_params("sam")
        _checks.check_same_structure("updates", updates, "params", params)

    def ascend(g, adv_state, params, extra):
        u, adv_state = adv_call(g, adv_state, params, None, extra)
        return jax.tree.map(lambda x: -x, cast_like(u, g)), adv_state

    def transparent(updates, state, params=None, *, gradient=None, grad_fn=None, **extra):
        check(state, updates, params)
        k = state.steps_since_sync
        first, last = k == 0, k == sync_period - 1
        w = _select(first, params, state.cache)  # the outer params

        def outer_step(operands):
            opt_state, adv_state = operands
            u, opt_state = outer_call(updates, opt_state, w, None, extra)
            out = jax.tree.map(lambda w_, p, u_: w_ - p + u_, w, params, cast_like(u, updates))
            fresh = adversary.init(params) if reset_state else adv_state
            return out, opt_state, cast_like(fresh, adv_state)

        def ascent_step(operands):
            opt_state, adv_state = operands
            out, adv_state = ascend(updates, adv_state, params, extra)
            return out, opt_state, adv_state

        out, opt_state, adv_state = jax.lax.cond(
            last, outer_step, ascent_step, (state.opt_state, state.adv_state)
        )
        return out, SAMState(
            steps_since_sync=(k + 1) % sync_period,
            opt_state=opt_state,
            adv_state=adv_state,
            cache=cast_like(w, state.cache),
        )

    def opaque(updates, state, params=None, *, gradient=None, grad_fn=None, **extra):
        check(state, updates, params)
        if grad_fn is None:
            raise _checks.GradchainError(
                "sam(opaque_mode=True) runs the ascent steps itself: give "
                "update(updates, state, params, grad_fn=lambda params, i: grad)"
            )
        g, adv_params, adv_state = updates, params, state.adv_state
        for i in range(sync_period - 1):
            step, adv_state = ascend(g, adv_state, adv_params, extra)
            adv_params = apply_updates(adv_params, step)
            g = grad_fn(adv_params, i)
            if batch_axis_name is not None:
                g = jax.lax.pmean(g, axis_name=batch_axis_name)
        if reset_state:
            adv_state = adversary.init(params)
        out, opt_state = outer_call(g, state.opt_state, params, None, extra)
        return cast_like(out, updates), SAMState(
            steps_since_sync=jnp.zeros([], jnp.int32),
            opt_state=opt_state,
            adv_state=adv_state,
            cache=None,
        )

    return GradientTransformation(
        init,
        opaque if opaque_mode else transparent,
        name="sam",
        preprocessing=False,
        children=(
            Child(None, outer, ("opt_state",)),
            Child("adversary", adversary, ("adv_state",)),
        ),
    )
