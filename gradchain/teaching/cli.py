"""``python -m gradchain``: the memory ladder and the named optimizers, explained.

Subcommands are listed in ``COMMANDS``: a name, a one-line help, and where the command lives
-- a module (or ``module:object``) with ``configure(parser)`` and ``run(args) -> int``. Only
the chosen command's module is imported, so one command's import cost (or failure) never
touches another. Adding a command is one line, e.g.
``Command("race", "race optimizers on a test problem", "gradchain.teaching.race")``.

Bad input (an unknown optimizer, a malformed shapes string) ends with a one-line message on
stderr and exit code 2, as argparse does for its own errors.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import inspect
import sys
import types
from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = ["COMMANDS", "Command", "main"]

PROG = "python -m gradchain"


class Command(NamedTuple):
    name: str
    help: str
    target: str  # "package.module" or "package.module:object", with configure() and run()


COMMANDS: list[Command] = [
    Command(
        "race",
        "race optimizers on 2-D test functions (tables + race.png)",
        "gradchain.teaching.race",
    ),
    Command(
        "train",
        "train an MLP on two spirals with each optimizer (train.png)",
        "gradchain.teaching.train_demo",
    ),
    Command(
        "memory",
        "the optimizer ladder's state memory for a model size",
        "gradchain.teaching.cli:MEMORY",
    ),
    Command(
        "explain",
        "a named optimizer's chain, equations and memory",
        "gradchain.teaching.cli:EXPLAIN",
    ),
]

DTYPES = ("float32", "bfloat16", "float16", "float64")
_SUFFIXES = {"k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}
MAX_PARAMS = 10**14  # 100T: far past any model, and its most square matrix is found in ~1 s


# --- argument types: each raises ArgumentTypeError, which argparse turns into exit 2 ------


def parse_count(text: str) -> int:
    """A parameter count: ``1000000``, ``1_000_000``, ``1e6``, ``7B``, ``125M``, ``70b``."""
    raw = text.strip().replace("_", "").replace(",", "")
    scale = _SUFFIXES.get(raw[-1:].lower(), 1) if raw else 1
    number = raw[:-1] if scale != 1 else raw
    try:
        value = float(number) * scale
    except ValueError:
        value = -1.0
    if not (1 <= value <= MAX_PARAMS and value == int(value)):  # NaN and inf fail here too
        raise argparse.ArgumentTypeError(
            f"expected a whole number of parameters from 1 to {MAX_PARAMS:.0e} (e.g. 1000000, "
            f"1e6, 125M, 7B), got {text!r}"
        )
    return int(value)


def parse_shapes(text: str) -> list[tuple[int, ...]]:
    """Leaf shapes separated by commas, dimensions by ``x``: ``784x256,256,256x10,10``."""
    shapes = []
    for part in text.split(","):
        dims = part.strip().lower().split("x")
        if not all(d.strip().isdigit() and int(d) > 0 for d in dims):
            raise argparse.ArgumentTypeError(
                f"bad shape {part.strip()!r} in {text!r}: write each leaf's shape as positive "
                "integers joined by 'x', leaves separated by commas, e.g. 784x256,256,256x10,10"
            )
        shapes.append(tuple(int(d) for d in dims))
    return shapes


def _model_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    size = parser.add_mutually_exclusive_group(required=required)
    size.add_argument(
        "--params",
        type=parse_count,
        metavar="N",
        help="number of parameters (accepts 1e6, 125M, 7B, 70B), taken as one matrix as square "
        "as N allows (1000000 -> 1000x1000), so that factored optimizers see a matrix",
    )
    size.add_argument(
        "--shapes",
        type=parse_shapes,
        metavar="SHAPES",
        help="the model's leaf shapes, e.g. 784x256,256,256x10,10 (an MLP's weights and biases)",
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default="float32",
        help="the parameters' dtype (default float32); moments follow it unless set apart",
    )


def _model(args: argparse.Namespace, default_count: int | None = None) -> Any:
    """The parameters the arguments describe, as ShapeDtypeStructs (nothing allocated)."""
    import jax
    import jax.numpy as jnp

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.dtype(args.dtype)
    if getattr(args, "shapes", None):
        return [jax.ShapeDtypeStruct(s, dtype) for s in args.shapes]
    from gradchain.ladder import model_of_size

    return model_of_size(args.params or default_count, dtype)


class _BadInput(Exception):
    """Input that argparse could not check by itself; reported like argparse's errors."""


def _optimizer_names() -> list[str]:
    from gradchain import optimizers

    return sorted(n for n in optimizers.__all__ if callable(getattr(optimizers, n, None)))


def _check_optimizer(name: str) -> str:
    names = _optimizer_names()
    if name in names:
        return name
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise _BadInput(
        f"unknown optimizer {name!r}; {hint}the named optimizers are: {', '.join(names)}"
    )


# --- memory --------------------------------------------------------------------------------


