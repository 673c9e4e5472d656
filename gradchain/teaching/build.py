"""An optimizer from a name and a learning rate, as the race and the training demo take them
(``--optimizers adam,lion --lr adam=0.05``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from gradchain import optimizers
from gradchain._checks import GradchainError

__all__ = [
    "Optimizer",
    "build_optimizer",
    "int_between",
    "parse_learning_rates",
    "parse_names",
    "split_names",
]

Optimizer = str | Callable[[Any], Any]  # a gradchain.optimizers name, or lr -> transform


def build_optimizer(optimizer: Optimizer, learning_rate: Any) -> Any:
    """``gradchain.optimizers.<name>(learning_rate)``, or ``optimizer(learning_rate)`` for a
    function; an unknown name is refused with the choices."""
    if callable(optimizer):
        return optimizer(learning_rate)
    factory = getattr(optimizers, optimizer, None) if optimizer in optimizers.__all__ else None
    if not callable(factory):
        known = ", ".join(sorted(optimizers.__all__))
        raise GradchainError(f"unknown optimizer {optimizer!r}; choose from: {known}")
    return factory(learning_rate)


def split_names(text: str) -> list[str]:
    """``"sgd, adam,"`` -> ``["sgd", "adam"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_names(text: str, option: str = "--optimizers") -> list[str]:
    """``split_names`` for an option that needs at least one name, each given once."""
    names = split_names(text)
    if not names:
        raise GradchainError(f"{option} names no optimizer (got {text!r}); give e.g. sgd,adam")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise GradchainError(f"{option} names {', '.join(map(repr, twice))} twice; name each once")
    return names


def int_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``[low, high]``; argparse names the flag when it
    refuses one (``argument --steps: must be an integer from 1 to 1,000,000, got '0'``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be an integer from {low:,} to {high:,}, got {text!r}"
            )
        return value

    return parse


def parse_learning_rates(
    text: str | None, chosen: Sequence[str]
) -> dict[str, float] | float | None:
    """``--lr``: ``"0.01"`` -> 0.01 for every optimizer; ``"adam=0.05,sgd=0.001"`` -> per
    optimizer, each name one of ``chosen`` (the run's ``--optimizers``); None if empty."""
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
        if name.strip() in out:
            raise GradchainError(
                f"--lr gives {name.strip()!r} a learning rate twice (in {text!r}); give it once"
            )
        out[name.strip()] = number(value)
    unused = [name for name in out if name not in chosen]
    if unused:
        raise GradchainError(
            f"--lr names {', '.join(map(repr, unused))}, not among --optimizers "
            f"({', '.join(chosen)}); add it there or correct the name"
        )
    return out
