"""``python -m gradchain race``: the race (or, with ``--sweep``, the learning-rate sweep)
from the shell -- tables on stdout, a PNG with ``--out``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from gradchain._checks import GradchainError
from gradchain.teaching.build import int_between, parse_learning_rates, parse_names, split_names
from gradchain.teaching.figure import check_output_path
from gradchain.teaching.race.defaults import DEFAULT_OPTIMIZERS, GRID
from gradchain.teaching.race.landscapes import FUNCTIONS
from gradchain.teaching.race.lr_sweep import sweep
from gradchain.teaching.race.plots import plot_race, plot_sweep
from gradchain.teaching.race.runner import race
from gradchain.teaching.race.tables import format_sweep, format_table

__all__ = ["MAX_STEPS", "configure", "main", "run"]

MAX_STEPS = 1_000_000  # each run keeps its whole path: 1e6 steps is ~16 MB per optimizer


def configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the race's options to ``parser`` (the ``race`` subcommand of ``python -m gradchain``)."""
    parser.description = (
        "Race named optimizers on 2-D test functions; print a table per function and draw "
        "their paths. With --sweep, run each at every learning rate of a grid instead."
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
        "default: the best of the sweep per optimizer and function, see --sweep",
    )
    parser.add_argument(
        "--steps",
        type=int_between(1, MAX_STEPS),
        default=None,
        help=f"steps per run, at most {MAX_STEPS:,} (default: per function)",
    )
    parser.add_argument(
        "--function",
        default="all",
        help=f"all, or comma-separated from: {', '.join(FUNCTIONS)} (default: all)",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help=f"run every learning rate of the grid {GRID[0]:g} .. {GRID[-1]:g} (four a "
        "decade); print steps and final loss per lr; plot them against the lr",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="the figure to write (.png, .pdf, .svg, .jpg; no suffix: .png); '' for none "
        "(default: race.png, or sweep.png with --sweep)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the race (or sweep) described by parsed ``args``; print the tables; write the PNG.
    Bad input raises GradchainError before anything runs. Returns the exit code."""
    out = ("sweep.png" if args.sweep else "race.png") if args.out is None else args.out
    if out:
        out = check_output_path(out)  # with .png added if it had no suffix
    functions = list(FUNCTIONS) if args.function in ("all", "") else split_names(args.function)
    unknown = [f for f in functions if f not in FUNCTIONS]
    if unknown:
        raise GradchainError(
            f"unknown function {unknown[0]!r}; choose from: {', '.join(FUNCTIONS)}"
        )
    if args.sweep and args.lr:
        raise GradchainError("--lr and --sweep do not combine: the sweep tries every rate")
    optimizers = parse_names(args.optimizers)
    learning_rates = parse_learning_rates(args.lr, optimizers)
    began = time.perf_counter()
    if args.sweep:
        results = sweep(optimizers, functions, GRID, args.steps)
        for fname, runs in results.items():
            print(format_sweep(fname, runs), end="\n\n")
        runs = sum(len(r) for per in results.values() for r in per.values())
    else:
        results = race(optimizers, functions, learning_rates, args.steps)
        for fname, rows in results.items():
            print(format_table(fname, rows), end="\n\n")
        runs = sum(map(len, results.values()))
    print(f"ran {runs} runs in {time.perf_counter() - began:.1f} s")
    if out:
        try:
            (plot_sweep if args.sweep else plot_race)(results, out)
        except ImportError as e:
            print(f"race: no PNG written: {e}", file=sys.stderr)
            return 0
        except OSError as e:  # the folder was checked; the disk may have filled up since
            raise GradchainError(
                f"--out {out!r}: writing the figure failed ({e.strerror or e})"
            ) from None
        print(f"wrote {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gradchain.teaching.race [options]``: the race on its own."""
    parser = configure(argparse.ArgumentParser(prog="python -m gradchain race"))
    try:
        return run(parser.parse_args(argv))
    except GradchainError as e:
        parser.error(str(e))  # one line on stderr, exit code 2, as python -m gradchain does
    return 2
