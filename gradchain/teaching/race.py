"""The optimizer race: named optimizers on classic 2-D test functions, side by side.

``python -m gradchain race`` runs every optimizer on every function, each whole run one
jit-compiled ``jax.lax.scan`` over the steps, prints one table per function and draws the
contours with every optimizer's path (``race.png``, needs matplotlib: ``pip install
"gradchain[plot]"``).

The functions, each chosen to show one thing a learner should see:

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

Columns of a table:

- ``state``      the optimizer's per-parameter state as a multiple of the parameters
  (``mu``, ``nu``...: 0x for SGD, 1x for momentum, 2x for Adam).
- ``state bytes`` for these 2 float32 parameters: per-parameter slots + scalars (step
  counts and live hyperparameters, which do not grow with the model).
- ``steps``      the step from which the loss stays at or below the function's threshold
  to the end (for the saddle: below -1, i.e. escaped); ``-`` if it is above at the end.
- ``final loss`` the loss after the last step.
- ``diverged``   yes if the loss went non-finite or the point left the function's box.

Default learning rates (``DEFAULT_LEARNING_RATES``) were tuned by hand so that the default
race is instructive: each is close to the best of a small grid for its optimizer on its
function, so the table compares optimizers, not how well their defaults happen to fit.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain import optimizers as optimizers_lib
from gradchain._checks import GradchainError
from gradchain.base import apply_updates

__all__ = [
    "DEFAULT_LEARNING_RATES",
    "DEFAULT_OPTIMIZERS",
    "FUNCTIONS",
    "RaceResult",
    "Landscape",
    "configure",
    "format_table",
    "main",
    "plot_race",
    "race",
    "run",
    "run_one",
    "state_memory",
]


class Landscape(NamedTuple):
    """A 2-D loss to race on.

    loss:      f(p) for p of shape (2,).   start: where every optimizer starts.
    minimum:   the minimiser, drawn as a star (None for the saddle).
    threshold: "reached" means loss <= threshold from then on.   steps: default step count.
    box:       (xmin, xmax, ymin, ymax) of the plot; leaving ``bound`` times it is divergence.
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
    bound: float = 10.0


def _rosenbrock(p):
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def _valley(p):
    x, y = p[0], p[1]
    return 0.5 * (x**2 + 100 * y**2)


