"""The Inspector's table: every frame of a classroom as it arrives, gaps and reconnects marked.

Rows only ever arrive at the end (one insert range a batch) and leave at the start (the cap),
so a support person scrolled back to read something keeps their place while the class goes on.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum
from typing import Any

from desktop.models.base import RowTableModel, tone
from desktop.services.stream import StreamRow


class StreamColumn(IntEnum):
    SEQ = 0
    TIME = 1
    SENDER = 2
    ROLE = 3
    TYPE = 4
    SIZE = 5
    PREVIEW = 6


KIND_NAMES = {
    "history": "from the log when the Inspector joined",
    "filled": "caught up with sync after a gap or a reconnect",
    "live": "as it happened",
    "sent": "sent by you from the Inspector",
}


class StreamModel(RowTableModel[StreamRow]):
    columns = StreamColumn
    headers = {
        StreamColumn.SEQ: "Seq",
        StreamColumn.TIME: "Time",
        StreamColumn.SENDER: "Sender",
        StreamColumn.ROLE: "Role",
        StreamColumn.TYPE: "Type",
        StreamColumn.SIZE: "Size",
        StreamColumn.PREVIEW: "Data",
    }
    numeric = frozenset({StreamColumn.SEQ, StreamColumn.SIZE})

    def drop_first(self, count: int) -> None:
        """The cap: the oldest ``count`` rows go, as one remove range."""
        count = min(count, len(self._rows))
        if count <= 0:
            return
        self.beginRemoveRows(self.index(0, 0).parent(), 0, count - 1)
        del self._rows[:count]
        self.endRemoveRows()

    def display(self, row: StreamRow, column: int) -> Any:
        if column == StreamColumn.SEQ:
            if row.kind == "gap":
                return "gap"
            return str(row.seq) if row.seq is not None else ""
        if column == StreamColumn.TIME:
            when = row.ts / 1000 if row.ts and row.kind in ("history", "filled") else row.at
            return datetime.fromtimestamp(when).strftime("%H:%M:%S.%f")[:-3]
        if column == StreamColumn.SENDER:
            return row.sender
        if column == StreamColumn.ROLE:
            return row.role
        if column == StreamColumn.TYPE:
            return row.type
        if column == StreamColumn.SIZE:
            return f"{row.size:,}" if row.size else ""
        if column == StreamColumn.PREVIEW:
            return row.preview
        return None

    def foreground(self, row: StreamRow, column: int) -> Any:
        if row.kind == "gap" or row.event in ("error", "gateway"):
            return tone("bad")
        if row.kind in ("history", "note"):
            return tone("muted")
        if row.kind == "filled":
            return tone("warn")
        if row.kind == "sent" or row.role == "support":
            return tone("good")
        return None

    def tooltip(self, row: StreamRow, column: int) -> Any:
        if row.kind == "gap":
            return row.text
        if column == StreamColumn.SEQ and row.kind in KIND_NAMES:
            return f"This frame came {KIND_NAMES[row.kind]}."
        if column == StreamColumn.PREVIEW and row.kind not in ("gap", "note"):
            return "Select the row to see the whole frame."
        return None
