"""The optimizer race: named optimizers on classic 2-D test functions, side by side.

``python -m gradchain race`` runs every optimizer on every function, each run one
jit-compiled ``jax.lax.scan``, prints one table per function and draws the contours with
every optimizer's path (``race.png``; matplotlib: ``pip install "gradchain[plot]"``).
``python -m gradchain race --sweep`` runs each at every learning rate of a grid instead:
the race's default rates are the sweep's best.

The rooms:

- ``landscapes``  the test functions (``FUNCTIONS``), each with its start, threshold, box.
- ``defaults``    the default optimizers and learning rates, and the grid they come from.
- ``runner``      running optimizers (``run_one``, ``run_grid``, ``race``): ``RaceResult``,
  steps to the threshold, divergence.
- ``lr_sweep``    every rate of a grid, and the best of them.
- ``tables``      the text tables.    ``plots``  the pictures.
- ``command``     the command line.
"""

from gradchain.teaching.race.command import configure, main, run
from gradchain.teaching.race.defaults import (
    DEFAULT_LEARNING_RATES,
    DEFAULT_OPTIMIZERS,
    FALLBACK_LEARNING_RATE,
    GRID,
    default_learning_rate,
)
from gradchain.teaching.race.landscapes import FUNCTIONS, Landscape
from gradchain.teaching.race.lr_sweep import Sweep, best, sweep
from gradchain.teaching.race.plots import plot_race, plot_sweep
from gradchain.teaching.race.runner import (
    RaceResult,
    left_the_box,
    race,
    reached_for_good,
    run_grid,
    run_one,
)
from gradchain.teaching.race.tables import format_sweep, format_table

__all__ = [
    "DEFAULT_LEARNING_RATES",
    "DEFAULT_OPTIMIZERS",
    "FALLBACK_LEARNING_RATE",
    "FUNCTIONS",
    "GRID",
    "Landscape",
    "RaceResult",
    "Sweep",
    "best",
    "configure",
    "default_learning_rate",
    "format_sweep",
    "format_table",
    "left_the_box",
    "main",
    "plot_race",
    "plot_sweep",
    "race",
    "reached_for_good",
    "run",
    "run_grid",
    "run_one",
    "sweep",
]
