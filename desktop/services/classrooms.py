"""The live classrooms of an environment, as support staff look at them: plain data over the
admin client, no Qt.

    Classroom     one row of the classrooms list (a ``rooms`` page's entry)
    Member        one connection in a classroom, with where it came from and when it was seen
    CheckResult   a ghost check of one classroom: who is registered but gone at the gateway
    AuditEntry    one support action from the audit log
    Classrooms    the operations, over one ``AdminClient`` and the staff identity that signs
                  every change

A refresh walks the classrooms index a page at a time (``walk``): a small first page so the
list shows at once, then big pages. Rooms whose membership has not changed since the last
walk come back as ``unchanged`` when the backend can tell (their version), and keep the counts
already known.
"""

from __future__ import annotations

import getpass
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from desktop.services.admin import (
    AdminClient,
    LambdaTransport,
    SandboxTransport,
    admin_function_name,
)
from desktop.services.errors import ConfigurationError
from desktop.services.room import room_url

if TYPE_CHECKING:
    from desktop.services.deploy import DeployEngine

SUPPORT_TOKEN_TTL = 900  # a support token lives 15 minutes: each reconnect asks a new one

FIRST_PAGE = 50
# Pages after the first: big enough that a walk of a district takes a few seconds, small enough
# that one page holds the admin handler (in the sandbox, one of the workers that also run the
# classrooms' handlers) for a tenth of a second at most (docs/benchmarks.md).
PAGE = 200
MAX_KNOWN = 1000  # the admin op's bound on the versions a page may send
AUDIT_ENTRIES = 200
# Checking every classroom asks the gateway about every connection; at most this many
# classrooms a second, so a check of a whole school does not crowd out the fan-out's calls.
CHECK_ALL_PER_SECOND = 4.0


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Classroom:
    room: str
    teachers: int = 0
    students: int = 0
    hidden: int = 0
    members: int = 0  # visible members (teachers, students and any other visible role)
    connected_since: int = 0  # epoch ms: the oldest member's connection
    last_activity: int = 0  # epoch ms: the last message stored
    messages_last_minute: int = 0
    latest_seq: int = 0
    version: str = ""


@dataclass(frozen=True, slots=True)
class Member:
    connection_id: str
    user_id: str
    role: str
    connected_at: int  # epoch ms
    name: str = ""
    last_seen: int | None = None  # epoch ms
    source_ip: str = ""
    user_agent: str = ""
    hidden: bool = False


@dataclass(frozen=True)
class RoomsPage:
    classrooms: list[Classroom]
    cursor: str | None  # None: the walk is over
    total_classrooms: int
    total_connections: int


@dataclass(frozen=True, slots=True)
class Ghost:
    room: str
    connection_id: str
    user_id: str
    role: str
    connected_at: int


@dataclass(frozen=True)
class CheckResult:
    room: str
    members: int
    checked: int
    truncated: bool
    ghosts: list[Ghost]
    failures: list[tuple[str, str]]  # (connection id, what went wrong)
    pruned: list[str] | None = None  # connection ids; None: it was only a check


@dataclass(frozen=True, slots=True)
class AuditEntry:
    audit_id: str
    when: int  # epoch ms
    staff: str
    action: str
    room: str
    target: str  # a connection id, a user, or "" for the whole classroom
    outcome: str


def classroom_from(entry: Mapping, known: Classroom | None = None) -> Classroom:
    """A ``rooms`` entry as a row; an ``unchanged`` one keeps the counts of ``known``."""
    base = known if entry.get("unchanged") and known is not None else None
    if base is None:
        base = Classroom(
            room=str(entry["room"]),
            teachers=int(entry.get("teachers") or 0),
            students=int(entry.get("students") or 0),
            hidden=int(entry.get("hidden") or 0),
            members=int(entry.get("members") or 0),
            connected_since=int(entry.get("connectedSince") or 0),
        )
    return replace(
        base,
        last_activity=int(entry.get("lastActivity") or 0),
        messages_last_minute=int(entry.get("messagesLastMinute") or 0),
        latest_seq=int(entry.get("latestSeq") or 0),
        version=str(entry.get("version") or ""),
    )


