"""Where the console keeps its settings, as a plain key-value interface.

Services that remember things (environments, the last one used) take a ``SettingsBackend``
instead of knowing where settings live: the Qt side hands them one backed by ``QSettings``
(``desktop.models.settings``) and tests hand them ``MemorySettings``. Values are strings; a
service that needs structure stores JSON.
"""

from __future__ import annotations

from typing import Protocol


class SettingsBackend(Protocol):
    """The few operations a service needs from a settings store."""

    def value(self, key: str) -> str | None:
        """The string stored under ``key``, or ``None`` when nothing is."""
        ...

    def set_value(self, key: str, value: str) -> None: ...

    def remove(self, key: str) -> None: ...


class MemorySettings:
    """Settings that live in a dict: for tests and for a console that must not persist."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values: dict[str, str] = dict(values or {})

    def value(self, key: str) -> str | None:
        return self.values.get(key)

    def set_value(self, key: str, value: str) -> None:
        self.values[key] = value

    def remove(self, key: str) -> None:
        self.values.pop(key, None)
