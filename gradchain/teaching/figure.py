"""Figures for the teaching applications: made without pyplot, saved where the user asked.

matplotlib is an optional extra (``pip install "gradchain[plot]"``); the applications print
their tables without it, and say how to install it.
"""

from __future__ import annotations

import os
import stat
import tempfile
from typing import Any

from gradchain._checks import GradchainError

__all__ = ["FIGURE_SUFFIXES", "MISSING_MATPLOTLIB", "check_output_path", "new_figure"]

# what matplotlib writes with its own backends and Pillow (which it requires); a path without
# a suffix gets ".png", as matplotlib's savefig would give it
FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")

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


def check_output_path(path: str, option: str = "--out") -> str:
    """Refuse, before any work is done, a figure path that cannot be written: a suffix
    matplotlib cannot write, a missing or unwritable folder, an existing file that is not a
    regular file (``/dev/full``). Returns the path the figure will have: ``path``, with
    ``.png`` added when it has no suffix (``--out plot`` writes ``plot.png``)."""
    suffix = os.path.splitext(path)[1]
    if not suffix:
        path += ".png"
    elif suffix.lower() not in FIGURE_SUFFIXES:
        raise GradchainError(
            f"{option} {path!r}: cannot write a {suffix} figure; end the name in one of "
            f"{', '.join(FIGURE_SUFFIXES)} (or give no suffix for .png)"
        )
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise GradchainError(f"{option} {path!r} is a folder; give a file name, e.g. race.png")
    if not os.path.isdir(folder):
        raise GradchainError(f"{option} {path!r}: the folder {folder!r} does not exist")
    if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
        raise GradchainError(
            f"{option} {path!r} exists and is not a regular file; give a file name to write"
        )
    try:  # os.access says yes to root, and knows nothing of read-only or full file systems
        with tempfile.TemporaryFile(dir=folder) as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as e:
        raise GradchainError(
            f"{option} {path!r}: cannot write in the folder {folder!r} "
            f"({e.strerror or e}); choose another place"
        ) from None
    return path
