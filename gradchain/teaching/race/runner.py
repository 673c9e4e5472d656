"""Running optimizers on the test functions: one compiled ``lax.scan`` per optimizer and
function, ``vmap``-ed over learning rates, so a race and a sweep cost one compilation each.

What a run reports (``RaceResult``): its path and losses; ``reached``, the step from which
the loss stays at or below the function's threshold to the end (for the saddle: below -1,
escaped); ``diverged``, the loss went non-finite or, on a function with a minimum, the path
left the function's box -- the plot's extent, so a diverged run is one you see leave it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain._checks import GradchainError
from gradchain.base import apply_updates
from gradchain.memory import memory_report
from gradchain.teaching.build import Optimizer, build_optimizer
from gradchain.teaching.race.defaults import DEFAULT_OPTIMIZERS, default_learning_rate
from gradchain.teaching.race.landscapes import FUNCTIONS, Landscape

__all__ = ["RaceResult", "race", "reached_for_good", "run_grid", "run_one"]


class RaceResult(NamedTuple):
    """One optimizer's run on one function.

    path: (steps + 1, 2) points, the start first.   losses: (steps + 1,) the loss at each.
    reached: the first step from which the loss stays <= threshold to the end, or None.
    diverged: the loss went non-finite, or the path left the box of a confined function.
    state_multiple: per-parameter state / parameters.
    state_bytes, scalar_bytes: bytes of the per-parameter state (mu, nu...) and of the
    scalars (step counts, live hyperparameters) for these 2 parameters.
    """

    optimizer: str
    function: str
    learning_rate: float
    path: np.ndarray
    losses: np.ndarray
    reached: int | None
    diverged: bool
    state_multiple: float
    state_bytes: int
    scalar_bytes: int

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1])


def reached_for_good(losses: np.ndarray, threshold: float) -> int | None:
    """The first step from which every loss is <= threshold; None if the last one is not.

    A first dip below the threshold is not enough: an oscillating optimizer (RMSProp or Lion
    at a constant rate, heavy momentum) can cross it and bounce back out.
    """
    above = np.flatnonzero(~(losses <= threshold))  # NaN counts as above
    if above.size == 0:
        return 0
    return None if above[-1] == len(losses) - 1 else int(above[-1]) + 1


def left_the_box(path: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    """Whether any point of ``path`` (or a non-finite one) lies outside ``box``."""
    x0, x1, y0, y1 = box
    x, y = path[:, 0], path[:, 1]
    return not bool(np.all((x0 <= x) & (x <= x1) & (y0 <= y) & (y <= y1)))


@functools.lru_cache(maxsize=128)
def _compiled_runs(optimizer: Optimizer, fn: Landscape, steps: int):
    """Whole runs as one jitted function of (learning rates, start), vmapped over the rates."""

    def run(learning_rate, start):
        opt = build_optimizer(optimizer, learning_rate)  # a traced lr is used as given

        def step(carry, _):
            params, state = carry
            loss, grads = jax.value_and_grad(fn.loss)(params)
            updates, state = opt.update(grads, state, params)
            return (apply_updates(params, updates), state), (params, loss)

        (last, _), (path, losses) = jax.lax.scan(step, (start, opt.init(start)), length=steps)
        return jnp.concatenate([path, last[None]]), jnp.append(losses, fn.loss(last))

    return jax.jit(jax.vmap(run, in_axes=(0, None)))


def run_grid(
    optimizer: Optimizer,
    function: str | Landscape,
    learning_rates: Sequence[float],
    steps: int | None = None,
    *,
    label: str | None = None,
) -> list[RaceResult]:
    """Run one optimizer on one function at each learning rate, all in one compiled call.

    Args:   optimizer -- a name from ``gradchain.optimizers`` (``"adam"``), or a function of
            the learning rate returning a transform (``lambda lr: chain(..., lr)``); it is
            called with a traced learning rate, so one compilation serves every lr.
            function -- a key of ``FUNCTIONS`` or a ``Landscape``.  steps -- default: the
            function's.  label -- the name shown (default: the name, or the function's).
    """
    fn = _landscape(function)
    steps = fn.steps if steps is None else steps
    if label is None:
        label = optimizer if isinstance(optimizer, str) else getattr(optimizer, "__name__", "?")
    start = jnp.asarray(fn.start, jnp.float32)
    lrs = jnp.asarray(learning_rates, jnp.float32)
    paths, losses = (np.asarray(a) for a in _compiled_runs(optimizer, fn, steps)(lrs, start))
    report = memory_report(build_optimizer(optimizer, float(learning_rates[0])), start)
    results = []
    for lr, path, loss in zip(learning_rates, paths, losses):
        diverged = not np.all(np.isfinite(loss)) or (fn.confined and left_the_box(path, fn.box))
        results.append(
            RaceResult(
                label,
                fn.name,
                float(lr),
                path,
                loss,
                reached_for_good(loss, fn.threshold),
                bool(diverged),
                report.params_multiple,
                report.per_parameter_bytes,
                report.scalar_bytes,
            )
        )
    return results


def run_one(
    optimizer: Optimizer,
    function: str | Landscape,
    learning_rate: float,
    steps: int | None = None,
    *,
    label: str | None = None,
) -> RaceResult:
    """Run one optimizer on one test function: ``run_grid`` with one learning rate."""
    return run_grid(optimizer, function, [learning_rate], steps, label=label)[0]


def race(
    optimizers: Sequence[str] = DEFAULT_OPTIMIZERS,
    functions: Sequence[str] = tuple(FUNCTIONS),
    learning_rates: dict[str, float] | float | None = None,
    steps: int | None = None,
) -> dict[str, list[RaceResult]]:
    """Run every optimizer on every function; results keyed by function name.

    learning_rates: None for the defaults, one number for all, or {optimizer: lr} (the
    optimizers not named keep their defaults).
    """
    fns = [_landscape(f) for f in functions]
    results: dict[str, list[RaceResult]] = {}
    for fn in fns:
        rows = []
        for name in optimizers:
            lr = default_learning_rate(fn.name, name)
            if isinstance(learning_rates, (int, float)):
                lr = float(learning_rates)
            elif learning_rates:
                lr = learning_rates.get(name, lr)
            rows.append(run_one(name, fn, lr, steps))
        results[fn.name] = rows
    return results


def _landscape(function: str | Landscape) -> Landscape:
    if isinstance(function, Landscape):
        return function
    if function not in FUNCTIONS:
        raise GradchainError(f"unknown function {function!r}; choose from: {', '.join(FUNCTIONS)}")
    return FUNCTIONS[function]
