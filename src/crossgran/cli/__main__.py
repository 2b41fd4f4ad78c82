"""``python -m crossgran.cli``: the same as the ``crossgran`` command."""

import sys

from crossgran.cli import main

sys.exit(main())
