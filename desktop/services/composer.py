"""What a support person sends into a classroom from the Inspector: templates, and the checks a
frame must pass before it goes (the protocol's rules, docs/PROTOCOL.md, "Frames from a client").

A frame that would earn an error frame is refused here with the same reason, so nothing the
backend would refuse leaves the console. Each frame gets an ``id`` if it has none; a resend
after ``unavailable`` (or no answer) keeps it, so the backend stores it at most once.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass
from importlib import resources

MAX_FRAME = 128 * 1024
MAX_DEPTH = 32
TYPE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
ACTIONS = ("send", "sync", "who", "ping")
ROOM = re.compile(r"[A-Za-z0-9_-]{1,64}")


def valid_room(room: str) -> bool:
    """A classroom id as the gateway takes it (PROTOCOL.md, Connecting)."""
    return bool(ROOM.fullmatch(room))


@dataclass(frozen=True)
class Template:
    name: str  # e.g. "chat-message"
    title: str  # e.g. "Chat message"
    text: str  # the frame, as the composer shows it


def templates() -> list[Template]:
    """The frames the composer offers, from ``desktop/resources/templates``."""
    folder = resources.files("desktop") / "resources" / "templates"
    found = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            name = entry.name[: -len(".json")]
            found.append(Template(name, name.replace("-", " ").capitalize(), entry.read_text()))
    return found


class FrameRefused(ValueError):
    """A frame the backend would refuse; the message says why, as its error frame would."""


def checked(text: str, room: str) -> dict:
    """The frame in ``text``, checked as the backend checks it; an ``id`` added to a ``send``."""
    try:
        frame = json.loads(text, parse_constant=_no_constant)
    except FrameRefused:
        raise
    except (ValueError, RecursionError) as error:
        raise FrameRefused(f"This is not JSON: {error}.") from None
    if not isinstance(frame, dict):
        raise FrameRefused("A frame is one JSON object, {...}.")
    _strict(frame, 1)
    action = frame.get("action")
    if action not in ACTIONS:
        raise FrameRefused(f"action must be one of {', '.join(ACTIONS)}.")
    if action == "send":
        kind = frame.get("type")
        if not isinstance(kind, str) or not TYPE.fullmatch(kind):
            raise FrameRefused(
                "type must be 1-64 characters: a lowercase letter, then a-z 0-9 _ . -"
            )
        if "room" in frame and frame["room"] != room:
            raise FrameRefused(f"room must be {room} (this classroom) or left out.")
        if "id" in frame and not isinstance(frame["id"], str):
            raise FrameRefused("id must be a string.")
        frame.setdefault("id", f"support-{uuid.uuid4().hex[:12]}")
    if action == "sync":
        since = frame.get("since", 0)
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise FrameRefused("since must be a seq: an integer, 0 or more.")
    size = len(json.dumps(frame, allow_nan=False).encode())
    if size > MAX_FRAME:
        raise FrameRefused(f"The frame is {size:,} bytes; the gateway takes at most 128 KB.")
    return frame


def _no_constant(name: str):
    raise FrameRefused(f"{name} is not JSON: the backend refuses it (bad_json).")


def _strict(value, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise FrameRefused(f"The frame nests deeper than {MAX_DEPTH} levels (invalid).")
    if isinstance(value, dict):
        for key, item in value.items():
            _text(key)
            _strict(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _strict(item, depth + 1)
    elif isinstance(value, str):
        _text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise FrameRefused("A number is beyond a double (bad_json).")


def _text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise FrameRefused("A string holds a lone surrogate (bad_json).") from None
