"""``python -m gradchain.teaching.race``: the same as ``python -m gradchain race``."""

import sys

from gradchain.teaching.race.command import main

sys.exit(main())
