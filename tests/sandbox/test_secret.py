"""The sandbox's admin key: made once beside the token secret, readable by the user only."""

from __future__ import annotations

import logging
import os
import stat
import sys
import threading
from pathlib import Path

import pytest

from desktop.sandbox import secret
from desktop.services.errors import ConfigurationError
from desktop.services.paths import CONFIG_DIR_ENV

POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path / "config"))
    monkeypatch.delenv(secret.SECRET_ENV, raising=False)
    return tmp_path / "config"


def test_the_admin_key_is_made_once(folder):
    made = secret.load_admin_key()
    path = folder / "sandbox-admin-key"
    assert made.location == str(path) == str(secret.admin_key_path())
    assert len(made.value) == 43  # token_urlsafe(32)
    assert path.read_text(encoding="utf-8") == made.value + "\n"
    assert made.value not in repr(made)
    assert secret.load_admin_key() == made


@POSIX_ONLY
def test_the_admin_key_is_readable_by_the_user_only(folder, caplog):
    path = Path(secret.load_admin_key().location)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="desktop.sandbox.secret"):
        secret.load_admin_key()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "readable by others" in caplog.text


def test_the_admin_key_is_not_the_token_secret(folder, monkeypatch):
    key = secret.load_admin_key()
    token_secret = secret.load()
    assert key.value != token_secret.value
    assert Path(key.location).parent == Path(token_secret.location).parent
    # The token secret's environment variable leaves the admin key alone.
    monkeypatch.setenv(secret.SECRET_ENV, "from-the-environment")
    assert secret.load_admin_key() == key


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="XDG is Linux's")
def test_the_admin_key_follows_the_config_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(CONFIG_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    made = secret.load_admin_key()
    assert made.location == str(tmp_path / "xdg" / "classroom-console" / "sandbox-admin-key")


def test_an_empty_admin_key_file_is_a_sentence(folder):
    folder.mkdir()
    (folder / "sandbox-admin-key").write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigurationError) as refused:
        secret.load_admin_key()
    assert "sandbox admin key file" in str(refused.value)


@POSIX_ONLY
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_folder_is_a_sentence(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    monkeypatch.setenv(CONFIG_DIR_ENV, str(locked))
    with pytest.raises(ConfigurationError) as refused:
        secret.load_admin_key()
    assert "Cannot write the sandbox admin key" in str(refused.value)


@pytest.mark.parametrize("loader", [secret.load_admin_key, secret.load])
def test_racing_loaders_agree(folder, loader):
    """One creates the file; the others read it, never while it is still empty."""
    start = threading.Barrier(8)
    found: list[str] = []

    def load() -> None:
        start.wait()
        found.append(loader().value)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8 and len(set(found)) == 1
