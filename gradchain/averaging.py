"""An average of the parameters, kept beside them: EMA (Polyak averaging), optionally debiased.

Not a transform: the average does not change the step, it is what a training loop evaluates
or saves. Three pure, jit-safe functions:

>>> import jax.numpy as jnp, gradchain
>>> avg = gradchain.ema_init(jnp.zeros(2), decay=0.9)
>>> for p in (1.0, 2.0, 3.0):                       # the params after each step
...     avg = gradchain.ema_update(avg, jnp.full(2, p))
>>> [round(x, 4) for x in gradchain.ema_params(avg).tolist()]   # (81 + 180 + 300) / 271
[2.0701, 2.0701]
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import describe, hyperparam_dtype
from gradchain.transforms.moment_math import compute_dtype

__all__ = [
    "EmaState",
    "ema_init",
    "ema_params",
    "ema_update",
    "incremental_update",
    "periodic_update",
]


@describe(
    ema="moving average of the params, one array per parameter (not yet divided by weight)",
    weight="scalar: the total weight the average has received; the average is ema / weight",
    decay="how much of the old average each update keeps (0-d; a new value can be passed to ema_update)",
)
class EmaState(NamedTuple):
    ema: Any
    weight: jax.Array
    decay: jax.Array


def ema_init(
    params: Any, decay: float = 0.999, *, debias: bool = True, dtype: Any = None
) -> EmaState:
    r"""Start an exponential moving average of the params.

    State:      ema -- like the params, dtype ``dtype`` (default: the params'); zeros when
                ``debias``, else a copy of the params.  weight -- 0 when ``debias``, else 1.
                decay -- live scalar.   Memory: +1x params.
    Args:       decay -- in [0, 1); the average spans about 1 / (1 - decay) steps.
                debias -- start from zero and divide by the weight received (Adam's bias
                correction), so early averages are not pulled toward zero or toward the
                initial params; False starts from the initial params (torch's
                ``AveragedModel`` with an EMA function, Flax examples).
                dtype -- e.g. jnp.float32 to average bfloat16 params in float32.
    Reference:  Polyak & Juditsky, "Acceleration of Stochastic Approximation by Averaging",
                1992; Kingma & Ba, 2015 (bias correction).
    """
    _checks.check_unit_interval("decay", decay)
    _checks.check_dtype("dtype", dtype)
    _checks.check_float_leaves("params", params)
    if debias:
        # zeros_like keeps each parameter's sharding; zeros(shape) would land on device 0.
        ema = jax.tree.map(lambda p: jnp.zeros_like(p, dtype=dtype or jnp.result_type(p)), params)
    else:
        ema = jax.tree.map(lambda p: jnp.array(p, dtype=dtype or jnp.result_type(p)), params)
    return EmaState(
        ema=ema,
        weight=jnp.asarray(0.0 if debias else 1.0, hyperparam_dtype()),
        decay=jnp.asarray(decay, hyperparam_dtype()),
    )


def _check_state(state: Any) -> None:
    if not isinstance(state, EmaState):
        raise _checks.GradchainError(
            f"expected the EmaState that ema_init returns, got {type(state).__name__}"
        )


def ema_update(state: EmaState, params: Any, decay: Any = None) -> EmaState:
    r"""Fold the current params into the average.

    Update:     ema_t = decay * ema_{t-1} + (1 - decay) * p_t
                weight_t = weight_{t-1} + (1 - decay) * (1 - weight_{t-1})
                (= 1 - prod(decay) from 0; stays exactly 1 from 1)
    Args:       state -- from ``ema_init`` or the last ``ema_update``.  params -- the params
                now.  decay -- None for the state's own; or a number or array (e.g. a
                schedule's value) used for this update and recorded in the state. Changing
                it between jitted calls does not recompile.
    """
    _check_state(state)
    _checks.check_same_structure("params", params, "the average", state.ema)
    d = state.decay if decay is None else jnp.asarray(decay).astype(state.decay.dtype)

    def average(a, p):
        c = compute_dtype(a.dtype, jnp.result_type(p))
        dc = d.astype(c)
        return (dc * a.astype(c) + (1 - dc) * jnp.asarray(p).astype(c)).astype(a.dtype)

    ema = jax.tree.map(average, state.ema, params)
    weight = state.weight + (1 - d) * (1 - state.weight)
    return EmaState(ema=ema, weight=weight, decay=d)


def ema_params(state: EmaState) -> Any:
    r"""The average: ``ema / weight``, in the average's dtype.

    Before the first ``ema_update`` of a debiased average there is nothing to average yet, and
    this returns the zeros it started from.
    """
    _check_state(state)
    # Only an exact zero (nothing averaged yet) is replaced: a NaN weight stays visible.
    w = jnp.where(state.weight == 0, jnp.ones_like(state.weight), state.weight)

    def divide(a):
        c = compute_dtype(a.dtype)
        return (a.astype(c) / w.astype(c)).astype(a.dtype)

    return jax.tree.map(divide, state.ema)


def incremental_update(new_tensors: Any, old_tensors: Any, step_size: Any) -> Any:
    """One step of a moving average of parameters (a target network's Polyak update):
    ``step_size * new + (1 - step_size) * old``, leaf by leaf; a ``None`` new leaf stays
    ``None``. Optax's ``optax.incremental_update``."""
    return jax.tree.map(
        lambda new, old: None if new is None else step_size * new + (1.0 - step_size) * old,
        new_tensors,
        old_tensors,
        is_leaf=lambda x: x is None,
    )


def periodic_update(new_tensors: Any, old_tensors: Any, steps: Any, update_period: Any) -> Any:
    """``new_tensors`` on the steps that are a multiple of ``update_period``, else
    ``old_tensors`` (a target network copied every ``update_period`` steps); jit-safe.
    Optax's ``optax.periodic_update``."""
    return jax.lax.cond(
        jnp.mod(steps, update_period) == 0, lambda: new_tensors, lambda: old_tensors
    )
