"""The rows of the Inspector's stream as plain data: a frame, a gap, a note (no Qt).

The Inspector's session and its table both hold them; a row's ``text`` (the frame as one line of
JSON) is what the text filter searches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

PREVIEW = 160  # characters of a frame's data in its one-line preview


@dataclass(frozen=True, slots=True)
class StreamRow:
    """One line of the stream: a frame, a gap, or a note (a reconnect, a catch-up)."""

    number: int  # arrival order in this session
    at: float  # epoch seconds it arrived
    kind: str  # "live", "history", "filled", "gap", "note", "sent"
    frame: dict
    size: int = 0
    text: str = ""  # the frame as one line of JSON: what the text filter searches

    @property
    def seq(self) -> int | None:
        seq = self.frame.get("seq")
        return seq if isinstance(seq, int) and not isinstance(seq, bool) else None

    @property
    def event(self) -> str:
        if self.kind in ("gap", "note", "sent"):
            return self.kind
        return str(self.frame.get("event", "gateway" if "message" in self.frame else ""))

    @property
    def type(self) -> str:
        """The message's type, or the event for other frames (``ack``, ``join``...)."""
        kind = self.frame.get("type")
        if isinstance(kind, str):
            return kind
        return self.event

    @property
    def sender(self) -> str:
        origin = self.frame.get("from")
        if isinstance(origin, dict):
            return str(origin.get("userId", ""))
        return str(self.frame.get("userId", ""))

    @property
    def role(self) -> str:
        origin = self.frame.get("from")
        if isinstance(origin, dict):
            return str(origin.get("role", ""))
        return str(self.frame.get("role", ""))


def row_for(number: int, at: float, frame: dict, size: int, kind: str) -> StreamRow:
    return StreamRow(number, at, kind, frame, size, json.dumps(frame, separators=(",", ":")))


def note_row(number: int, at: float, kind: str, text: str, **fields) -> StreamRow:
    frame = {"note": text, **fields}
    return StreamRow(number, at, kind, frame, 0, text)


def preview(row: StreamRow) -> str:
    if row.kind in ("gap", "note"):
        return str(row.frame.get("note", ""))
    frame = row.frame
    if frame.get("event") == "message" or row.kind == "sent":
        body = frame.get("data")
        text = (
            json.dumps(body, separators=(",", ":"), ensure_ascii=False) if body is not None else ""
        )
    elif frame.get("event") == "error":
        text = f"{frame.get('code')}: {frame.get('message')}"
    else:
        shown = {k: v for k, v in frame.items() if k not in ("event", "room")}
        text = json.dumps(shown, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"
