"""Where the console keeps its files, and the stack outputs remembered per environment."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from desktop.services import paths
from desktop.services.outputs_store import OutputsStore, environment_key


def test_config_dir_honours_the_override(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.CONFIG_DIR_ENV, str(tmp_path / "console"))
    assert paths.config_dir() == tmp_path / "console"


def test_config_dir_follows_each_platforms_convention(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.CONFIG_DIR_ENV, raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    monkeypatch.setattr(sys, "platform", "linux")
    assert paths.config_dir() == tmp_path / ".config" / "classroom-console"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert paths.config_dir() == tmp_path / "xdg" / "classroom-console"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert paths.config_dir() == tmp_path / "Library" / "Application Support" / "Classroom Console"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("APPDATA", str(tmp_path / "Roaming"))
    assert paths.config_dir() == tmp_path / "Roaming" / "Classroom Console"


def test_outputs_are_saved_loaded_and_forgotten_per_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.CONFIG_DIR_ENV, str(tmp_path))
    store = OutputsStore()
    prod = environment_key("123456789012", "eu-west-1", "classroom-prod")
    test = environment_key("123456789012", "eu-west-1", "classroom-test")
    assert store.load(prod) is None
    store.save(prod, {"WebSocketUrl": "wss://prod"})
    store.save(test, {"WebSocketUrl": "wss://test"})
    assert OutputsStore().load(prod) == {"WebSocketUrl": "wss://prod"}
    entry = json.loads((tmp_path / "outputs.json").read_text())[prod]
    assert (entry["stack"], entry["region"], entry["account"]) == (
        "classroom-prod",
        "eu-west-1",
        "123456789012",
    )
    store.forget(prod)
    assert store.load(prod) is None and store.load(test) == {"WebSocketUrl": "wss://test"}
    assert [p.name for p in tmp_path.iterdir()] == ["outputs.json"]  # no temporary files left


def test_a_damaged_outputs_file_is_treated_as_empty(tmp_path):
    (tmp_path / "outputs.json").write_text("{not json")
    store = OutputsStore(tmp_path / "outputs.json")
    assert store.environments() == {}
    store.save("a/b/c", {"K": "V"})
    assert store.load("a/b/c") == {"K": "V"}
