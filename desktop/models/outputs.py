"""A stack's outputs (the WebSocket URL, the admin function...), each copyable from the view."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from desktop.models.base import RowTableModel
from desktop.services.deploy import websocket_url

__all__ = ["Output", "OutputColumn", "OutputsModel", "outputs_from", "websocket_url"]


class OutputColumn(IntEnum):
    NAME = 0
    VALUE = 1
    COPY = 2  # the view puts a copy button here


@dataclass(frozen=True)
class Output:
    name: str
    value: str


def outputs_from(outputs: dict[str, object]) -> list[Output]:
    return [
        Output(str(name), "" if value is None else str(value)) for name, value in outputs.items()
    ]


class OutputsModel(RowTableModel[Output]):
    columns = OutputColumn
    headers = {OutputColumn.NAME: "Output", OutputColumn.VALUE: "Value", OutputColumn.COPY: ""}

    def set_outputs(self, outputs: dict[str, object]) -> None:
        self.set_rows(outputs_from(outputs))

    def display(self, row: Output, column: int) -> Any:
        if column == OutputColumn.NAME:
            return row.name
        if column == OutputColumn.VALUE:
            return row.value
        return None

    def tooltip(self, row: Output, column: int) -> Any:
        if column == OutputColumn.VALUE:
            return row.value
        if column == OutputColumn.COPY:
            return f"Copy {row.name} to the clipboard"
        return None
