"""The race's tables: one per function for a race, one per function for a sweep."""

from __future__ import annotations

from collections.abc import Sequence

from gradchain import text_table as table
from gradchain.teaching.race.defaults import default_learning_rate
from gradchain.teaching.race.landscapes import FUNCTIONS
from gradchain.teaching.race.lr_sweep import best
from gradchain.teaching.race.runner import RaceResult

__all__ = ["format_sweep", "format_table"]


def _goal(function: str, steps: int) -> str:
    fn = FUNCTIONS[function]
    goal = " (escaped)" if fn.name == "saddle" else ""
    return (
        f"{fn.title}   start {fn.start}, {steps} steps; "
        f"'steps': loss <= {fn.threshold:g}{goal} from that step on"
    )


def format_table(function: str, rows: Sequence[RaceResult]) -> str:
    """One function's race as a text table.

    Columns: optimizer, lr; state -- the per-parameter state as a multiple of the params;
    state bytes -- per-parameter slots + scalars for these 2 float32 parameters; steps --
    the step from which the loss stays <= the threshold, '-' if it is above at the end;
    final loss; diverged -- the loss went non-finite or the path left the plotted box.
    """
    steps = len(rows[0].losses) - 1 if rows else FUNCTIONS[function].steps
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
    return table.format_table(
        header,
        body,
        right={1, 3, 4, 5},
        title=_goal(function, steps),
        note="state bytes = per-parameter slots + scalars (step counts, live hyperparameters)",
    )


def _cell(r: RaceResult, is_best: bool) -> str:
    if r.diverged:
        text = "x"
    elif r.reached is not None:
        text = str(r.reached)
    else:
        text = f"({r.final_loss:.1g})"
    return text + ("*" if is_best else " ")


def format_sweep(function: str, runs: dict[str, list[RaceResult]]) -> str:
    """One function's sweep: a row per learning rate, a column per optimizer. A cell is the
    steps to the threshold, (the final loss) where it is not reached, ``x`` where the run
    diverged; ``*`` marks each optimizer's best, and the last row its default."""
    names = list(runs)
    lrs = [r.learning_rate for r in runs[names[0]]]
    steps = len(runs[names[0]][0].losses) - 1
    winners = {name: best(runs[name]) for name in names}
    body = [
        [f"{lr:g}", *(_cell(runs[n][i], runs[n][i] is winners[n]) for n in names)]
        for i, lr in enumerate(lrs)
    ]
    body.append(["default", *(f"{default_learning_rate(function, n):g} " for n in names)])
    return table.format_table(
        ["lr", *names],
        body,
        right=set(range(len(names) + 1)),
        title=_goal(function, steps),
        note="steps to the threshold; (final loss) if never reached; x: diverged; *: best",
    )
