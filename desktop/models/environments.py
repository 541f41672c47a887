"""The environments list: the local sandbox first, then AWS deployments, each with its state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from desktop.models.base import local_time
from desktop.services.environments import Environment

Index = QModelIndex | QPersistentModelIndex


class EnvironmentRole(IntEnum):
    ENVIRONMENT = Qt.ItemDataRole.UserRole + 1  # the Environment dataclass
    NAME = Qt.ItemDataRole.UserRole + 2
    KIND = Qt.ItemDataRole.UserRole + 3
    STATE = Qt.ItemDataRole.UserRole + 4  # a short phrase: "running", "UPDATE_COMPLETE"
    HEALTH = Qt.ItemDataRole.UserRole + 5  # "good", "bad", "warn", "muted" or None


@dataclass(frozen=True)
class EnvironmentRow:
    environment: Environment
    state: str = ""
    health: str | None = None


class EnvironmentListModel(QAbstractListModel):
    """One row per environment; ``set_state`` updates one row with one ``dataChanged``."""

    def __init__(self, environments: Iterable[Environment] = (), parent=None) -> None:
        super().__init__(parent)
        self._rows = [EnvironmentRow(environment) for environment in environments]

    def set_environments(self, environments: Iterable[Environment]) -> None:
        """Replace the list, keeping the states of environments that are still there."""
        states = {row.environment.name: row for row in self._rows}
        rows = []
        for environment in environments:
            old = states.get(environment.name)
            same = old is not None and _same_place(old.environment, environment)
            rows.append(
                EnvironmentRow(environment, old.state, old.health)
                if same
                else EnvironmentRow(environment)
            )
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()

    def set_state(self, name: str, state: str, health: str | None = None) -> None:
        row = self.row_of(name)
        if row is None:
            return
        self._rows[row] = replace(self._rows[row], state=state, health=health)
        index = self.index(row, 0)
        self.dataChanged.emit(index, index)

    def row_of(self, name: str) -> int | None:
        for row, item in enumerate(self._rows):
            if item.environment.name == name:
                return row
        return None

    def environment(self, row: int) -> Environment:
        return self._rows[row].environment

    def environments(self) -> list[Environment]:
        return [row.environment for row in self._rows]

    def state(self, name: str) -> str:
        row = self.row_of(name)
        return self._rows[row].state if row is not None else ""

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        item = self._rows[index.row()]
        environment = item.environment
        if role == Qt.ItemDataRole.DisplayRole:
            return environment.name
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [environment.name, environment.summary]
            if item.state:
                lines.append(item.state)
            if environment.last_deploy_time is not None:
                when = local_time(environment.last_deploy_time)
                lines.append(f"Last deployed from this console {when}")
            return "\n".join(lines)
        if role == EnvironmentRole.ENVIRONMENT:
            return environment
        if role == EnvironmentRole.NAME:
            return environment.name
        if role == EnvironmentRole.KIND:
            return environment.kind
        if role == EnvironmentRole.STATE:
            return item.state
        if role == EnvironmentRole.HEALTH:
            return item.health
        return None

    def roleNames(self) -> dict[int, bytes]:
        names = dict(super().roleNames())
        names.update({role.value: role.name.lower().encode() for role in EnvironmentRole})
        return names


def _same_place(old: Environment, new: Environment) -> bool:
    return (old.kind, old.profile, old.region, old.stack_name, old.endpoint_url) == (
        new.kind,
        new.profile,
        new.region,
        new.stack_name,
        new.endpoint_url,
    )
