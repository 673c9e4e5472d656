"""Mechanic: wrap an optimizer and learn the scale of its steps (see ``gradchain.combine``).

A wrapper, not a named optimizer: its first argument is the optimizer it tunes, not a
learning rate. The math is ``gradchain.scale_by_mechanic``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from gradchain.base import Child, GradientTransformation, _as_transform, describe, updater
from gradchain.combine.live import live
from gradchain.combine.wrapping import check_inputs
from gradchain.transforms.parameter_free import scale_by_mechanic

__all__ = [
    "MechanizeState",
    "mechanize",
]


@describe(
    inner="the wrapped optimizer's state",
    mechanic="scale_by_mechanic's state: the first params, and the bettors' statistics",
)
class MechanizeState(NamedTuple):
    inner: Any
    mechanic: Any


@live
def mechanize(
    base_optimizer: GradientTransformation,
    weight_decay: float = 1e-2,
    eps: float = 1e-8,
    s_init: float = 1e-6,
    num_betas: int = 6,
) -> GradientTransformation:
    """Mechanic: run ``base_optimizer`` and scale its steps by a factor learned by betting.

    Update:  u = base_optimizer(g) ;  emit scale_by_mechanic(u, gradient=g) -- the params move
             to x0 + s * (sum of the base optimizer's steps), s learned from <g, x0 - x>.
    Memory:  the base optimizer's, +1x params (x0) and 4 * num_betas scalars.
    Args:    base_optimizer -- any transform (gradchain's or Optax's); give it a learning rate
             of 1.0 (or a schedule peaking at 1.0): Mechanic learns the scale.  weight_decay,
             eps, s_init, num_betas -- see ``scale_by_mechanic``; ``num_betas`` is fixed at
             construction, the others are live.
    Note:    Optax's ``contrib.mechanize``, same keywords and defaults. The bettors read the
             gradient mechanize receives (Optax's), not one a chain inside
             ``base_optimizer`` has clipped.
    Reference: Cutkosky, Defazio & Mehta, "Mechanic: A Learning Rate Tuner", NeurIPS 2023.
    """
    base = _as_transform(base_optimizer)
    tuner = scale_by_mechanic(weight_decay, eps, s_init, num_betas)
    call_base, call_tuner = updater(base), updater(tuner)

    def init(params):
        return MechanizeState(inner=base.init(params), mechanic=tuner.init(params))

    def update(updates, state, params=None, *, gradient=None, **extra):
        check_inputs("mechanize", state, MechanizeState, updates, params, gradient)
        steps, inner = call_base(updates, state.inner, params, gradient, extra)
        out, mechanic = call_tuner(steps, state.mechanic, params, updates, extra)
        return out, MechanizeState(inner=inner, mechanic=mechanic)

    return GradientTransformation(
        init,
        update,
        name="mechanize",
        preprocessing=False,
        children=(Child(None, base, ("inner",)), Child(None, tuner, ("mechanic",))),
    )
