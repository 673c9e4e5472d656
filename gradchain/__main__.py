"""``python -m gradchain``: see ``gradchain.cli``."""

from gradchain.cli import main

raise SystemExit(main())
