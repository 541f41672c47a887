"""The protocol's frames (PROTOCOL.md): client frames parsed and checked, server frames built.

This is the one place that knows the wire format. Parsing never raises anything but
``FrameError``, whose ``code`` is one of PROTOCOL.md's error codes. Client frames are read as
strict JSON (``loads``) and every frame is written as strict JSON (``dumps``), so nothing a
client sends can put text into a room that a browser's ``JSON.parse`` would refuse.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from typing import Any

MAX_FRAME_BYTES = 128 * 1024
# Objects and arrays nest at most this deep in a client frame, its own object being level 1.
# The deepest frame written (a history) adds 2 levels, 34: within every common JSON reader's
# default (.NET's 64, Ruby's 100, serde_json's 128), and far from Python's recursion limit.
MAX_DEPTH = 32
# The largest integer a double holds without becoming infinite (309 digits, about 1.8e308).
_LARGEST_NUMBER = int(sys.float_info.max)
ACTIONS = ("send", "sync", "who", "ping")
MESSAGE_TYPE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_SURROGATE = re.compile("[\ud800-\udfff]")
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
    """Compact JSON text for a frame or a part of one, with non-ASCII text as it is.

    ``allow_nan=False``: a NaN or an infinity raises instead of writing text that is not JSON.
    """
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class NotStrictJson(ValueError):
    """JSON text that strict readers refuse; ``str()`` says what, safe to send back."""


class TooDeep(ValueError):
    """JSON nested past ``MAX_DEPTH``; ``value`` is what was read, or None when it could not be
    read at all (so deep that the decoder gave up)."""

    def __init__(self, value: object = None) -> None:
        super().__init__(f"nested deeper than {MAX_DEPTH} levels")
        self.value = value


def _refuse_constant(name: str) -> object:
    raise NotStrictJson(f"{name} is not a JSON number")


_OUT_OF_RANGE = "a number is beyond the range of a double"
_LONE_SURROGATE = "a string holds a lone surrogate (\\ud800-\\udfff), which is not Unicode text"


def _depth(value: object) -> int:
    """How deep ``value``'s objects and arrays nest (a scalar is 0), checking every leaf.

    ``NotStrictJson`` for an infinite float, an integer past a double or a lone surrogate.
    Iterative, so no depth exhausts the stack, and complete: every string is looked at even
    past the depth limit, so no error frame echoes text that cannot be written.
    """
    deepest = 0
    stack: list[tuple[dict | list, int]] = [([value], 0)]  # a list around it, so it is a child
    while stack:
        container, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(container, dict):
            for key in container:
                if not key.isascii() and _SURROGATE.search(key):
                    raise NotStrictJson(_LONE_SURROGATE)
            children: Any = container.values()
        else:
            children = container
        for child in children:
            kind = type(child)
            if kind is int:  # the commonest leaves first, checked inline: this is the hot loop
                if not -_LARGEST_NUMBER <= child <= _LARGEST_NUMBER:
                    raise NotStrictJson(_OUT_OF_RANGE)
            elif kind is float:
                if math.isinf(child):
                    raise NotStrictJson(_OUT_OF_RANGE)
            elif kind is str:
                if not child.isascii() and _SURROGATE.search(child):
                    raise NotStrictJson(_LONE_SURROGATE)
            elif kind is dict or kind is list:
                stack.append((child, depth + 1))
    return deepest


def loads(text: str | bytes) -> Any:
    """``text`` read as strict JSON (I-JSON, RFC 7493), nested at most ``MAX_DEPTH`` levels.

    Strict: UTF-8 only; no ``NaN``, ``Infinity`` or ``-Infinity``; no number beyond a double's
    range (a float Python would read as infinite, an integer past 1.8e308); no lone surrogate
    in any string or key. Those raise ``NotStrictJson``, any other syntax error ``ValueError``,
    and nesting past ``MAX_DEPTH`` raises ``TooDeep``.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")  # strict: json.loads would let UTF-16 and surrogates in
        except UnicodeDecodeError:
            raise NotStrictJson("the frame is not UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, NotStrictJson):
        raise
    except RecursionError:
        raise TooDeep() from None
    except ValueError:  # an integer past the 4,300 digits Python reads
        raise NotStrictJson(_OUT_OF_RANGE) from None
    if _depth(value) > MAX_DEPTH:
        raise TooDeep(value)
    return value


def parse(body: str | bytes | None, room: str) -> Request:
    """The request a client frame asks for, or ``FrameError`` saying what is wrong with it."""
    if body is None:
        body = ""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if len(raw) > MAX_FRAME_BYTES:
        raise FrameError("too_large", f"frames are limited to {MAX_FRAME_BYTES} bytes")
    try:
        frame = loads(body)
    except TooDeep as error:
        found = error.value.get("id") if isinstance(error.value, dict) else None
        raise FrameError(
            "invalid",
            f"objects and arrays nest at most {MAX_DEPTH} levels, the frame's own object included",
            found if isinstance(found, str) else None,
        ) from None
    except NotStrictJson as error:
        raise FrameError("bad_json", f"the frame is not strict JSON: {error}") from None
    except ValueError:
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
        shown = action if isinstance(action, str) else dumps(action)
        raise FrameError("unknown_action", f"unknown action {shown[:64]}", client_id)

    if action == "send":
        message_type = frame.get("type")
        if not isinstance(message_type, str) or not MESSAGE_TYPE.fullmatch(message_type):
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
        found = loads(body or "").get("id")
    except (ValueError, AttributeError):
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
