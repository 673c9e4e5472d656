"""The errors gradchain raises for input it refuses. All are ``ValueError``s; ``ArgumentError``
is also a ``TypeError``."""

from __future__ import annotations

from typing import Any

__all__ = ["ArgumentError", "CheckpointError", "GradchainError"]


class GradchainError(ValueError):
    """Raised for input that gradchain refuses: wrong trees, wrong states, wrong values.

    A refused hyperparameter also carries ``argument`` (the name it was checked under) and
    ``value`` (what was given), so that ``names_arguments`` can report it by the name the
    user typed."""

    argument: str | None = None
    value: Any = None

    __module__ = "gradchain"  # shown as gradchain.GradchainError: where users import it


class CheckpointError(GradchainError):
    """Raised by ``gradchain.checkpoint`` for a file it will not restore: damaged, crafted,
    written in another format version, or not matching the targets. The message names the
    file and the problem."""

    __module__ = "gradchain.checkpoint"


class ArgumentError(GradchainError, TypeError):
    """Raised for a call missing an argument the update needs (``value=`` for a Polyak step,
    the objective for a line search) or given keyword arguments nobody takes: a
    ``GradchainError`` that is also the ``TypeError`` Python (and Optax) raise for such
    calls. The message names the argument."""

    __module__ = "gradchain"
