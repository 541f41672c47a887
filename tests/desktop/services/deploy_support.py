"""What the deploy tests share: a private copy of the backend to package, and test templates."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
TEMPLATES = Path(__file__).resolve().parent / "templates"


def copy_backend(destination: Path, *, unique: bool = False) -> Path:
    """A source root holding a copy of the repo's ``backend/``; ``unique`` makes its hash new."""
    shutil.copytree(
        REPO / "backend",
        destination / "backend",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    if unique:
        (destination / "backend" / "build_marker.py").write_text(f'BUILD = "{uuid.uuid4()}"\n')
    return destination


def stack_name(prefix: str = "cc-test") -> str:
    """A stack name no other test uses (the moto server lives for the whole session)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
