"""``python -m desktop``: the same as the ``classroom-console`` command."""

import multiprocessing
import sys

from desktop.cli import main

if __name__ == "__main__":
    # The sandbox spawns worker processes; a frozen (PyInstaller) build starts them through
    # this executable, and freeze_support() runs the worker instead of the console there.
    multiprocessing.freeze_support()
    sys.exit(main())
