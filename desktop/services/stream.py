"""The rows of the Inspector's stream as plain data: a frame, a gap, a note (no Qt).

The Inspector's session and its table both hold them, up to 20,000 a tab. A row keeps what its
line shows (read once, as it arrives) and the frame as its line of JSON (``text``: what the
text filter searches, and what the selected frame is read from), not the frame's objects: a
parsed frame is a few dozen objects for the garbage collector to walk, and 20,000 of them made
its every full pass a stall of the console (docs/benchmarks.md, the Inspector).
"""

from __future__ import annotations

import json
from sys import intern
from typing import NamedTuple

PREVIEW = 160  # characters of a frame's data in its one-line preview


class StreamRow(NamedTuple):
    """One line of the stream: a frame, a gap, or a note (a reconnect, a catch-up).

    A named tuple of strings and numbers, no frame's objects: the garbage collector's full
    passes visit every row kept and what it holds, so a row holds as little as it can."""

    number: int  # arrival order in this session
    at: float  # epoch seconds it arrived
    kind: str  # "live", "history", "filled", "gap", "note", "sent"
    text: str  # the frame as one line of JSON; a note's or a gap's sentence
    size: int = 0
    seq: int | None = None
    ts: int | None = None  # the message's time (epoch ms), as the backend stamped it
    event: str = ""  # message, ack, join... "gateway" for API Gateway's own; the kind for marks
    type: str = ""  # the message's type, else the event
    sender: str = ""
    role: str = ""
    preview: str = ""
    after: int | None = None  # a gap: the last seq held before it
    before: int | None = None  # and the first after it

    @property
    def frame(self) -> dict:
        """The frame (parsed again: rows keep its text, not its objects); a mark's fields."""
        if self.kind in ("gap", "note"):
            fields: dict = {"note": self.text}
            if self.after is not None:
                fields |= {"after": self.after, "before": self.before}
            return fields
        return json.loads(self.text)


def row_for(number: int, at: float, frame: dict, size: int, kind: str) -> StreamRow:
    origin = frame.get("from")
    origin = origin if isinstance(origin, dict) else frame
    seq = frame.get("seq")
    ts = frame.get("ts")
    if kind == "sent":
        event = "sent"
    else:
        event = str(frame.get("event", "gateway" if "message" in frame else ""))
    kind_of = frame.get("type")
    return StreamRow(
        number=number,
        at=at,
        kind=kind,
        text=json.dumps(frame, separators=(",", ":")),
        size=size,
        seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        ts=ts if isinstance(ts, int) and not isinstance(ts, bool) else None,
        # A stream repeats a few types, senders and roles: one shared string each, not one a
        # row, is fewer objects for the garbage collector to visit through the rows.
        event=intern(event),
        type=intern(kind_of) if isinstance(kind_of, str) else intern(event),
        sender=intern(str(origin.get("userId", ""))),
        role=intern(str(origin.get("role", ""))),
        preview=_preview(frame, event),
    )


def note_row(
    number: int, at: float, kind: str, text: str, *, after: int | None = None, before=None
) -> StreamRow:
    return StreamRow(
        number, at, kind, text, event=kind, type=kind, preview=text, after=after, before=before
    )


def _preview(frame: dict, event: str) -> str:
    if event in ("message", "sent"):
        body = frame.get("data")
        text = (
            json.dumps(body, separators=(",", ":"), ensure_ascii=False) if body is not None else ""
        )
    elif event == "error":
        text = f"{frame.get('code')}: {frame.get('message')}"
    else:
        shown = {k: v for k, v in frame.items() if k not in ("event", "room")}
        text = json.dumps(shown, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"
