"""``QSettings`` as the settings backend the services take (``desktop.services.settings``)."""

from __future__ import annotations

from PySide6.QtCore import QSettings


class QSettingsBackend:
    """Reads and writes strings in a ``QSettings``, synced after every change."""

    def __init__(self, settings: QSettings) -> None:
        self._settings = settings

    @property
    def settings(self) -> QSettings:
        return self._settings

    def value(self, key: str) -> str | None:
        value = self._settings.value(key)
        return None if value is None else str(value)

    def set_value(self, key: str, value: str) -> None:
        self._settings.setValue(key, value)
        self._settings.sync()

    def remove(self, key: str) -> None:
        self._settings.remove(key)
        self._settings.sync()
