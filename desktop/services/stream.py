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


Line = tuple[
    float, str, str, int, int | None, int | None, str, str, str, str, str, int | None, int | None
]


class StreamRow(NamedTuple):
    """One line of the stream: a frame, a gap, or a note (a reconnect, a catch-up).

    What a row shows is in ``line``, a plain tuple of strings and numbers, which the garbage
    collector stops tracking once it has seen it (it does that for plain tuples, not for named
    ones): its full passes then visit a row's number and nothing else of the 20,000 rows a tab
    keeps, where a named tuple of the fields was a dozen objects a row to visit.
    """

    number: int  # arrival order in this session
    line: Line

    @property
    def at(self) -> float:
        """Epoch seconds it arrived."""
        return self.line[0]

    @property
    def kind(self) -> str:
        """ "live", "history", "filled", "gap", "note", "sent"."""
        return self.line[1]

    @property
    def text(self) -> str:
        """The frame as one line of JSON; a note's or a gap's sentence."""
        return self.line[2]

    @property
    def size(self) -> int:
        """Bytes of the frame as received."""
        return self.line[3]

    @property
    def seq(self) -> int | None:
        """The message's seq."""
        return self.line[4]

    @property
    def ts(self) -> int | None:
        """The message's time (epoch ms), as the backend stamped it."""
        return self.line[5]

    @property
    def event(self) -> str:
        """Message, ack, join... "gateway" for API Gateway's own; the kind for marks."""
        return self.line[6]

    @property
    def type(self) -> str:
        """The message's type, else the event."""
        return self.line[7]

    @property
    def sender(self) -> str:
        """The sender's user id."""
        return self.line[8]

    @property
    def role(self) -> str:
        """The sender's role."""
        return self.line[9]

    @property
    def preview(self) -> str:
        """The line the table shows of the frame's data."""
        return self.line[10]

    @property
    def after(self) -> int | None:
        """A gap: the last seq held before it."""
        return self.line[11]

    @property
    def before(self) -> int | None:
        """And the first after it."""
        return self.line[12]

    @property
    def frame(self) -> dict:
        """The frame (parsed again: rows keep its text, not its objects); a mark's fields."""
        if self.kind in ("gap", "note"):
            fields: dict = {"note": self.text}
            if self.after is not None:
                fields |= {"after": self.after, "before": self.before}
            return fields
        return json.loads(self.text)


def row_for(
    number: int, at: float, frame: dict, size: int, kind: str, text: str | None = None
) -> StreamRow:
    """The row of ``frame``; ``text`` is its JSON on one line when the caller has it."""
    origin = frame.get("from")
    origin = origin if isinstance(origin, dict) else frame
    seq = frame.get("seq")
    ts = frame.get("ts")
    if kind == "sent":
        event = "sent"
    else:
        event = str(frame.get("event", "gateway" if "message" in frame else ""))
    kind_of = frame.get("type")
    # A stream repeats a few types, senders and roles: one shared string each, not one a row.
    event = intern(event)
    line: Line = (
        at,
        kind,
        text if text is not None else json.dumps(frame, separators=(",", ":"), ensure_ascii=False),
        size,
        seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        ts if isinstance(ts, int) and not isinstance(ts, bool) else None,
        event,
        intern(kind_of) if isinstance(kind_of, str) else event,
        intern(str(origin.get("userId", ""))),
        intern(str(origin.get("role", ""))),
        _preview(frame, event),
        None,
        None,
    )
    return StreamRow(number, line)


def note_row(
    number: int,
    at: float,
    kind: str,
    text: str,
    *,
    after: int | None = None,
    before: int | None = None,
) -> StreamRow:
    """A mark in the stream: a gap (``after`` and ``before`` the seqs either side) or a note."""
    return StreamRow(
        number, (at, kind, text, 0, None, None, kind, kind, "", "", text, after, before)
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
