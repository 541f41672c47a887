"""The protocol's frames (PROTOCOL.md): client frames parsed and checked, server frames built.

This is the one place that knows the wire format. Parsing never raises anything but
``FrameError``, whose ``code`` is one of PROTOCOL.md's error codes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_FRAME_BYTES = 128 * 1024
ACTIONS = ("send", "sync", "who", "ping")
MESSAGE_TYPE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
ERROR_CODES = (
    "bad_json",
    "unknown_action",
    "invalid",
    "forbidden",
    "too_large",
    "rate_limited",
    "unavailable",
    "internal",
)
_MISSING = object()


class FrameError(Exception):
    """A client frame that earns an error frame; nothing is stored or delivered."""

    def __init__(self, code: str, message: str, client_id: str | None = None) -> None:
        assert code in ERROR_CODES, code
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_id = client_id


@dataclass(frozen=True)
class Send:
    type: str
    data: Any
    id: str | None


@dataclass(frozen=True)
class Sync:
    since: int
    id: str | None


@dataclass(frozen=True)
class Who:
    id: str | None


@dataclass(frozen=True)
class Ping:
    id: str | None


Request = Send | Sync | Who | Ping


def dumps(value: object) -> str:
    """Compact JSON text for a frame or a part of one, with non-ASCII text as it is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def parse(body: str | bytes | None, room: str) -> Request:
    """The request a client frame asks for, or ``FrameError`` saying what is wrong with it."""
    if body is None:
        body = ""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if len(raw) > MAX_FRAME_BYTES:
        raise FrameError("too_large", f"frames are limited to {MAX_FRAME_BYTES} bytes")
    try:
        frame = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise FrameError("bad_json", "the frame is not a JSON object") from None
    if not isinstance(frame, dict):
        raise FrameError("bad_json", "the frame is not a JSON object")

    client_id = frame.get("id", _MISSING)
    if client_id is _MISSING or client_id is None:
        client_id = None
    elif not isinstance(client_id, str):
        raise FrameError("invalid", "id must be a string")

    action = frame.get("action")
    if action not in ACTIONS:
        shown = action if isinstance(action, str) else json.dumps(action)
        raise FrameError("unknown_action", f"unknown action {shown[:64]}", client_id)

    if action == "send":
        message_type = frame.get("type")
        if not isinstance(message_type, str) or not MESSAGE_TYPE.match(message_type):
            raise FrameError(
                "invalid", "type is required and must match ^[a-z][a-z0-9_.-]{0,63}$", client_id
            )
        if "room" in frame and frame["room"] != room:
            raise FrameError("forbidden", "room does not match this connection's room", client_id)
        return Send(message_type, frame.get("data"), client_id)
    if action == "sync":
        since = frame.get("since", 0)
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise FrameError("invalid", "since must be a non-negative integer", client_id)
        return Sync(since, client_id)
    if action == "who":
        return Who(client_id)
    return Ping(client_id)


def client_id_of(body: str | bytes | None) -> str | None:
    """The frame's ``id`` when it has a readable one, so late errors can still name it."""
    try:
        found = json.loads(body or "").get("id")
    except (ValueError, AttributeError, TypeError):
        return None
    return found if isinstance(found, str) else None


def sender(user_id: str, role: str) -> dict:
    return {"userId": user_id, "role": role}


def message_parts(room: str, ts: int, user_id: str, role: str, send: Send) -> tuple[str, str]:
    """A ``message`` frame split around its ``seq``, which Redis fills in when it stores it.

    Splicing the seq into the text keeps client data byte-for-byte as sent (no JSON round trip
    through Lua, which would turn ``[]`` into ``{}``).
    """
    head = '{"event":"message","room":' + dumps(room) + ',"seq":'
    tail = (
        ","
        + dumps(
            {
                "ts": ts,
                "from": sender(user_id, role),
                "type": send.type,
                "data": send.data,
                "id": send.id,
            }
        )[1:]
    )
    return head, tail


# Room a stored message must leave in a frame: its seq, and the history envelope around it.
ENVELOPE_ALLOWANCE = 256


def deliverable(head: str, tail: str) -> bool:
    """Whether the message frame fits what the gateway will post, alone or in a history."""
    size = len(head.encode("utf-8")) + len(tail.encode("utf-8"))
    return size + ENVELOPE_ALLOWANCE <= MAX_FRAME_BYTES


def ack(client_id: str | None, seq: int) -> str:
    return dumps({"event": "ack", "id": client_id, "seq": seq})


def history(room: str, messages: list[str], latest: int, truncated: bool) -> list[str]:
    """``history`` frames holding ``messages`` in seq order, each within the frame limit.

    ``messages`` are stored frames, already JSON text, so they are joined, not re-encoded. A
    history larger than one frame comes as several, each with the same ``latest`` and
    ``truncated``; an empty one is a single frame.
    """
    head = '{"event":"history","room":' + dumps(room) + ',"messages":['
    tail = '],"latest":' + str(latest) + ',"truncated":' + ("true" if truncated else "false") + "}"
    room_for_messages = MAX_FRAME_BYTES - len(head.encode()) - len(tail.encode())
    chunks: list[list[str]] = [[]]
    used = 0
    for message in messages:
        size = len(message.encode("utf-8")) + 1
        if chunks[-1] and used + size > room_for_messages:
            chunks.append([])
            used = 0
        chunks[-1].append(message)
        used += size
    return [head + ",".join(chunk) + tail for chunk in chunks]


def presence(room: str, members: list[dict]) -> str:
    return dumps({"event": "presence", "room": room, "members": members})


def join(room: str, user_id: str, role: str) -> str:
    return dumps({"event": "join", "room": room, "userId": user_id, "role": role})


def leave(room: str, user_id: str, role: str) -> str:
    return dumps({"event": "leave", "room": room, "userId": user_id, "role": role})


def pong(ts: int) -> str:
    return dumps({"event": "pong", "ts": ts})


def error(code: str, message: str, client_id: str | None = None) -> str:
    return dumps({"event": "error", "code": code, "message": message, "id": client_id})
