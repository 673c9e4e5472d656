"""torch.optim.ASGD as a gradchain chain: SGD with a decaying step and a running average of
the iterates (the average is kept in the state, ``ax``; torch's params are not averaged)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import GradientTransformation, chain, describe, tree_map_split
from gradchain.torch.optimizers import _check_implementation_args, _ported
from gradchain.transforms import add_decayed_weights, scale
from gradchain.transforms.moment_math import compute_dtype, increment

__all__ = ["ASGD", "TorchAsgdState", "scale_by_torch_asgd"]


@describe(
    count="steps taken so far (int32 scalar): torch's step",
    ax="the averaged iterate, like params: torch's ax (read it for the averaged model)",
)
class TorchAsgdState(NamedTuple):
    count: jax.Array
    ax: Any


def scale_by_torch_asgd(
    lr: float = 1e-2, lambd: float = 1e-4, alpha: float = 0.75, t0: float = 1e6
) -> GradientTransformation:
    r"""torch.optim.ASGD's step and average (the update is final: it includes lr).

    Update:     t = count + 1 ;  eta = lr / (1 + lambd lr (t - 1))**alpha
                mu = 1 / max(1, t - 1 - t0)
                u = -eta (g + lambd p) ;  ax <- ax + mu (p + u - ax)
    State:      count, ax (``TorchAsgdState``).   Memory: 1x params.
    Note:       torch computes eta and mu at the end of a step for the next one (from the lr
                of that moment); here they are the same closed forms of t, so a changed lr
                takes effect one step earlier than in torch.
    Reference:  torch.optim.ASGD (torch 2.13); Polyak & Juditsky, 1992.
    """
    _checks.check_non_negative("lr", lr)

    def init(params):
        return TorchAsgdState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params))

    def update(updates, state, params=None, **extra):
        if params is None:
            _checks.refuse_missing_params("scale_by_torch_asgd (its decay term is lambd * p)")
        count = increment(state.count)

        def step(g, p, ax):
            c = compute_dtype(g.dtype, p.dtype)
            done = state.count.astype(c)  # t - 1
            lr_c, lambd_c = jnp.asarray(lr, c), jnp.asarray(lambd, c)
            eta = lr_c / (1 + lambd_c * lr_c * done) ** jnp.asarray(alpha, c)
            mu = 1 / jnp.maximum(1.0, done - jnp.asarray(t0, c))
            u = -eta * (g.astype(c) + lambd_c * p.astype(c))
            new_p = p.astype(c) + u
            ax = ax.astype(c) + mu * (new_p - ax.astype(c))
            return u.astype(g.dtype), ax.astype(p.dtype)

        out, ax = tree_map_split(step, 2, updates, params, state.ax)
        return out, TorchAsgdState(count, ax)

    return GradientTransformation(init, update, name="scale_by_torch_asgd", preprocessing=False)


@_ported({TorchAsgdState: {"count": "step", "ax": "ax"}})
def ASGD(
    lr: float = 1e-2,
    lambd: float = 1e-4,
    alpha: float = 0.75,
    t0: float = 1e6,
    weight_decay: float = 0.0,
    *,
    maximize: bool = False,
    **implementation: Any,
) -> GradientTransformation:
    r"""torch.optim.ASGD: averaged SGD, its step shrinking as (1 + lambd lr t)**-alpha.

    Update:     g <- -g (maximize) ;  g <- g + weight_decay p ;  see ``scale_by_torch_asgd``
    State:      count, ax (the average of the iterates from step t0 on).   Memory: 1x params.
    Args:       torch's, same defaults (``t0`` 1e6: the average is the last iterate until then).
    Note:       Measured against torch 2.13 over 30 float64 steps (params and ax): max |diff|
                4e-16 (test bound 1e-10). torch's positional ``foreach, maximize,
                differentiable, capturable`` are keywords here.
    Reference:  torch.optim.ASGD; Polyak & Juditsky, "Acceleration of Stochastic
                Approximation by Averaging", 1992.
    """
    _check_implementation_args("ASGD", implementation)
    _checks.check_non_negative("weight_decay", weight_decay)
    parts = [scale(-1.0)] if maximize else []
    if weight_decay != 0:
        parts.append(add_decayed_weights(weight_decay))
    return chain(*parts, scale_by_torch_asgd(lr, lambd, alpha, t0))
