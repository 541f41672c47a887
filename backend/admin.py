"""Operations for the console: classrooms, a user's classrooms, members, ghost connections,
history, kick, close, support tokens, audit, stats.

The admin Lambda (invoked through IAM, never from the internet) and the sandbox's ``/_admin``
run this same code. A request is a JSON object with ``op``; the answer is ``{"ok": true, ...}``
or ``{"ok": false, "error": code, "message": sentence}``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict

from backend import classroom, tokens
from backend.poster import Gone, Poster, PostError
from backend.registry import Registry, now_ms

MAX_PAGE = 500
# A page of the index may run past its limit (a scan returns whole buckets), so a console may
# send the versions of a little more than a page's rooms.
MAX_KNOWN = 2 * MAX_PAGE
MAX_VERSION = 64
MAX_CHECKED = 500
SUPPORT_TOKEN_TTL = 900
SUPPORT_TOKEN_MAX_TTL = 3600


class AdminError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _room(request: dict) -> str:
    room = request.get("room")
    if not tokens.valid_room(room):
        raise AdminError("invalid", "room must be 1-64 characters of A-Z a-z 0-9 _ -")
    return room


def _int(request: dict, name: str, default: int, low: int, high: int) -> int:
    value = request.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AdminError("invalid", f"{name} must be an integer from {low} to {high}")
    return value


def _known(request: dict) -> dict[str, str]:
    known = request.get("known") or {}
    if (
        not isinstance(known, dict)
        or len(known) > MAX_KNOWN
        or not all(
            isinstance(room, str) and isinstance(version, str) and len(version) <= MAX_VERSION
            for room, version in known.items()
        )
    ):
        raise AdminError(
            "invalid",
            f"known must be an object of at most {MAX_KNOWN} rooms, each with the version "
            "a previous page gave it",
        )
    return known


def rooms(registry: Registry, request: dict) -> dict:
    """One page of classrooms. A room whose ``version`` is the one the console sent in
    ``known`` is answered ``unchanged``, with only what changes without its membership: a
    refresh of 10,000 quiet classrooms then reads no member records."""
    cursor = request.get("cursor") or "0"
    if not isinstance(cursor, str) or not cursor.isdigit():
        raise AdminError("invalid", "cursor must be the value a previous page returned")
    limit = _int(request, "limit", 50, 1, MAX_PAGE)
    page = registry.room_page(int(cursor), limit, known=_known(request))
    listed: list[dict] = []
    for summary in page.rooms:
        activity = {
            "lastActivity": summary.last_activity,
            "messagesLastMinute": summary.messages_last_minute,
            "latestSeq": summary.latest_seq,
        }
        if summary.unchanged:
            listed.append(
                {"room": summary.room, "version": summary.version, "unchanged": True, **activity}
            )
            continue
        found = summary.members
        listed.append(
            {
                "room": summary.room,
                "version": summary.version,
                "members": sum(not m.hidden for m in found),
                "teachers": sum(m.role == "teacher" for m in found),
                "students": sum(m.role == "student" for m in found),
                "hidden": sum(m.hidden for m in found),
                "connectedSince": min(m.connectedAt for m in found),
                **activity,
            }
        )
    return {
        "rooms": listed,
        "cursor": str(page.cursor) if page.cursor else None,
        "classrooms": page.classrooms,
        "connections": page.connections,
    }


def members(registry: Registry, request: dict) -> dict:
    room = _room(request)
    found = registry.members(room)
    seen = registry.last_seen(room) if found else {}
    return {
        "room": room,
        "members": [asdict(m) | {"lastSeen": seen.get(m.connectionId)} for m in found],
    }


def user_rooms(registry: Registry, request: dict) -> dict:
    user_id = request.get("userId")
    if not isinstance(user_id, str) or not user_id or len(user_id) > 256:
        raise AdminError("invalid", "userId must be 1-256 characters")
    found = registry.user_rooms(user_id)
    return {
        "userId": user_id,
        "rooms": [{"room": room, "connections": found[room]} for room in sorted(found)],
    }


def history(registry: Registry, request: dict) -> dict:
    room = _room(request)
    since = _int(request, "since", 0, 0, 2**53)
    found = registry.history(room, since)
    return {
        "room": room,
        "messages": [json.loads(m) for m in found.messages],
        "latest": found.latest,
        "truncated": found.truncated,
    }


def _staff(request: dict) -> str:
    """Who asks for a change, for the audit log: the console sends its user's identity (the
    IAM ARN in AWS; the sandbox writes its operator over whatever was sent)."""
    staff = request.get("staff")
    if not isinstance(staff, str) or not staff.strip() or len(staff) > 256:
        raise AdminError(
            "invalid", "staff (the identity of whoever asks for the change) is required"
        )
    return staff


def _audit(registry: Registry, staff: str, action: str, room: str, **details) -> None:
    registry.audit({"staff": staff, "action": action, "room": room, "ts": now_ms(), **details})


def kick(registry: Registry, poster: Poster, request: dict) -> dict:
    staff = _staff(request)
    connection_id = request.get("connectionId")
    if not isinstance(connection_id, str) or not connection_id:
        raise AdminError("invalid", "connectionId is required")
    try:
        poster.delete(connection_id)
        closed = True
    except Gone:
        closed = False
    except PostError as error:
        raise AdminError(
            "unavailable", f"the management API refused to close it: {error}"
        ) from None
    record = registry.room_of(connection_id)
    if record:
        classroom.disconnect(registry, poster, connection_id, room=record["room"])
    kicked = closed or bool(record)
    _audit(
        registry,
        staff,
        "disconnect",
        record.get("room", "") if record else "",
        connectionId=connection_id,
        userId=record.get("userId", "") if record else "",
        outcome="disconnected" if kicked else "already gone",
    )
    return {"connectionId": connection_id, "kicked": kicked}


def check_connections(registry: Registry, poster: Poster, request: dict) -> dict:
    """Asks the management API (GetConnection) about each registered member; a 410 is a ghost,
    a registration whose connection is gone. At most ``MAX_CHECKED`` members a call, oldest
    first (ghosts are old); other failures are reported per connection, never fatal.
    ``prune`` removes exactly the ghosts found, as a fan-out's 410 does (members that joined
    within the grace period are kept: their handshake may still be in progress)."""
    room = _room(request)
    prune = request.get("prune", False)
    if not isinstance(prune, bool):
        raise AdminError("invalid", "prune must be true or false")
    staff = _staff(request) if prune else ""
    registered = registry.members(room)
    checked = registered[:MAX_CHECKED]
    ghosts, failures = [], []
    for member in checked:
        try:
            poster.get(member.connectionId)
        except Gone:
            ghosts.append(member)
        except PostError as error:
            failures.append({"connectionId": member.connectionId, "error": str(error)})
    answer = {
        "room": room,
        "members": len(registered),
        "checked": len(checked),
        "limit": MAX_CHECKED,
        "truncated": len(registered) > len(checked),
        "ghosts": [
            {
                "connectionId": m.connectionId,
                "userId": m.userId,
                "role": m.role,
                "connectedAt": m.connectedAt,
            }
            for m in ghosts
        ],
        "failures": failures,
    }
    if prune:
        gone = [m.connectionId for m in ghosts]
        pruned = [m.connectionId for m in classroom.remove_gone(registry, poster, room, gone)]
        answer["pruned"] = pruned
        _audit(
            registry,
            staff,
            "prune",
            room,
            connectionIds=pruned,
            outcome=f"{len(pruned)} of {len(ghosts)} ghosts pruned",
        )
    return answer


def close_room(registry: Registry, poster: Poster, request: dict) -> dict:
    room = _room(request)
    staff = _staff(request)
    closed = 0
    for member in registry.members(room):
        try:
            poster.delete(member.connectionId)
            closed += 1
        except PostError:
            pass
        registry.leave(room, member.connectionId)
    registry.forget_room(room)
    _audit(registry, staff, "close_room", room, outcome=f"{closed} connections closed")
    return {"room": room, "closed": closed}


def support_token(secret: str, request: dict) -> dict:
    staff = request.get("staff")
    if not isinstance(staff, str) or not staff.strip():
        raise AdminError("invalid", "staff (the calling staff member's identity) is required")
    room = request.get("room", "*")
    if room != "*":
        room = _room(request)
    ttl = _int(request, "ttl", SUPPORT_TOKEN_TTL, 60, SUPPORT_TOKEN_MAX_TTL)
    now = int(time.time())
    try:
        token = tokens.mint(
            secret, sub=staff, role="support", rooms=[room], ttl=ttl, name=staff, now=now
        )
    except ValueError as error:  # a staff identity the authorizer would deny
        raise AdminError("invalid", f"staff: {error}") from None
    return {"token": token, "expiresAt": now + ttl, "room": room}


def stats(registry: Registry, request: dict) -> dict:
    """Walks the whole index, a page (two round trips) at a time."""
    cursor, rooms_seen, members_total, hidden_total = 0, 0, 0, 0
    while True:
        page = registry.room_page(cursor, MAX_PAGE)
        for summary in page.rooms:
            rooms_seen += 1
            members_total += sum(not m.hidden for m in summary.members)
            hidden_total += sum(m.hidden for m in summary.members)
        cursor = page.cursor
        if cursor == 0:
            break
    return {
        "rooms": rooms_seen,
        "connections": members_total + hidden_total,
        "members": members_total,
        "support": hidden_total,
    }


def audit(registry: Registry, request: dict) -> dict:
    count = _int(request, "count", 100, 1, 1000)
    return {"entries": registry.audit_entries(count)}


def handle(request: object, registry: Registry, poster_factory, secret_factory) -> dict:
    """Runs one admin request; ``poster_factory()`` and ``secret_factory()`` are called lazily."""
    if not isinstance(request, dict):
        return {"ok": False, "error": "invalid", "message": "the request must be a JSON object"}
    op = request.get("op")
    try:
        if op == "rooms":
            answer = rooms(registry, request)
        elif op == "members":
            answer = members(registry, request)
        elif op == "user_rooms":
            answer = user_rooms(registry, request)
        elif op == "history":
            answer = history(registry, request)
        elif op == "kick":
            answer = kick(registry, poster_factory(), request)
        elif op == "check_connections":
            answer = check_connections(registry, poster_factory(), request)
        elif op == "close_room":
            answer = close_room(registry, poster_factory(), request)
        elif op == "support_token":
            answer = support_token(secret_factory(), request)
        elif op == "stats":
            answer = stats(registry, request)
        elif op == "audit":
            answer = audit(registry, request)
        else:
            raise AdminError(
                "unknown_op",
                f"unknown op {op!r}; expected one of {', '.join(OPS)}",
            )
    except AdminError as error:
        return {"ok": False, "error": error.code, "message": error.message}
    return {"ok": True, **answer}


OPS = (
    "rooms",
    "members",
    "user_rooms",
    "history",
    "kick",
    "check_connections",
    "close_room",
    "support_token",
    "stats",
    "audit",
)
