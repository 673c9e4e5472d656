"""Figures for the teaching applications: made without pyplot, saved where the user asked.

matplotlib is an optional extra (``pip install "gradchain[plot]"``); the applications print
their tables without it, and say how to install it.
"""

from __future__ import annotations

import os
from typing import Any

from gradchain._checks import GradchainError

__all__ = ["MISSING_MATPLOTLIB", "check_output_path", "new_figure"]

MISSING_MATPLOTLIB = (
    'the plot needs matplotlib, an optional extra: pip install "gradchain[plot]" '
    "(or pip install matplotlib)"
)


def new_figure(**kwargs: Any) -> Any:
    """A matplotlib Figure that does not touch pyplot's global state or backend (so it saves
    from a script and displays inline in a notebook alike). ImportError with the install
    hint when matplotlib is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(MISSING_MATPLOTLIB) from None
    return Figure(**kwargs)


def check_output_path(path: str, option: str = "--out") -> None:
    """Refuse, before any work is done, a PNG path whose folder is missing or not writable."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise GradchainError(f"{option} {path!r} is a folder; give a file name, e.g. race.png")
    if not os.path.isdir(folder):
        raise GradchainError(f"{option} {path!r}: the folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise GradchainError(f"{option} {path!r}: the folder {folder!r} is not writable")