def member_from(record: Mapping) -> Member:
    seen = record.get("lastSeen")
    return Member(
        connection_id=str(record["connectionId"]),
        user_id=str(record.get("userId", "")),
        role=str(record.get("role", "")),
        connected_at=int(record.get("connectedAt") or 0),
        name=str(record.get("name") or ""),
        last_seen=int(seen) if seen is not None else None,
        source_ip=str(record.get("sourceIp") or ""),
        user_agent=str(record.get("userAgent") or ""),
        hidden=bool(record.get("hidden")),
    )


def check_from(answer: Mapping) -> CheckResult:
    room = str(answer["room"])
    return CheckResult(
        room=room,
        members=int(answer.get("members") or 0),
        checked=int(answer.get("checked") or 0),
        truncated=bool(answer.get("truncated")),
        ghosts=[
            Ghost(
                room,
                str(g["connectionId"]),
                str(g.get("userId", "")),
                str(g.get("role", "")),
                int(g.get("connectedAt") or 0),
            )
            for g in answer.get("ghosts") or []
        ],
        failures=[
            (str(f.get("connectionId", "")), str(f.get("error", "")))
            for f in answer.get("failures") or []
        ],
        pruned=[str(c) for c in answer["pruned"]] if "pruned" in answer else None,
    )


def audit_from(entry: Mapping) -> AuditEntry:
    """An audit entry; an injection (written by the message handler) names its seq and type."""
    action = str(entry.get("action") or "inject")
    target = str(entry.get("connectionId") or entry.get("userId") or "")
    outcome = str(entry.get("outcome") or "")
    if action == "inject" and not outcome:
        outcome = f"sent {entry.get('type', 'a message')} as seq {entry.get('seq', '?')}"
    try:
        when = int(entry.get("ts") or 0)
    except ValueError:
        when = 0
    return AuditEntry(
        audit_id=str(entry.get("auditId", "")),
        when=when,
        staff=str(entry.get("staff", "")),
        action=action,
        room=str(entry.get("room", "")),
        target=target,
        outcome=outcome,
    )


def sandbox_staff() -> str:
    """Who acts on the sandbox (the sandbox writes the same over whatever the console says)."""
    try:
        return f"{getpass.getuser()}@sandbox"
    except Exception:  # no user name in this environment
        return "someone@sandbox"