def _beale(p):
    x, y = p[0], p[1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _saddle(p):
    x, y = p[0], p[1]
    return x**2 - y**2


FUNCTIONS: dict[str, Landscape] = {
    f.name: f
    for f in [
        Landscape(
            "rosenbrock",
            "Rosenbrock  (1-x)² + 100(y-x²)²",
            _rosenbrock,
            (-1.5, 2.0),
            (1.0, 1.0),
            1e-4,
            2000,
            (-2.0, 2.0, -1.0, 3.0),
            True,
        ),
        Landscape(
            "valley",
            "Thin valley  ½(x² + 100y²),  condition number 100",
            _valley,
            (-4.5, 1.0),
            (0.0, 0.0),
            1e-4,
            400,
            (-5.0, 5.0, -1.5, 1.5),
            True,
        ),
        Landscape(
            "beale",
            "Beale",
            _beale,
            (1.0, 1.5),
            (3.0, 0.5),
            1e-4,
            1000,
            (-0.5, 4.0, -1.0, 2.0),
            True,
        ),
        Landscape(
            "saddle",
            "Saddle  x² − y²",
            _saddle,
            (-1.5, 1e-3),
            None,
            -1.0,
            100,
            (-2.0, 2.0, -2.0, 2.0),
            False,
            math.inf,
        ),
    ]
}

DEFAULT_OPTIMIZERS = (
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adam",
    "adamw",
    "lion",
)

# Per function, per optimizer: near the best of a grid 1e-4..4 for each (see the module
# docstring). Lion moves every coordinate by exactly lr per step, so its lr is small.
DEFAULT_LEARNING_RATES: dict[str, dict[str, float]] = {
    # From (-1.5, 2), where the walls are steepest, SGD diverges from lr = 0.0022 on (0.002
    # reaches the minimum by a lucky bounce; not a default to rely on).
    "rosenbrock": {
        "sgd": 1.5e-3,
        "momentum": 1e-3,
        "nesterov": 1e-3,
        "adagrad": 2.0,
        "rmsprop": 5e-3,
        "adam": 0.1,
        "adamw": 0.1,
        "amsgrad": 1.0,
        "nadam": 0.03,
        "adamax": 1.0,
        "lion": 2e-3,
    },
    # Gradient descent must keep lr < 2/100, the steep axis's stability limit.
    "valley": {
        "sgd": 0.018,
        "momentum": 0.01,
        "nesterov": 0.01,
        "adagrad": 1.0,
        "rmsprop": 0.018,
        "adam": 0.3,
        "adamw": 0.3,
        "amsgrad": 0.3,
        "nadam": 0.3,
        "adamax": 0.3,
        "lion": 0.1,
    },
    "beale": {
        "sgd": 0.03,
        "momentum": 5e-3,
        "nesterov": 5e-3,
        "adagrad": 1.0,
        "rmsprop": 5e-3,
        "adam": 0.1,
        "adamw": 0.1,
        "amsgrad": 1.0,
        "nadam": 0.1,
        "adamax": 0.3,
        "lion": 0.01,
    },
    # One step size for all but momentum (which would overshoot to 1e17 in 100 steps).
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
FALLBACK_LEARNING_RATE = 1e-2  # an optimizer without a tuned default


class RaceResult(NamedTuple):
    """One optimizer's run on one function.

    path: (steps + 1, 2) points, the start first.   losses: (steps + 1,) the loss at each.
    reached: the first step from which the loss stays <= threshold to the end, or None.
    diverged: see the module doc.
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


def state_memory(optimizer: Any, params: Any) -> tuple[float, int, int]:
    """The state's size from shapes only: (per-parameter state as a multiple of the params,
    bytes of the per-parameter slots, bytes of the scalar slots).

    Uses ``gradchain.memory_report``; where it is not available, counts the leaves of
    ``jax.eval_shape(optimizer.init, params)`` shaped like a parameter as per-parameter.
    """
    try:
        from gradchain.memory import memory_report
    except ImportError:  # pragma: no cover - the memory module is part of gradchain
        memory_report = None
    if memory_report is not None:
        report = memory_report(optimizer, params)
        return report.params_multiple, report.per_parameter_bytes, report.scalar_bytes
    leaves = jax.tree.leaves(jax.eval_shape(optimizer.init, params))
    shapes = {np.shape(p) for p in jax.tree.leaves(params)} - {()}
    n_params = sum(math.prod(np.shape(p)) for p in jax.tree.leaves(params))
    per_param = [x for x in leaves if x.shape in shapes]
    scalars = [x for x in leaves if x.shape == ()]

    def nbytes(xs):
        return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in xs)

    return sum(math.prod(x.shape) for x in per_param) / n_params, nbytes(per_param), nbytes(scalars)


Optimizer = str | Callable[[Any], Any]  # a gradchain.optimizers name, or lr -> transform


def _make(optimizer: Optimizer, learning_rate: Any):
    if callable(optimizer):
        return optimizer(learning_rate)
    if optimizer not in optimizers_lib.__all__:
        known = ", ".join(sorted(optimizers_lib.__all__))
        raise GradchainError(f"unknown optimizer {optimizer!r}; choose from: {known}")
    return getattr(optimizers_lib, optimizer)(learning_rate)


def _reached_for_good(losses: np.ndarray, threshold: float) -> int | None:
    """The first step from which every loss is <= threshold; None if the last one is not.

    A first dip below the threshold is not enough: an oscillating optimizer (RMSProp or Lion
    at a constant rate, heavy momentum) can cross it and bounce back out.
    """
    above = np.flatnonzero(~(losses <= threshold))  # NaN counts as above
    if above.size == 0:
        return 0
    return None if above[-1] == len(losses) - 1 else int(above[-1]) + 1


@functools.lru_cache(maxsize=64)
def _compiled_run(optimizer: Optimizer, fn: Landscape, steps: int):
    """The whole run as one jitted function of (learning rate, start): one compilation."""

    def run(learning_rate, start):
        opt = _make(optimizer, learning_rate)  # a traced lr is used as given, not checked

        def step(carry, _):
            params, state = carry
            loss, grads = jax.value_and_grad(fn.loss)(params)
            updates, state = opt.update(grads, state, params)
            return (apply_updates(params, updates), state), (params, loss)

        (last, _), (path, losses) = jax.lax.scan(step, (start, opt.init(start)), length=steps)
        return jnp.concatenate([path, last[None]]), jnp.append(losses, fn.loss(last))

    return jax.jit(run)


def run_one(
    optimizer: Optimizer,
    function: str | Landscape,
    learning_rate: float,
    steps: int | None = None,
    *,
    label: str | None = None,
) -> RaceResult:
    """Run one optimizer on one test function, the whole run one compiled ``lax.scan``.

    Args:   optimizer -- a name from ``gradchain.optimizers`` (``"adam"``), or a function of
            the learning rate returning a transform (``lambda lr: chain(..., lr)``); it is
            called with a traced learning rate, so one compilation serves every lr.
            function -- a key of ``FUNCTIONS`` or a ``Landscape``.  steps -- default: the
            function's.  label -- the name shown (default: the name, or the function's).
    """
    fn = FUNCTIONS[function] if isinstance(function, str) else function
    steps = fn.steps if steps is None else steps
    if label is None:
        label = optimizer if isinstance(optimizer, str) else getattr(optimizer, "__name__", "?")
    start = jnp.asarray(fn.start, jnp.float32)
    path, losses = _compiled_run(optimizer, fn, steps)(jnp.float32(learning_rate), start)
    path, losses = np.asarray(path), np.asarray(losses)
    reached = _reached_for_good(losses, fn.threshold)
    x0, x1, y0, y1 = fn.box
    half = max(x1 - x0, y1 - y0) / 2
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    escaped = np.abs(path - centre).max() > fn.bound * half
    diverged = bool(not np.all(np.isfinite(losses)) or escaped)
    multiple, nbytes, scalar_bytes = state_memory(_make(optimizer, learning_rate), start)
    return RaceResult(
        label,
        fn.name,
        float(learning_rate),
        path,
        losses,
        reached,
        diverged,
        multiple,
        nbytes,
        scalar_bytes,
    )


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
    results: dict[str, list[RaceResult]] = {}
    for f in functions:
        if f not in FUNCTIONS:
            raise GradchainError(f"unknown function {f!r}; choose from: {', '.join(FUNCTIONS)}")
        rows = []
        for name in optimizers:
            lr = DEFAULT_LEARNING_RATES[f].get(name, FALLBACK_LEARNING_RATE)
            if isinstance(learning_rates, (int, float)):
                lr = float(learning_rates)
            elif learning_rates:
                lr = learning_rates.get(name, lr)
            rows.append(run_one(name, f, lr, steps))
        results[f] = rows
    return results


def format_table(function: str, rows: Sequence[RaceResult]) -> str:
    """One function's results as a text table (see the module docstring for the columns)."""
    fn = FUNCTIONS[function]
    steps = len(rows[0].losses) - 1 if rows else fn.steps
    goal = " (escaped)" if fn.name == "saddle" else ""
    head = (
        f"{fn.title}   start {fn.start}, {steps} steps; "
        f"'steps': loss <= {fn.threshold:g}{goal} from that step on"
    )
    header = ["optimizer", "lr", "state", "state bytes", "steps", "final loss", "diverged"]
    body = [
        [
            r.optimizer,
            f"{r.learning_rate:g}",
            f"{r.state_multiple:g}x params",
            f"{r.state_bytes} + {r.scalar_bytes}",
            "-" if r.reached is None else str(r.reached),
            f"{r.final_loss:.3g}",
            "yes" if r.diverged else "no",
        ]
        for r in rows
    ]
    widths = [max(len(c) for c in col) for col in zip(header, *body)]
    right = {1, 3, 4, 5}

    def line(cells):
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    rule = "-" * len(line(header))
    foot = "state bytes = per-parameter slots + scalars (step counts, live hyperparameters)"
    return "\n".join([head, rule, line(header), rule, *(line(r) for r in body), foot])


