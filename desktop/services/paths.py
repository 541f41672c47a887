"""Where the console keeps its own files, per platform, without ``platformdirs``.

``CLASSROOM_CONSOLE_CONFIG_DIR`` overrides the location (tests point it at a temporary folder).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CONFIG_DIR_ENV = "CLASSROOM_CONSOLE_CONFIG_DIR"
APP_NAME = "Classroom Console"


def config_dir() -> Path:
    """The user's config folder for the console; callers create it when they first write."""
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        appdata = os.environ.get("APPDATA")
        base = Path(appdata) if appdata else Path.home() / "AppData" / "Roaming"
        return base / APP_NAME
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP_NAME
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / "classroom-console"
