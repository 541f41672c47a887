"""The sandbox's token secret: the HS256 key its authorizer verifies and ``token`` signs with.

``CLASSROOM_TOKEN_SECRET`` wins when set (CI, a shared team secret). Otherwise the secret is made
once and kept in the user's config folder, readable by the user only, so tokens minted by
``classroom-console token`` keep working across sandbox restarts. The value never reaches a log
or a ``repr``.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from desktop.services.errors import ConfigurationError
from desktop.services.paths import config_dir

SECRET_ENV = "CLASSROOM_TOKEN_SECRET"
SECRET_FILE = "sandbox-token-secret"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenSecret:
    value: str = field(repr=False)
    location: str


def secret_path() -> Path:
    return config_dir() / SECRET_FILE


def load() -> TokenSecret:
    """The secret from the environment, else from its file, made on first use."""
    from_env = os.environ.get(SECRET_ENV)
    if from_env:
        return TokenSecret(from_env, SECRET_ENV)
    path = secret_path()
    try:
        return TokenSecret(_read(path), str(path))
    except FileNotFoundError:
        pass
    return TokenSecret(_create(path), str(path))


def _read(path: Path) -> str:
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise ConfigurationError(
            f"The sandbox token secret file {path} is empty.",
            hint="Delete it and a new secret is made, or set CLASSROOM_TOKEN_SECRET.",
        )
    if sys.platform != "win32" and path.stat().st_mode & 0o077:
        log.warning("%s was readable by others; making it readable by you only", path)
        path.chmod(0o600)
    return value


def _read_when_written(path: Path) -> str:
    """Another process just created the file; give it a moment to write the secret."""
    for _ in range(40):
        if path.stat().st_size:
            break
        time.sleep(0.025)
    return _read(path)


def _create(path: Path) -> str:
    value = secrets.token_urlsafe(48)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: when two processes race, one writes and the other reads what it wrote.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_when_written(path)
    except OSError as error:
        raise ConfigurationError(
            f"Cannot write the sandbox token secret to {path}: {error.strerror}.",
            hint="Set CLASSROOM_TOKEN_SECRET or CLASSROOM_CONSOLE_CONFIG_DIR.",
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value
