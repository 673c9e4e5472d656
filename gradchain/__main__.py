"""``python -m gradchain``: see ``gradchain.teaching.cli``."""

import os
import sys

from gradchain.teaching.cli import main

try:
    code = main()
    sys.stdout.flush()
except BrokenPipeError:  # the output was piped into a reader that stopped early (`| head`)
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    code = 0
raise SystemExit(code)
