"""The race's test functions: four 2-D losses, each chosen to show one thing.

- ``rosenbrock``  (1 - x)**2 + 100 (y - x**2)**2 from (-1.5, 2): a curved, flat-bottomed
  valley; finding it is easy, following it to (1, 1) is not.
- ``valley``      0.5 (x**2 + 100 y**2) from (-4.5, 1): a long thin quadratic bowl with
  condition number 100. Gradient descent must keep lr < 2/100 for the steep axis and then
  crawls along the flat one; momentum and per-coordinate scaling fix each half of that.
- ``beale``       Beale's function from (1, 1.5), minimum 0 at (3, 0.5): flat plateaus and
  steep walls, gradients spanning orders of magnitude.
- ``saddle``      x**2 - y**2 from (-1.5, 1e-3): no minimum; the race is to *leave* the
  saddle point at the origin. Plain gradient descent escapes only as fast as the tiny
  initial y grows (x (1 + 2 lr) per step); sign-like steps (Adam, Lion) escape at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax

__all__ = ["FUNCTIONS", "Landscape"]


class Landscape(NamedTuple):
    """A 2-D loss to race on.

    loss:      f(p) for p of shape (2,).   start: where every optimizer starts.
    minimum:   the minimiser, drawn as a star (None for the saddle).
    threshold: "reached" means loss <= threshold from then on.   steps: default step count.
    box:       (xmin, xmax, ymin, ymax): the plot's extent, and where a run must stay.
    confined:  a run whose path leaves the box has diverged (False for the saddle, whose
               race is to leave).
    log_levels: contour levels on a log scale (the loss spans decades).
    """

    name: str
    title: str
    loss: Callable[[jax.Array], jax.Array]
    start: tuple[float, float]
    minimum: tuple[float, float] | None
    threshold: float
    steps: int
    box: tuple[float, float, float, float]
    log_levels: bool
    confined: bool = True


def rosenbrock(p: jax.Array) -> jax.Array:
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def valley(p: jax.Array) -> jax.Array:
    x, y = p[0], p[1]
    return 0.5 * (x**2 + 100 * y**2)


def beale(p: jax.Array) -> jax.Array:
    x, y = p[0], p[1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def saddle(p: jax.Array) -> jax.Array:
    x, y = p[0], p[1]
    return x**2 - y**2


FUNCTIONS: dict[str, Landscape] = {
    f.name: f
    for f in [
        Landscape(
            "rosenbrock",
            "Rosenbrock  (1-x)² + 100(y-x²)²",
            rosenbrock,
            start=(-1.5, 2.0),
            minimum=(1.0, 1.0),
            threshold=1e-4,
            steps=2000,
            box=(-2.0, 2.0, -1.0, 3.0),
            log_levels=True,
        ),
        Landscape(
            "valley",
            "Thin valley  ½(x² + 100y²),  condition number 100",
            valley,
            start=(-4.5, 1.0),
            minimum=(0.0, 0.0),
            threshold=1e-4,
            steps=400,
            box=(-5.0, 5.0, -1.5, 1.5),
            log_levels=True,
        ),
        Landscape(
            "beale",
            "Beale",
            beale,
            start=(1.0, 1.5),
            minimum=(3.0, 0.5),
            threshold=1e-4,
            steps=1000,
            box=(-0.5, 4.0, -1.0, 2.0),
            log_levels=True,
        ),
        Landscape(
            "saddle",
            "Saddle  x² − y²",
            saddle,
            start=(-1.5, 1e-3),
            minimum=None,
            threshold=-1.0,
            steps=100,
            box=(-2.0, 2.0, -2.0, 2.0),
            log_levels=False,
            confined=False,
        ),
    ]
}