MISSING_MATPLOTLIB = (
    'the plot needs matplotlib, an optional extra: pip install "gradchain[plot]" '
    "(or pip install matplotlib)"
)


def _new_figure(**kwargs):
    """A matplotlib Figure that does not touch pyplot's global state or backend (so it
    saves from a script and displays inline in a notebook alike)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(MISSING_MATPLOTLIB) from None
    return Figure(**kwargs)


def plot_race(results: dict[str, list[RaceResult]], out: str | None = None) -> Any:
    """Draw each function's contours with every optimizer's path (top row) and the loss
    curves (bottom row). Returns the matplotlib Figure, saved as a PNG to ``out`` if given
    (in a notebook, a returned Figure displays itself).

    Raises ImportError with an install hint when matplotlib is missing.
    """
    n = len(results)
    fig = _new_figure(figsize=(4.8 * n, 8.6))  # first: the install hint if matplotlib is missing
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    names = list(dict.fromkeys(r.optimizer for rows in results.values() for r in rows))
    cmap = colormaps["tab10"]
    colour = {name: cmap(i % 10) for i, name in enumerate(names)}
    axes = fig.subplots(2, n, squeeze=False)
    for col, (fname, rows) in enumerate(results.items()):
        fn = FUNCTIONS[fname]
        ax, lax_ = axes[0, col], axes[1, col]
        x0, x1, y0, y1 = fn.box
        xs, ys = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
        zs = np.asarray(jax.vmap(jax.vmap(fn.loss))(jnp.stack([xs, ys], -1)))
        if fn.log_levels:
            levels = np.logspace(np.log10(max(zs.min(), 1e-3)), np.log10(zs.max()), 25)
            ax.contour(xs, ys, np.maximum(zs, 1e-3), levels=levels, cmap="Greys", linewidths=0.6)
        else:
            ax.contour(xs, ys, zs, levels=25, cmap="Greys", linewidths=0.6)
        for r in rows:
            label = f"{r.optimizer} (lr {r.learning_rate:g})"
            ax.plot(r.path[:, 0], r.path[:, 1], "-", lw=1.4, color=colour[r.optimizer])
            ax.plot(r.path[-1, 0], r.path[-1, 1], "o", ms=4, color=colour[r.optimizer])
            steps = np.arange(len(r.losses))
            shown = r.losses - (0.0 if fn.log_levels else fn.threshold)
            lax_.plot(steps, shown, lw=1.3, color=colour[r.optimizer], label=label)
        ax.plot(*fn.start, "ks", ms=6)
        if fn.minimum is not None:
            ax.plot(*fn.minimum, "*", color="gold", mec="k", ms=14)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_title(fn.title, fontsize=10)
        lax_.set_xlabel("step")
        if fn.log_levels:
            lax_.set_yscale("log")
            lax_.set_ylabel("loss (log scale)")
            lax_.axhline(fn.threshold, color="k", ls=":", lw=0.8)
        else:
            lax_.set_yscale("symlog", linthresh=1.0)
            lax_.set_ylabel("loss (symlog scale)")
            lax_.axhline(fn.threshold, color="k", ls=":", lw=0.8)
        lax_.set_title(f"loss; dotted: threshold {fn.threshold:g}", fontsize=9)
        lax_.legend(fontsize=7, loc="best")
        lax_.grid(alpha=0.3)
    handles = [Line2D([], [], color=colour[n], lw=2, label=n) for n in names]
    handles += [
        Line2D([], [], color="k", marker="s", ls="", label="start"),
        Line2D([], [], color="gold", mec="k", marker="*", ms=12, ls="", label="minimum"),
        Line2D([], [], color="grey", marker="o", ls="", ms=4, label="last point"),
    ]
    rows_of_legend = 1 if n >= 3 else 2 if n == 2 else 3
    ncol = math.ceil(len(handles) / rows_of_legend)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=9, frameon=False)
    fig.suptitle("gradchain optimizer race: paths (top) and loss (bottom)", fontsize=12)
    fig.tight_layout(rect=(0, 0.035 * rows_of_legend, 1, 1))
    if out:
        fig.savefig(out, dpi=110)
    return fig


def _parse_learning_rates(text: str | None) -> dict[str, float] | float | None:
    """``"0.01"`` -> 0.01 for every optimizer; ``"adam=0.05,sgd=0.001"`` -> per optimizer."""
    if not text:
        return None

    def number(value: str) -> float:
        try:
            return float(value)
        except ValueError:
            raise GradchainError(
                f"--lr takes one number (0.01) or name=number pairs (adam=0.05,sgd=0.001); "
                f"got {text!r}"
            ) from None

    if "=" not in text:
        return number(text)
    out = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        out[name.strip()] = number(value)
    return out


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the race's options to ``parser`` (the ``race`` subcommand of ``python -m gradchain``)."""
    parser.description = (
        "Race named optimizers on 2-D test functions; print a table per function and draw "
        "their paths."
    )
    parser.add_argument(
        "--optimizers",
        default=",".join(DEFAULT_OPTIMIZERS),
        help="comma-separated names from gradchain.optimizers (default: %(default)s)",
    )
    parser.add_argument(
        "--lr",
        default=None,
        help="one learning rate for all (0.01), or per optimizer (adam=0.05,sgd=0.001); "
        "default: tuned per optimizer and function, see gradchain.teaching.race",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="steps per run (default: per function)"
    )
    parser.add_argument(
        "--function",
        default="all",
        help=f"all, or comma-separated from: {', '.join(FUNCTIONS)} (default: all)",
    )
    parser.add_argument(
        "--out", default="race.png", help="the PNG to write; '' for none (default: race.png)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the race described by parsed ``args``; print the tables; write the PNG. Exit code."""
    functions = list(FUNCTIONS) if args.function in ("all", "") else _split(args.function)
    if args.steps is not None and args.steps < 1:
        raise GradchainError(f"--steps must be >= 1, got {args.steps}")
    began = time.perf_counter()
    results = race(_split(args.optimizers), functions, _parse_learning_rates(args.lr), args.steps)
    for fname, rows in results.items():
        print(format_table(fname, rows), end="\n\n")
    print(f"raced {sum(map(len, results.values()))} runs in {time.perf_counter() - began:.1f} s")
    if args.out:
        try:
            plot_race(results, args.out)
        except ImportError as e:
            print(f"race: no PNG written: {e}", file=sys.stderr)
            return 0
        print(f"wrote {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gradchain.teaching.race [options]``: the race on its own."""
    parser = configure(argparse.ArgumentParser(prog="python -m gradchain race"))
    try:
        return run(parser.parse_args(argv))
    except GradchainError as e:
        parser.error(str(e))  # one line on stderr, exit code 2, as python -m gradchain does
    return 2


if __name__ == "__main__":
    sys.exit(main())
