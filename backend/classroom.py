"""What happens in a classroom: members come and go, messages are stored and fanned out.

Plain functions over a ``Registry`` and a ``Poster`` passed in, so tests and the sandbox call
them with real clients pointed wherever they like. Replies to the sender go through the
management API too, exactly as in AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from backend import frames
from backend.fanout import FanoutResult, deliver
from backend.observability import COUNT, logger, record
from backend.poster import Gone, Poster, PostError
from backend.registry import Member, Registry, now_ms


@dataclass(frozen=True)
class Caller:
    """The connection a frame came from, as the authorizer's context names it, and what the
    event says of the connection (enough to register it again if its registration is lost)."""

    connection_id: str
    user_id: str
    role: str
    room: str
    connected_at: int = 0
    source_ip: str = ""
    user_agent: str = ""
    name: str = ""

    @property
    def hidden(self) -> bool:
        return self.role == "support"

    @property
    def complete(self) -> bool:
        """Whether the context names the user, role and room (API Gateway passes $connect's)."""
        return bool(self.user_id and self.role and self.room)

    def member(self) -> Member:
        return Member(
            connectionId=self.connection_id,
            userId=self.user_id,
            role=self.role,
            connectedAt=self.connected_at or now_ms(),
            sourceIp=self.source_ip,
            userAgent=self.user_agent,
            hidden=self.hidden,
            name=self.name,
        )


def resolve(registry: Registry, caller: Caller) -> Caller | None:
    """The caller with its user, role and room; from its connection record when the event's
    authorizer context lacks them, None when there is no record either."""
    if caller.complete:
        return caller
    record = registry.room_of(caller.connection_id) or {}
    found = replace(
        caller,
        user_id=record.get("userId", ""),
        role=record.get("role", ""),
        room=record.get("room", ""),
    )
    return found if found.complete else None


def fan_out(
    registry: Registry,
    poster: Poster,
    room: str,
    targets: list[str],
    payload: str,
    concurrency: int,
    *,
    tell_leaves: bool = True,
    lead: tuple[str, str] | None = None,
) -> FanoutResult:
    """Delivers to ``targets`` and removes the registrations that answered 410
    (``remove_gone``, which tells the room ``leave`` unless ``tell_leaves`` is off).
    ``lead`` (connection id, frame), the sender's ack, goes first in the same fan-out.
    """
    result = deliver(poster, targets, payload, concurrency, lead=lead)
    if lead is not None and result.lead_failure is not None:
        logger.warning("reply failed", extra={"error": result.lead_failure})
    pruned = remove_gone(registry, poster, room, result.gone, concurrency, tell_leaves=tell_leaves)
    record("FanoutSize", COUNT, len(targets))
    record("Deliveries", COUNT, result.delivered)
    record("StaleConnectionsPruned", COUNT, len(pruned))
    record("PostFailures", COUNT, len(result.failed))
    if result.throttled_retries:
        record("ThrottledRetries", COUNT, result.throttled_retries)
    if result.failed:
        logger.warning(
            "some deliveries failed",
            extra={
                "failed": len(result.failed),
                "sample": dict(list(result.failed.items())[:5]),
            },
        )
    return result


def remove_gone(
    registry: Registry,
    poster: Poster,
    room: str,
    gone: list[str],
    concurrency: int = 128,
    *,
    tell_leaves: bool = True,
) -> list[Member]:
    """Removes the registrations the management API answered 410 for; returns who they were.

    A pruned member left without its ``$disconnect``, so the room is told ``leave`` for it
    here (support members stay hidden); that fan-out prunes without telling again.
    """
    pruned = registry.prune(room, gone) if gone else []
    visible = [member for member in pruned if not member.hidden]
    if tell_leaves and visible:
        remaining = [member.connectionId for member in registry.members(room)]
        for member in visible:
            fan_out(
                registry,
                poster,
                room,
                remaining,
                frames.leave(room, member.userId, member.role),
                concurrency,
                tell_leaves=False,
            )
    return pruned


def reply(poster: Poster, caller: Caller, payload: str) -> bool:
    """Sends a frame to the caller; False when the caller is already gone."""
    try:
        poster.post(caller.connection_id, payload.encode("utf-8"))
        return True
    except Gone:
        return False
    except PostError as error:
        logger.warning("reply failed", extra={"error": str(error)})
        return False


def connect(
    registry: Registry,
    poster: Poster,
    caller: Caller,
    *,
    source_ip: str = "",
    user_agent: str = "",
    connected_at: int | None = None,
    concurrency: int = 128,
) -> FanoutResult:
    """Registers the connection and tells the classroom ``join`` (support stays hidden)."""
    member = Member(
        connectionId=caller.connection_id,
        userId=caller.user_id,
        role=caller.role,
        connectedAt=connected_at or now_ms(),
        sourceIp=source_ip,
        userAgent=user_agent,
        hidden=caller.hidden,
        name=caller.name,
    )
    others = registry.join(caller.room, member)
    if caller.hidden:
        return FanoutResult()
    return fan_out(
        registry,
        poster,
        caller.room,
        others,
        frames.join(caller.room, caller.user_id, caller.role),
        concurrency,
    )


def disconnect(
    registry: Registry,
    poster: Poster,
    connection_id: str,
    *,
    room: str | None = None,
    concurrency: int = 128,
) -> FanoutResult:
    """Removes the connection and tells the classroom ``leave``; safe to run twice."""
    record_ = registry.room_of(connection_id)
    room = (record_ or {}).get("room") or room
    if not room:
        return FanoutResult()
    member, others = registry.leave(room, connection_id)
    if member is None or member.hidden:
        return FanoutResult()
    return fan_out(
        registry, poster, room, others, frames.leave(room, member.userId, member.role), concurrency
    )


def handle_frame(
    registry: Registry,
    poster: Poster,
    caller: Caller,
    body: str | bytes | None,
    *,
    concurrency: int = 128,
) -> str | None:
    """Answers one client frame; returns the error code it earned, if any."""
    resolved = resolve(registry, caller)
    if resolved is None:
        logger.warning("frame without authorizer context or connection record")
        message = "this connection is not registered in a classroom; connect again"
        reply(poster, caller, frames.error("forbidden", message, frames.client_id_of(body)))
        return "forbidden"
    caller = resolved
    try:
        request = frames.parse(body, caller.room)
    except frames.FrameError as error:
        reply(poster, caller, frames.error(error.code, error.message, error.client_id))
        return error.code

    if isinstance(request, frames.Send):
        now = now_ms()
        head, tail = frames.message_parts(caller.room, now, caller.user_id, caller.role, request)
        if not frames.deliverable(head, tail):
            message = "with its envelope the message would exceed 128 KB; send less data"
            reply(poster, caller, frames.error("too_large", message, request.id))
            return "too_large"
        stored = registry.store(caller.room, caller.member(), head, tail, now, request.id)
        others = [m for m in stored.members if m != caller.connection_id]
        if stored.rejoined:
            tell_rejoined(registry, poster, caller, others, concurrency)
        seq = stored.seq
        if seq == 0:
            limit = registry.rate_limit_per_second
            message = f"at most {limit} messages a second; slow down and resend"
            reply(poster, caller, frames.error("rate_limited", message, request.id))
            return "rate_limited"
        ack = (caller.connection_id, frames.ack(request.id, seq))
        if stored.duplicate:
            # A resend (after ``unavailable`` or no ack): nothing new was stored. The first
            # attempt's fan-out may never have run (its answer came too late), so the members
            # get the stored frame again; a client drops a seq it already holds.
            record("DuplicateSends", COUNT, 1)
            targets = others if stored.original else []
            original = stored.original or ""
            fan_out(registry, poster, caller.room, targets, original, concurrency, lead=ack)
            return None
        if caller.hidden:
            registry.audit(
                {
                    "staff": caller.user_id,
                    "action": "inject",
                    "connectionId": caller.connection_id,
                    "room": caller.room,
                    "seq": seq,
                    "type": request.type,
                    "ts": now,
                }
            )
        message = head + str(seq) + tail
        fan_out(registry, poster, caller.room, others, message, concurrency, lead=ack)
        return None

    rejoined, others = registry.touch(caller.room, caller.member())
    if rejoined:
        tell_rejoined(registry, poster, caller, others, concurrency)
    if isinstance(request, frames.Sync):
        history = registry.history(caller.room, request.since)
        for part in frames.history(
            caller.room, history.messages, history.latest, history.truncated
        ):
            if not reply(poster, caller, part):
                break
    elif isinstance(request, frames.Who):
        visible = [m.presence() for m in registry.members(caller.room) if not m.hidden]
        reply(poster, caller, frames.presence(caller.room, visible))
    else:
        reply(poster, caller, frames.pong(now_ms()))
    return None


def tell_rejoined(
    registry: Registry, poster: Poster, caller: Caller, others: list[str], concurrency: int
) -> None:
    """A connection whose registration was lost is registered again: the room hears ``join``
    (support stays hidden), as it did when the connection first came."""
    logger.info("registration written again")
    record("RegistrationsHealed", COUNT, 1)
    if not caller.hidden:
        frame = frames.join(caller.room, caller.user_id, caller.role)
        fan_out(registry, poster, caller.room, others, frame, concurrency)
