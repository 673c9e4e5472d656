"""The race's pictures: each function's contours with every optimizer's path (and the loss
curves), and the sweep's steps and final loss against the learning rate."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradchain.teaching.figure import new_figure
from gradchain.teaching.race.landscapes import FUNCTIONS
from gradchain.teaching.race.lr_sweep import Sweep, best
from gradchain.teaching.race.runner import RaceResult

__all__ = ["plot_race", "plot_sweep"]


def _contours(ax: Any, fname: str) -> None:
    fn = FUNCTIONS[fname]
    x0, x1, y0, y1 = fn.box
    xs, ys = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
    zs = np.asarray(jax.vmap(jax.vmap(fn.loss))(jnp.stack([xs, ys], -1)))
    if fn.log_levels:
        levels = np.logspace(np.log10(max(zs.min(), 1e-3)), np.log10(zs.max()), 25)
        ax.contour(xs, ys, np.maximum(zs, 1e-3), levels=levels, cmap="Greys", linewidths=0.6)
    else:
        ax.contour(xs, ys, zs, levels=25, cmap="Greys", linewidths=0.6)
    ax.plot(*fn.start, "ks", ms=6)
    if fn.minimum is not None:
        ax.plot(*fn.minimum, "*", color="gold", mec="k", ms=14)
    ax.set_xlim(x0, x1)  # the box: a path that leaves it has diverged (but on the saddle)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(fn.title, fontsize=10)


def _colours(names: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {name: cmap(i % 10) for i, name in enumerate(names)}


def _legend(fig: Any, handles: list[Any], n_columns: int) -> int:
    rows_of_legend = 1 if n_columns >= 3 else 2 if n_columns == 2 else 3
    ncol = math.ceil(len(handles) / rows_of_legend)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=9, frameon=False)
    return rows_of_legend


def plot_race(results: dict[str, list[RaceResult]], out: str | None = None) -> Any:
    """Draw each function's contours with every optimizer's path (top row) and the loss
    curves (bottom row). Returns the matplotlib Figure, saved as a PNG to ``out`` if given
    (in a notebook, a returned Figure displays itself).

    Raises ImportError with an install hint when matplotlib is missing.
    """
    n = len(results)
    fig = new_figure(figsize=(4.8 * n, 8.6))  # first: the install hint if matplotlib is missing
    from matplotlib.lines import Line2D

    names = list(dict.fromkeys(r.optimizer for rows in results.values() for r in rows))
    colour = _colours(names)
    axes = fig.subplots(2, n, squeeze=False)
    for col, (fname, rows) in enumerate(results.items()):
        fn = FUNCTIONS[fname]
        ax, lax_ = axes[0, col], axes[1, col]
        _contours(ax, fname)
        for r in rows:
            label = f"{r.optimizer} (lr {r.learning_rate:g})" + (", diverged" if r.diverged else "")
            ax.plot(r.path[:, 0], r.path[:, 1], "-", lw=1.4, color=colour[r.optimizer])
            ax.plot(r.path[-1, 0], r.path[-1, 1], "o", ms=4, color=colour[r.optimizer])
            shown = r.losses - (0.0 if fn.log_levels else fn.threshold)
            lax_.plot(
                np.arange(len(r.losses)), shown, lw=1.3, color=colour[r.optimizer], label=label
            )
        lax_.set_xlabel("step")
        if fn.log_levels:
            lax_.set_yscale("log")
            lax_.set_ylabel("loss (log scale)")
        else:
            lax_.set_yscale("symlog", linthresh=1.0)
            lax_.set_ylabel("loss (symlog scale)")
        lax_.axhline(fn.threshold, color="k", ls=":", lw=0.8)
        lax_.set_title(f"loss; dotted: threshold {fn.threshold:g}", fontsize=9)
        lax_.legend(fontsize=7, loc="best")
        lax_.grid(alpha=0.3)
    handles = [Line2D([], [], color=colour[name], lw=2, label=name) for name in names]
    handles += [
        Line2D([], [], color="k", marker="s", ls="", label="start"),
        Line2D([], [], color="gold", mec="k", marker="*", ms=12, ls="", label="minimum"),
        Line2D([], [], color="grey", marker="o", ls="", ms=4, label="last point"),
    ]
    rows_of_legend = _legend(fig, handles, n)
    fig.suptitle("gradchain optimizer race: paths (top) and loss (bottom)", fontsize=12)
    fig.tight_layout(rect=(0, 0.035 * rows_of_legend, 1, 1))
    if out:
        fig.savefig(out, dpi=110)
    return fig


def plot_sweep(results: Sweep, out: str | None = None) -> Any:
    """Per function, steps to the threshold (top) and final loss (bottom) against the
    learning rate, a line per optimizer; diverged runs are left out, each optimizer's best
    is ringed. Returns the matplotlib Figure, saved as a PNG to ``out`` if given."""
    n = len(results)
    fig = new_figure(figsize=(4.8 * n, 8.0))
    from matplotlib.lines import Line2D

    names = list(dict.fromkeys(name for runs in results.values() for name in runs))
    colour = _colours(names)
    axes = fig.subplots(2, n, squeeze=False)
    for col, (fname, per_optimizer) in enumerate(results.items()):
        fn = FUNCTIONS[fname]
        top, bottom = axes[0, col], axes[1, col]
        for name, runs in per_optimizer.items():
            lr = np.array([r.learning_rate for r in runs])
            ok = np.array([not r.diverged for r in runs])
            steps = np.array([np.nan if r.reached is None else r.reached for r in runs], float)
            final = np.array([r.final_loss for r in runs])
            top.plot(lr, np.where(ok, steps, np.nan), "o-", ms=3, lw=1.2, color=colour[name])
            shown = final - (0.0 if fn.log_levels else fn.threshold)
            bottom.plot(lr, np.where(ok, shown, np.nan), "o-", ms=3, lw=1.2, color=colour[name])
            b = best(runs)
            if not b.diverged:
                if b.reached is not None:
                    top.plot(b.learning_rate, b.reached, "o", ms=9, mfc="none", color=colour[name])
                b_shown = b.final_loss - (0.0 if fn.log_levels else fn.threshold)
                bottom.plot(b.learning_rate, b_shown, "o", ms=9, mfc="none", color=colour[name])
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.set_xlabel("learning rate")
            ax.grid(alpha=0.3)
        top.set_ylabel("steps to the threshold (missing: never)")
        top.set_title(fn.title, fontsize=10)
        if fn.log_levels:
            bottom.set_yscale("log")
            bottom.set_ylabel("final loss (log scale)")
        else:
            bottom.set_yscale("symlog", linthresh=1.0)
            bottom.set_ylabel("final loss - threshold (symlog)")
        bottom.set_title("final loss; missing: diverged; ringed: best", fontsize=9)
    handles = [Line2D([], [], color=colour[name], lw=2, label=name) for name in names]
    rows_of_legend = _legend(fig, handles, n)
    fig.suptitle("gradchain learning-rate sweep: steps (top) and final loss (bottom)", fontsize=12)
    fig.tight_layout(rect=(0, 0.035 * rows_of_legend, 1, 1))
    if out:
        fig.savefig(out, dpi=110)
    return fig
