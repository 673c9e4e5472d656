"""An optimizer from a name and a learning rate, as the race and the training demo take them
(``--optimizers adam,lion --lr adam=0.05``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gradchain import optimizers
from gradchain._checks import GradchainError

__all__ = ["Optimizer", "build_optimizer", "parse_learning_rates", "split_names"]

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
        out[name.strip()] = number(value)
    unused = [name for name in out if name not in chosen]
    if unused:
        raise GradchainError(
            f"--lr names {', '.join(map(repr, unused))}, not among --optimizers "
            f"({', '.join(chosen)}); add it there or correct the name"
        )
    return out
