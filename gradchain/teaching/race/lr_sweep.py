"""The learning-rate sweep: every optimizer on every function at every rate of a grid, and
the best rate of each -- where the race's defaults come from (``python -m gradchain race
--sweep``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from gradchain.teaching.race.defaults import DEFAULT_OPTIMIZERS, GRID
from gradchain.teaching.race.landscapes import FUNCTIONS
from gradchain.teaching.race.runner import RaceResult, run_grid

__all__ = ["Sweep", "best", "sweep"]

Sweep = dict[str, dict[str, list[RaceResult]]]  # function -> optimizer -> one run per lr


def sweep(
    optimizers: Sequence[str] = DEFAULT_OPTIMIZERS,
    functions: Sequence[str] = tuple(FUNCTIONS),
    grid: Sequence[float] = GRID,
    steps: int | None = None,
) -> Sweep:
    """Run each optimizer on each function at every learning rate of ``grid`` (one compiled
    call per optimizer and function)."""
    return {f: {name: run_grid(name, f, grid, steps) for name in optimizers} for f in functions}


def best(runs: Sequence[RaceResult]) -> RaceResult:
    """The run with the fewest steps to the threshold; ties, and runs that never reach it,
    by the lower final loss. A diverged run is never best unless every run diverged."""

    def rank(r: RaceResult) -> tuple:
        final = r.final_loss if math.isfinite(r.final_loss) else math.inf
        return (r.diverged, r.reached is None, r.reached or 0, final)

    return min(runs, key=rank)
