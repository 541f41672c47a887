"""``python -m desktop``: the same as the ``classroom-console`` command."""

import sys

from desktop.cli import main

sys.exit(main())
