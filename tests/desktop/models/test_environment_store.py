"""The environment store keeps AWS environments in QSettings and never loses the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from PySide6.QtCore import QSettings

from desktop.models.settings import QSettingsBackend
from desktop.services.environments import (
    SANDBOX_NAME,
    EnvironmentStore,
    aws_environment,
)
from desktop.services.errors import ConfigurationError
from desktop.services.settings import MemorySettings


def staging(**changes):
    values = dict(profile="school", region="eu-west-1", stack_name="classroom-staging")
    values.update(changes)
    return aws_environment(values.pop("name", "Staging"), **values)


def test_sandbox_is_always_first_and_cannot_be_removed() -> None:
    store = EnvironmentStore(MemorySettings())
    assert [e.name for e in store.environments()] == [SANDBOX_NAME]
    assert store.current_name() == SANDBOX_NAME
    with pytest.raises(ConfigurationError, match="cannot be removed"):
        store.remove(SANDBOX_NAME)


def test_add_edit_remove_and_persist_in_qsettings(tmp_path) -> None:
    path = str(tmp_path / "console.ini")
    store = EnvironmentStore(QSettingsBackend(QSettings(path, QSettings.Format.IniFormat)))
    store.add(staging())
    store.add(staging(name="Production", stack_name="classroom-prod", profile=None))
    store.set_current("Production")
    with pytest.raises(ConfigurationError, match="already exists"):
        store.add(staging(name="staging"))
    store.update("Staging", staging(name="Staging EU", region="eu-central-1"))
    when = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    store.record_deploy("Production", when)

    again = EnvironmentStore(QSettingsBackend(QSettings(path, QSettings.Format.IniFormat)))
    names = [e.name for e in again.environments()]
    assert names == [SANDBOX_NAME, "Staging EU", "Production"]
    assert again.get("Staging EU").region == "eu-central-1"
    assert again.get("Production").profile is None
    assert again.get("Production").last_deploy_time == when
    assert again.current_name() == "Production"

    again.remove("Production")
    assert again.current_name() == SANDBOX_NAME
    assert [e.name for e in again.environments()] == [SANDBOX_NAME, "Staging EU"]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"name": " "}, "name"),
        ({"region": "Ireland"}, "region"),
        ({"stack_name": "1-stack"}, "stack name"),
        ({"region": "eu-west-\u0661"}, "region"),  # an Arabic-Indic digit one
        ({"endpoint_url": "localhost:5000"}, "http://"),
        ({"name": "local sandbox"}, "built-in"),
    ],
)
def test_invalid_values_are_sentences(changes, words) -> None:
    with pytest.raises(ConfigurationError, match=words):
        staging(**changes)


def test_broken_stored_list_is_skipped() -> None:
    backend = MemorySettings({"environments/list": '[{"kind": "aws", "name": 3}, 7]'})
    assert [e.name for e in EnvironmentStore(backend).environments()] == [SANDBOX_NAME]
    backend = MemorySettings({"environments/list": "not json"})
    assert [e.name for e in EnvironmentStore(backend).environments()] == [SANDBOX_NAME]