class Classrooms:
    """The Classrooms section's operations on one environment.

    ``admin`` is the environment's admin client, or a callable that builds it on first use (an
    AWS environment's needs the stack's outputs, which is a call to make off the GUI thread);
    ``staff`` gives the identity every change is audited under (the IAM ARN in AWS).
    """

    def __init__(
        self,
        admin: AdminClient | Callable[[], AdminClient],
        staff: Callable[[], str] = sandbox_staff,
        *,
        websocket_url: Callable[[], str] | None = None,
        first_page: int = FIRST_PAGE,
        page: int = PAGE,
    ) -> None:
        self._admin = admin
        self._websocket_url = websocket_url
        self._staff = staff
        self._staff_identity: str | None = None
        self._lock = threading.Lock()
        self.first_page = first_page
        self.page = page
        # The rooms each page of the last walk listed, by (cursor, limit): the next walk sends
        # their versions, so the rooms that did not change come back without their members.
        self._pages: dict[tuple[str | None, int], list[str]] = {}

    @property
    def admin(self) -> AdminClient:
        with self._lock:
            if not isinstance(self._admin, AdminClient):
                self._admin = self._admin()
            return self._admin

    def staff(self) -> str:
        """The staff identity, asked for once (STS in AWS)."""
        with self._lock:
            if self._staff_identity is None:
                self._staff_identity = self._staff()
            return self._staff_identity

    # Reading

    def rooms(
        self,
        cursor: str | None = None,
        limit: int = FIRST_PAGE,
        known: Mapping[str, Classroom] | None = None,
    ) -> RoomsPage:
        known = known or {}
        versions = {room: row.version for room, row in known.items() if row.version}
        answer = self.admin.rooms(cursor, limit, known=versions)
        return RoomsPage(
            classrooms=[classroom_from(e, known.get(str(e["room"]))) for e in answer["rooms"]],
            cursor=answer.get("cursor") or None,
            total_classrooms=int(answer.get("classrooms") or 0),
            total_connections=int(answer.get("connections") or 0),
        )

    def walk(
        self,
        known: Mapping[str, Classroom] | None = None,
        *,
        abort: threading.Event | None = None,
    ) -> Iterator[RoomsPage]:
        """Every page of the index, the first one small; ``known`` rows (the last walk's) let
        the rooms that did not change be answered without their members being read."""
        known = known or {}
        listed: dict[tuple[str | None, int], list[str]] = {}
        cursor, limit = None, self.first_page
        while True:
            before = self._pages.get((cursor, limit), [])
            sent = {room: known[room] for room in before[:MAX_KNOWN] if room in known}
            page = self.rooms(cursor, limit, sent)
            listed[(cursor, limit)] = [row.room for row in page.classrooms]
            yield page
            if page.cursor is None or (abort is not None and abort.is_set()):
                break
            cursor, limit = page.cursor, self.page
        if page.cursor is None:
            self._pages = listed

    def members(self, room: str) -> list[Member]:
        return [member_from(m) for m in self.admin.members(room)]

    def find_user(self, user_id: str) -> dict[str, list[str]]:
        """The classrooms ``user_id`` is in, each with that user's connections there."""
        return {str(r["room"]): list(r["connections"]) for r in self.admin.user_rooms(user_id)}

    def audit(self, count: int = AUDIT_ENTRIES) -> list[AuditEntry]:
        return [audit_from(e) for e in self.admin.call("audit", count=count)["entries"]]

    def check(self, room: str) -> CheckResult:
        return check_from(self.admin.check_connections(room))

    def check_all(
        self,
        rooms: list[str],
        *,
        abort: threading.Event | None = None,
        per_second: float = CHECK_ALL_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> Iterator[CheckResult]:
        """Checks each classroom in turn, at most ``per_second`` a second, until aborted."""
        interval = 1.0 / per_second if per_second > 0 else 0.0
        for room in rooms:
            started = clock()
            if abort is not None and abort.is_set():
                return
            yield self.check(room)
            rest = interval - (clock() - started)
            if rest > 0 and abort is not None and abort.wait(rest):
                return

    # Joining, for the Inspector

    def join_url(self, room: str, ttl: int = SUPPORT_TOKEN_TTL) -> str:
        """Where to connect to ``room`` as a hidden support member, with a fresh short-lived
        token from the admin function (the URL holds it: never log or show it)."""
        if self._websocket_url is None:
            raise ConfigurationError("This environment has no WebSocket URL to join a classroom.")
        token = str(self.admin.support_token(self.staff(), room, ttl=ttl)["token"])
        return room_url(self._websocket_url(), room, token)

    # Changing (each audited with the staff identity)

    def prune(self, room: str) -> CheckResult:
        answer = self.admin.call("check_connections", room=room, prune=True, staff=self.staff())
        return check_from(answer)

    def disconnect(self, connection_id: str) -> bool:
        answer = self.admin.call("kick", connectionId=connection_id, staff=self.staff())
        return bool(answer["kicked"])

    def close(self, room: str) -> int:
        return int(self.admin.call("close_room", room=room, staff=self.staff())["closed"])


def for_deployment(engine: DeployEngine) -> Classrooms:
    """An AWS environment's classrooms: its stack's admin function through Lambda ``Invoke``,
    each change audited under the caller's IAM identity from STS."""

    outputs: dict[str, str] = {}

    def stack_outputs() -> dict[str, str]:
        if not outputs:
            outputs.update(engine.outputs())
        return outputs

    from desktop.services.deploy import websocket_url

    def admin() -> AdminClient:
        name = admin_function_name(stack_outputs())
        return AdminClient(LambdaTransport(name, engine.target))

    def url() -> str:
        found = websocket_url(stack_outputs())
        if not found:
            raise ConfigurationError(
                "This environment's stack has no WebSocket URL in its outputs.",
                hint="Deploy it again from Environments & Deploy.",
            )
        return found

    return Classrooms(admin, staff=lambda: engine.identity.arn, websocket_url=url)


def for_sandbox(admin_url: str, admin_key: str, websocket_url: str | None = None) -> Classrooms:
    """The local sandbox's classrooms, through its ``/_admin`` and admin key."""
    return Classrooms(
        AdminClient(SandboxTransport(admin_url, admin_key)),
        websocket_url=(lambda: websocket_url) if websocket_url else None,
    )