def _memory_configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print how much optimizer state each named optimizer keeps for a model: the ladder "
        "SGD -> momentum -> Nesterov -> AdaGrad -> RMSProp -> Adam -> AdamW -> AMSGrad (with "
        "Lion, Adamax, NAdam beside it), the slot each adds over the one before, and the "
        "bytes. With --optimizer, the slot-by-slot report of that optimizer instead. "
        "Computed from shapes only: 70B parameters cost nothing to describe."
    )
    parser.epilog = (
        "examples:\n"
        f"  {PROG} memory --params 1000000\n"
        f"  {PROG} memory --params 7B --dtype bfloat16\n"
        f"  {PROG} memory --shapes 784x256,256,256x10,10 --optimizer adam\n"
        f"  {PROG} memory --params 1e6 --optimizer adam --mu-dtype bfloat16 --nu-dtype bfloat16"
    )
    _model_arguments(parser, required=True)
    parser.add_argument(
        "--optimizer",
        action="append",
        metavar="NAME",
        help="show this optimizer's slot-by-slot report (repeatable); see 'explain' for names",
    )
    for slot in ("mu", "nu"):
        parser.add_argument(
            f"--{slot}-dtype",
            choices=DTYPES,
            help=f"with --optimizer: store {slot} in this dtype and show the bytes it saves",
        )


def _memory_run(args: argparse.Namespace) -> int:
    from gradchain import ladder, memory

    moment_dtypes = {f"{s}_dtype": getattr(args, f"{s}_dtype") for s in ("mu", "nu")}
    moment_dtypes = {k: v for k, v in moment_dtypes.items() if v}
    if moment_dtypes and not args.optimizer:
        flags = " and ".join(f"--{k.replace('_', '-')}" for k in moment_dtypes)
        raise _BadInput(
            f"{flags} without --optimizer would be ignored: the dtype applies to one "
            "optimizer's report; add --optimizer NAME (e.g. --optimizer adam)"
        )
    params = _model(args)
    if not args.optimizer:
        print(ladder.hierarchy(params))
        return 0
    for i, name in enumerate(args.optimizer):
        report = memory.memory_report(ladder.named_optimizer(_check_optimizer(name)), params)
        print(("\n" if i else "") + str(report))
        if moment_dtypes:
            smaller = memory.memory_report(_built(name, moment_dtypes), params)
            print(f"\n{name}({', '.join(f'{k}={v}' for k, v in moment_dtypes.items())}):")
            print(memory.compare(report, smaller))
    return 0


def _built(name: str, moment_dtypes: dict[str, str]) -> Any:
    from gradchain import ladder, optimizers

    accepted = inspect.signature(getattr(optimizers, name)).parameters
    refused = [k for k in moment_dtypes if k not in accepted]
    if refused:
        raise _BadInput(f"{name} has no {' or '.join(refused)} option")
    return ladder.named_optimizer(name, **moment_dtypes)


MEMORY = types.SimpleNamespace(configure=_memory_configure, run=_memory_run)


# --- explain -------------------------------------------------------------------------------


def _explain_configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Show a named optimizer as the chain it is: each transform's update equation (from "
        "its docstring), its reference, and the memory it adds for a model size."
    )
    parser.epilog = f"examples:\n  {PROG} explain adamw\n  {PROG} explain lion --params 7B"
    parser.add_argument("name", metavar="NAME", help="a named optimizer, e.g. adam, adamw, lion")
    _model_arguments(parser, required=False)


def _explain_run(args: argparse.Namespace) -> int:
    from gradchain.teaching.explain import explain

    print(explain(_check_optimizer(args.name), _model(args, default_count=1_000_000)))
    return 0


EXPLAIN = types.SimpleNamespace(configure=_explain_configure, run=_explain_run)


# --- the entry point -----------------------------------------------------------------------


def _load(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


def build_parser(chosen: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, Any]]:
    """The top-level parser; only the ``chosen`` command's module is imported and configured.
    Returns the parser and ``{name: subparser}``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="gradchain: composable gradient transformations for JAX. "
        "See what each optimizer is made of and what memory it keeps.",
        epilog=f"'{PROG} COMMAND --help' explains each command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    subparsers = {}
    for command in COMMANDS:
        p = sub.add_parser(
            command.name,
            help=command.help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        subparsers[command.name] = p
        if command.name == chosen:
            try:
                _load(command.target).configure(p)
            except ImportError as e:
                parser.error(f"the {command.name!r} command is not available: {e}")
    return parser, subparsers


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m gradchain`` with ``argv`` (default ``sys.argv[1:]``); return the exit
    code. Errors in the input exit with code 2 and a message on stderr."""
    argv = list(sys.argv[1:] if argv is None else argv)
    names = {c.name for c in COMMANDS}
    chosen = next((a for a in argv if a in names), None)
    parser, subparsers = build_parser(chosen)
    args = parser.parse_args(argv)
    command = next(c for c in COMMANDS if c.name == args.command)
    from gradchain._checks import GradchainError

    try:
        return int(_load(command.target).run(args) or 0)
    except (_BadInput, GradchainError) as e:
        subparsers[command.name].error(str(e))
    return 2  # unreachable: error() exits
