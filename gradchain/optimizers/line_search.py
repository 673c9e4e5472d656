"""Optimizers that read the objective: L-BFGS with a line search, and SGD with Polyak's step.

L-BFGS's ``update`` takes the extra arguments ``value``, ``grad`` and ``value_fn`` (and keyword
arguments for ``value_fn``), exactly as Optax's; ``polyak_sgd`` takes ``value``. Use them full-batch, with
``gradchain.value_and_grad_from_state`` to reuse what the line search computed::

    opt = gradchain.lbfgs()
    value_and_grad = gradchain.value_and_grad_from_state(f)
    value, grad = value_and_grad(params, state=state)
    updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=f)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gradchain.base import GradientTransformation, chain, identity
from gradchain.combine.live import live
from gradchain.transforms.line_search import scale_by_lbfgs, scale_by_zoom_linesearch
from gradchain.transforms.polyak import scale_by_polyak
from gradchain.transforms.scaling import scale, scale_by_learning_rate

__all__ = [
    "lbfgs",
    "polyak_sgd",
]

# Optax's default: a zoom line search that starts every search at a step of 1.
_ZOOM = scale_by_zoom_linesearch(max_linesearch_steps=20, initial_guess_strategy="one")


@live
def lbfgs(
    learning_rate: float | Callable[[Any], Any] | None = None,
    memory_size: int = 10,
    scale_init_precond: bool = True,
    linesearch: Any = _ZOOM,
) -> GradientTransformation:
    """L-BFGS: a quasi-Newton direction, its step chosen by a line search.

    Memory: (3 + 2 * memory_size)x params (the last params and gradient, memory_size pairs
    of differences, and the gradient the line search keeps).
    ``learning_rate`` -- None (the line search alone sets the step), or a factor (or
    schedule) applied before it. ``linesearch`` -- a line search transform
    (``scale_by_zoom_linesearch``, ``scale_by_backtracking_linesearch``), or None for none.
    Note: Optax's ``lbfgs``, same keywords and defaults; equal to it to float tolerance (see
    tests/test_line_search.py).
    """
    return chain(
        scale_by_lbfgs(memory_size, scale_init_precond),  # differences (+(2 + 2m)x params)
        scale(-1.0) if learning_rate is None else scale_by_learning_rate(learning_rate),
        identity() if linesearch is None else linesearch,  # step size (+1x params: grad)
    )


@live
def polyak_sgd(
    max_learning_rate: float = 1.0,
    scaling: float | Callable[[Any], Any] = 1.0,
    f_min: float = 0.0,
    eps: float = 0.0,
    variant: str = "sps",
) -> GradientTransformation:
    """SGD with the Polyak step size (f - f_min) / ||g||**2, capped. Memory: 0x params.

    Its update needs ``value=f(params)``. Optax's ``polyak_sgd``: same keywords (it takes no
    ``learning_rate``: ``max_learning_rate`` caps the step, ``scaling`` multiplies the
    gradient first, so the step reads the norm of ``-scaling * g``).
    Note: inside Optax's own wrappers (``optax.MultiSteps``, ``optax.inject_hyperparams``) the
    update never receives ``value`` and refuses ("needs the objective's value"): Optax hands
    extra arguments only to its own ``GradientTransformationExtraArgs`` class, which a
    gradchain transform is not (gradchain does not import Optax). ``gradchain.MultiSteps`` and
    ``gradchain.inject_hyperparams`` pass it on (the same step as polyak_sgd alone).
    """
    return chain(
        scale_by_learning_rate(scaling),  # -scaling * g
        scale_by_polyak(f_min, max_learning_rate, eps, variant),  # the Polyak step
    )
