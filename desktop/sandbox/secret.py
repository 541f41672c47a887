"""The sandbox's token secret (the HS256 key its authorizer verifies and ``token`` signs with),
and its admin key (what the console presents to ``/_admin`` and ``/_metrics``).

``CLASSROOM_TOKEN_SECRET`` wins when set (CI, a shared team secret). Otherwise the secret is made
once and kept in the user's config folder, readable by the user only, so tokens minted by
``classroom-console token`` keep working across sandbox restarts. The value never reaches a log
or a ``repr``.

The admin key is made the same way, beside the secret (``sandbox-admin-key``), with no
environment override: any process of the user's can read it, and no other user's can, which is
the point. Loopback alone is not: every user and every browser tab on the machine can reach
127.0.0.1.
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
ADMIN_KEY_FILE = "sandbox-admin-key"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenSecret:
    value: str = field(repr=False)
    location: str


@dataclass(frozen=True)
class AdminKey:
    value: str = field(repr=False)
    location: str


@dataclass(frozen=True)
class _Kind:
    """What a kept file holds, for its error sentences, and how many random bytes it has."""

    name: str
    when_empty: str
    when_unwritable: str
    size: int


_TOKEN_SECRET = _Kind(
    "sandbox token secret",
    "Delete it and a new secret is made, or set CLASSROOM_TOKEN_SECRET.",
    "Set CLASSROOM_TOKEN_SECRET or CLASSROOM_CONSOLE_CONFIG_DIR.",
    48,
)
_ADMIN_KEY = _Kind(
    "sandbox admin key",
    "Delete it and a new key is made (restart the sandbox).",
    "Set CLASSROOM_CONSOLE_CONFIG_DIR to a folder you can write.",
    32,
)


def secret_path() -> Path:
    return config_dir() / SECRET_FILE


def admin_key_path() -> Path:
    return config_dir() / ADMIN_KEY_FILE


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


def load_admin_key() -> AdminKey:
    """The admin key from its file, made on first use (``secrets.token_urlsafe(32)``)."""
    path = admin_key_path()
    try:
        return AdminKey(_read(path, _ADMIN_KEY), str(path))
    except FileNotFoundError:
        pass
    return AdminKey(_create(path, _ADMIN_KEY), str(path))


def _read(path: Path, kind: _Kind = _TOKEN_SECRET) -> str:
    value = _written(path).strip()
    if not value:
        raise ConfigurationError(f"The {kind.name} file {path} is empty.", hint=kind.when_empty)
    if sys.platform != "win32" and path.stat().st_mode & 0o077:
        log.warning("%s was readable by others; making it readable by you only", path)
        path.chmod(0o600)
    return value


def _written(path: Path) -> str:
    """The file's text, once whole: another process (or thread) may have just created it and
    not yet written its line, so one that does not end in a newline gets a moment more."""
    for _ in range(40):
        text = path.read_text(encoding="utf-8")
        if text.endswith("\n"):
            break
        time.sleep(0.025)
    return text


def _create(path: Path, kind: _Kind = _TOKEN_SECRET) -> str:
    value = secrets.token_urlsafe(kind.size)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: when two processes race, one writes and the other reads what it wrote.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path, kind)
    except OSError as error:
        raise ConfigurationError(
            f"Cannot write the {kind.name} to {path}: {error.strerror}.",
            hint=kind.when_unwritable,
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value
