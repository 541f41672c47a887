"""The environment the console is operating on now, shared by every section."""

from __future__ import annotations

from dataclasses import dataclass, replace

from PySide6.QtCore import QObject, Signal

from desktop.services.environments import SANDBOX, Environment


@dataclass(frozen=True)
class Current:
    """The current environment, its health in a phrase, and where its classrooms are reached."""

    environment: Environment = SANDBOX
    health: str = ""
    tone: str | None = None  # "good", "bad", "warn", "muted"
    websocket_url: str | None = None

    @property
    def description(self) -> str:
        """E.g. "Local sandbox · running · ws://127.0.0.1:8765/local"."""
        parts = [self.environment.name, self.health, self.websocket_url or ""]
        return " · ".join(part for part in parts if part)


class Session(QObject):
    """Holds ``Current``; ``changed`` fires with the new value whenever any part changes."""

    changed = Signal(object)  # Current

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._current = Current()

    @property
    def current(self) -> Current:
        return self._current

    @property
    def environment(self) -> Environment:
        return self._current.environment

    def switch(self, environment: Environment) -> None:
        """Operate on ``environment`` from now on; its health is unknown until reported."""
        if environment == self._current.environment:
            return
        same = environment.name == self._current.environment.name
        self._set(replace(self._current, environment=environment) if same else Current(environment))

    def report(
        self,
        name: str,
        *,
        health: str,
        tone: str | None = None,
        websocket_url: str | None = None,
    ) -> None:
        """Record the health of environment ``name`` if it is still the current one."""
        if name != self._current.environment.name:
            return
        self._set(replace(self._current, health=health, tone=tone, websocket_url=websocket_url))

    def _set(self, current: Current) -> None:
        if current != self._current:
            self._current = current
            self.changed.emit(current)
