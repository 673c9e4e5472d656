"""The race's default optimizers and learning rates, and the grid the rates were chosen from.

On the three functions with a minimum, each default learning rate is the best of ``GRID``
for its optimizer, as ``python -m gradchain race --sweep`` measures it: the fewest steps to
the threshold, ties (and runs that never reach it) broken by the lower final loss; a
diverged run is never best. ``tests/test_race.py`` runs the sweep and holds every rate here
to it (the best, or the grid point next to it). The saddle has no best rate (see below).
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_LEARNING_RATES",
    "DEFAULT_OPTIMIZERS",
    "FALLBACK_LEARNING_RATE",
    "GRID",
    "default_learning_rate",
]

# Four points a decade, log-spaced, from 1e-4 to 3.16 (AdaGrad's best is above 1), each
# rounded to three digits: 1e-4, 1.78e-4, 3.16e-4, 5.62e-4, 1e-3, ..., 1, 1.78, 3.16.
GRID: tuple[float, ...] = tuple(float(f"{10 ** (k / 4):.3g}") for k in range(-16, 3))

DEFAULT_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "lion")

# Per function, per optimizer: the sweep's best, with what it reaches (steps to the threshold,
# '-' for never, and the final loss), measured in float32 on CPU.
DEFAULT_LEARNING_RATES: dict[str, dict[str, float]] = {
    "rosenbrock": {
        "sgd": 0.00178,  # - steps, loss 0.015
        "momentum": 0.00178,  # 455 steps, loss 3.3e-12
        "nesterov": 0.001,  # 826 steps, loss 5.8e-09
        "adagrad": 1.0,  # - steps, loss 0.083
        "rmsprop": 0.00316,  # - steps, loss 0.0084
        "adam": 0.562,  # 667 steps, loss 3.2e-12
        "adamw": 0.562,  # 722 steps, loss 3.2e-06
        "amsgrad": 1.0,  # - steps, loss 0.0037
        "nadam": 0.0178,  # 1711 steps, loss 4.9e-06
        "adamax": 1.0,  # - steps, loss 0.00012
        "lion": 0.00316,  # - steps, loss 0.0029
    },
    "valley": {
        "sgd": 0.0178,  # 321 steps, loss 5.8e-06
        "momentum": 0.00316,  # 125 steps, loss 1.5e-17
        "nesterov": 0.01,  # 91 steps, loss 4.1e-20
        "adagrad": 1.78,  # 16 steps, loss 0
        "rmsprop": 0.0178,  # - steps, loss 0.004
        "adam": 0.316,  # 118 steps, loss 2.8e-17
        "adamw": 0.316,  # 118 steps, loss 2.8e-17
        "amsgrad": 0.316,  # 105 steps, loss 3.8e-18
        "nadam": 1.0,  # 55 steps, loss 0
        "adamax": 0.316,  # 103 steps, loss 3.8e-18
        "lion": 0.1,  # - steps, loss 0.0054
    },
    "beale": {
        "sgd": 0.0178,  # 509 steps, loss 4.6e-07
        "momentum": 0.001,  # 872 steps, loss 4.3e-05
        "nesterov": 0.00178,  # 462 steps, loss 2.1e-07
        "adagrad": 1.0,  # 408 steps, loss 2.8e-08
        "rmsprop": 0.00316,  # - steps, loss 0.00014
        "adam": 0.316,  # 136 steps, loss 3.3e-13
        "adamw": 0.316,  # 142 steps, loss 2.4e-07
        "amsgrad": 0.562,  # 594 steps, loss 2e-06
        "nadam": 0.316,  # 104 steps, loss 1.5e-13
        "adamax": 0.562,  # 458 steps, loss 1.1e-09
        "lion": 0.00316,  # - steps, loss 0.042
    },
    # No best here: a larger rate always leaves the saddle sooner (until the loss overflows),
    # so all share one step size and the table compares the rules. Momentum's velocity
    # would carry the point to 1e17 in 100 steps at 0.05, so it takes 0.01.
    "saddle": {
        "sgd": 0.05,
        "momentum": 0.01,
        "nesterov": 0.01,
        "adagrad": 0.1,
        "rmsprop": 0.05,
        "adam": 0.05,
        "adamw": 0.05,
        "amsgrad": 0.05,
        "nadam": 0.05,
        "adamax": 0.05,
        "lion": 0.05,
    },
}
FALLBACK_LEARNING_RATE = 1e-2  # an optimizer without a default here


def default_learning_rate(function: str, optimizer: object) -> float:
    """The default rate of ``optimizer`` (a name) on ``function``; the fallback otherwise."""
    return DEFAULT_LEARNING_RATES.get(function, {}).get(optimizer, FALLBACK_LEARNING_RATE)
