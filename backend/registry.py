"""The Redis key schema: which connection is in which classroom, and each classroom's log.

This module is the only one that knows the keys. Per-classroom keys share the hash tag
``{room}`` so a classroom's keys live in one cluster slot and its scripts run in cluster mode:

    room:{r}:members   sorted set  connectionId -> registration expiry (epoch ms)
    room:{r}:info      hash        connectionId -> member JSON (userId, role, connectedAt, ...)
    room:{r}:log       sorted set  stored message frame -> seq
    room:{r}:seq       string      the last seq given out (starts above a floor, see below)
    room:{r}:meta      hash        lastActivity (epoch ms), floor (the seq the count started at),
                                   changed (when the membership last changed, epoch us)
    room:{r}:ids       sorted set  "{len(userId)}:{userId}{clientId}" -> seq, for the messages
                                   still in the log: a resend with the same id is not stored
    room:{r}:left      sorted set  connectionId -> when it left (epoch ms), for ten minutes:
                                   a frame racing its $disconnect must not register it again
    room:{r}:rate:{c}:{s} string   sends by connection c in second s (expires in 2 s)
    room:{r}:sent:{m}  string      messages stored in minute m (epoch minutes; expires in 120 s)
    conn:{id}          hash        room, userId, role: finds the classroom at $disconnect
    rooms              sorted set  room -> last join (epoch ms): the index of active classrooms
    connections        sorted set  connectionId -> registration expiry: counts live connections
    user:{u}:rooms     sorted set  "{room}|{connectionId}" -> when it joined: a user's classrooms
    audit:support      stream      support injections with the staff identity

The connection record, the indexes and the user's entry live in other slots than the room's,
so they are written beside its scripts (one pipelined round trip), not in them; an entry whose
room registration is gone is dropped when it is read.

Registrations expire after the gateway's connection limit unless refreshed by traffic or
``ping``, so a lost ``$disconnect`` heals itself; expired members are dropped by the next
script that reads the classroom.

Lost data heals too (an ElastiCache failover that lost the last writes, a node back empty):
every frame a connection sends carries its member record, and the script that handles it
registers the connection again when its registration is gone (unless it left). A room's seq
count starts from a floor, the Redis clock in microseconds when the ``seq`` key is created,
so a count that starts again after a loss starts above every seq it gave out before: one
room's scripts cannot run more than once a microsecond.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from redis.cluster import RedisCluster

from backend import registry_scripts as scripts

ROOM_INDEX = "rooms"
CONNECTION_INDEX = "connections"
AUDIT_STREAM = "audit:support"
AUDIT_MAX_ENTRIES = 100_000
# How long a connection that left is remembered (so a frame still in flight when its
# $disconnect ran does not register it again): the scripts' constant.
LEFT_REMEMBERED_SECONDS = scripts.LEFT_REMEMBERED_SECONDS


def room_keys(room: str) -> list[str]:
    """members, info, log, seq, meta, ids, left: every script gets them all, in this order."""
    tag = "{" + room + "}"
    parts = ("members", "info", "log", "seq", "meta", "ids", "left")
    return [f"room:{tag}:{part}" for part in parts]


def dedupe_key(user_id: str, client_id: str) -> str:
    """The ``ids`` entry of a user's message id; the length prefix keeps it unambiguous."""
    return f"{len(user_id)}:{user_id}{client_id}"


def rate_key(room: str, connection_id: str, second: int) -> str:
    return "room:{" + room + "}:rate:" + connection_id + ":" + str(second)


def sent_key(room: str, minute: int) -> str:
    return "room:{" + room + "}:sent:" + str(minute)


def connection_key(connection_id: str) -> str:
    return "conn:{" + connection_id + "}"


def user_rooms_key(user_id: str) -> str:
    return "user:{" + user_id + "}:rooms"


def _user_entry(room: str, connection_id: str) -> str:
    return room + "|" + connection_id  # a room name has no "|"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Member:
    connectionId: str
    userId: str
    role: str
    connectedAt: int
    sourceIp: str = ""
    userAgent: str = ""
    hidden: bool = False
    name: str = ""  # the token's display name, if it had one

    @classmethod
    def from_json(cls, text: str) -> Member:
        """A stored member record; fields a later version added are ignored, so a rolling
        deploy's older functions still read what newer ones wrote."""
        record = json.loads(text)
        return cls(**{k: v for k, v in record.items() if k in _MEMBER_FIELDS})

    def presence(self) -> dict:
        return {"userId": self.userId, "role": self.role, "connectedAt": self.connectedAt}


_MEMBER_FIELDS = frozenset(Member.__dataclass_fields__)


@dataclass(frozen=True)
class History:
    messages: list[str]
    latest: int
    truncated: bool


@dataclass(frozen=True)
class Stored:
    """What ``store`` did with a message: its seq (0: over the rate, nothing stored), every live
    connection, whether the sender was registered again, and for a resend of a message already
    in the log, that message's frame as stored (``seq`` is then the original's; the frame is
    empty if the log no longer has it)."""

    seq: int
    members: list[str]
    rejoined: bool = False
    original: str | None = None

    @property
    def duplicate(self) -> bool:
        return self.original is not None


@dataclass(frozen=True)
class RoomSummary:
    """A listed room. ``version`` changes whenever its membership does; ``unchanged`` rooms
    had the version the caller already knew, so their members were not read (``members`` is
    empty)."""

    room: str
    members: list[Member]
    last_activity: int
    latest_seq: int
    messages_last_minute: int
    version: str = ""
    unchanged: bool = False


@dataclass(frozen=True)
class RoomPage:
    """One page of the classroom index; ``cursor`` 0 ends the walk. ``classrooms`` counts the
    index (rooms whose members all expired count until a page or a script finds them empty);
    ``connections`` counts live registrations."""

    rooms: list[RoomSummary]
    cursor: int
    classrooms: int
    connections: int


class Registry:
    """Classroom membership and logs on one Redis client (a single node or a cluster)."""

    def __init__(
        self,
        client,
        *,
        connection_ttl: int = 7200,
        log_max_messages: int = 1000,
        log_retention_seconds: int = 86400,
        rate_limit_per_second: int = 0,
        gone_grace_seconds: int = 10,
    ) -> None:
        self.client = client
        self.gone_grace_seconds = gone_grace_seconds
        self.rate_limit_per_second = rate_limit_per_second
        self.connection_ttl = connection_ttl
        self.log_max_messages = log_max_messages
        self.log_retention_seconds = log_retention_seconds
        self._join = client.register_script(scripts.JOIN)
        self._touch = client.register_script(scripts.TOUCH)
        self._leave = client.register_script(scripts.LEAVE)
        self._send = client.register_script(scripts.SEND)
        self._history = client.register_script(scripts.HISTORY)
        self._members = client.register_script(scripts.MEMBERS)
        self._prune_gone = client.register_script(scripts.PRUNE_GONE)

    def _expiry(self, now: int) -> int:
        return now + self.connection_ttl * 1000

    def join(self, room: str, member: Member, now: int | None = None) -> list[str]:
        """Registers ``member`` in ``room``; returns the other live connections to tell."""
        now = now_ms() if now is None else now
        self._write_records(room, member, now)
        members = self._join(
            keys=room_keys(room), args=[now, member.connectionId, self._expiry(now), _json(member)]
        )
        return [m for m in _text(members) if m != member.connectionId]

    def join_many(self, joins: Iterable[tuple[str, Member]], now: int | None = None) -> None:
        """Registers each (room, member) as ``join`` does, without telling anyone, all in one
        round trip: fills a registry to a whole district's size in seconds (a benchmark).
        A cluster client pipelines no scripts, so there it is one ``join`` after another."""
        now = now_ms() if now is None else now
        if isinstance(self.client, RedisCluster):
            for room, member in joins:
                self.join(room, member, now)
            return
        pipe = self.client.pipeline(transaction=False)
        for room, member in joins:
            self._queue_records(pipe, room, member, now)
            self._join(
                keys=room_keys(room),
                args=[now, member.connectionId, self._expiry(now), _json(member)],
                client=pipe,
            )
        pipe.execute()

    def _write_records(self, room: str, member: Member, now: int) -> None:
        """The connection record, the room's place in the index, the connection's in the count
        and the user's entry: other slots than the room's, so not in its scripts."""
        pipe = self.client.pipeline(transaction=False)
        self._queue_records(pipe, room, member, now)
        pipe.execute()

    def _queue_records(self, pipe, room: str, member: Member, now: int) -> None:
        user_key = user_rooms_key(member.userId)
        pipe.hset(
            connection_key(member.connectionId),
            mapping={
                "room": room,
                "userId": member.userId,
                "role": member.role,
                "hidden": "1" if member.hidden else "0",
            },
        )
        pipe.expire(connection_key(member.connectionId), self.connection_ttl)
        pipe.zadd(ROOM_INDEX, {room: now})
        pipe.zadd(CONNECTION_INDEX, {member.connectionId: self._expiry(now)})
        pipe.zadd(user_key, {_user_entry(room, member.connectionId): now})
        pipe.expire(user_key, self.connection_ttl)

    def _forget_records(self, room: str, members: list[Member], room_empty: bool) -> None:
        """Removes what ``_write_records`` wrote for members that left, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for member in members:
            pipe.delete(connection_key(member.connectionId))
            pipe.zrem(CONNECTION_INDEX, member.connectionId)
            pipe.zrem(user_rooms_key(member.userId), _user_entry(room, member.connectionId))
        if room_empty:
            pipe.zrem(ROOM_INDEX, room)
        if members or room_empty:
            pipe.execute()

    def room_of(self, connection_id: str) -> dict | None:
        record = self.client.hgetall(connection_key(connection_id))
        return _text_dict(record) or None

    def leave(
        self, room: str, connection_id: str, now: int | None = None
    ) -> tuple[Member | None, list[str]]:
        """Removes a connection; returns the member it was (None if already gone) and who is left."""
        now = now_ms() if now is None else now
        info, members = self._leave(keys=room_keys(room), args=[now, connection_id])
        member = Member.from_json(info) if info else None
        left = _text(members)
        if member is None:
            self.client.delete(connection_key(connection_id))
            if not left:
                self.client.zrem(ROOM_INDEX, room)
        else:
            self._forget_records(room, [member], room_empty=not left)
        return member, left

    def prune(self, room: str, connection_ids: list[str], now: int | None = None) -> list[Member]:
        """Removes connections the gateway reported gone (HTTP 410); returns who they were.

        Members that connected within the grace period are kept: their handshake may still be
        in progress, and API Gateway answers 410 until it completes.
        """
        now = now_ms() if now is None else now
        oldest = now - self.gone_grace_seconds * 1000
        records, left = self._prune_gone(keys=room_keys(room), args=[now, oldest, *connection_ids])
        removed = [Member.from_json(record) for record in _text(records)]
        self._forget_records(room, removed, room_empty=int(left) == 0)
        return removed

    def store(
        self,
        room: str,
        sender: Member,
        head: str,
        tail: str,
        now: int | None = None,
        client_id: str | None = None,
    ) -> Stored:
        """Stores a message frame with the next seq, in one round trip.

        The sender's registration is refreshed, or written again if it was lost (``rejoined``;
        its connection record is then written too, a second round trip that only a heal costs).
        A message with a ``client_id`` the sender's user already used, still in the log, is not
        stored again: the answer carries the original's seq and frame.
        """
        now = now_ms() if now is None else now
        answer = self._send(
            keys=[
                *room_keys(room),
                rate_key(room, sender.connectionId, now // 1000),
                sent_key(room, now // 60_000),
            ],
            args=[
                now,
                sender.connectionId,
                self._expiry(now),
                _json(sender),
                head,
                tail,
                self.log_max_messages,
                self.log_retention_seconds,
                self.rate_limit_per_second,
                dedupe_key(sender.userId, client_id) if client_id is not None else "",
            ],
        )
        seq, members, rejoined, original = answer
        original = _str(original) if original is not None else None
        stored = Stored(int(seq), _text(members), bool(rejoined), original)
        if stored.rejoined:
            self._write_records(room, sender, now)
        return stored

    def touch(self, room: str, member: Member, now: int | None = None) -> tuple[bool, list[str]]:
        """Refreshes a registration (any frame but ``send``), writing it again if it was lost
        unless the connection left; returns whether it was written again, and the other live
        connections (to tell ``join``)."""
        now = now_ms() if now is None else now
        rejoined, members = self._touch(
            keys=room_keys(room),
            args=[now, member.connectionId, self._expiry(now), _json(member)],
        )
        if rejoined:
            self._write_records(room, member, now)
        else:
            pipe = self.client.pipeline(transaction=False)
            pipe.expire(connection_key(member.connectionId), self.connection_ttl)
            pipe.zadd(CONNECTION_INDEX, {member.connectionId: self._expiry(now)})
            pipe.expire(user_rooms_key(member.userId), self.connection_ttl)
            pipe.execute()
        return bool(rejoined), [m for m in _text(members) if m != member.connectionId]

    def history(self, room: str, since: int) -> History:
        latest, first, floor, messages = self._history(
            keys=room_keys(room), args=[now_ms(), since, self.log_retention_seconds]
        )
        latest, first, floor = int(latest), int(first), int(floor)
        # Seqs were given out in (floor, latest]; a client holding one from before the floor
        # (the count started again after lost data) missed whatever was lost.
        start = max(since, floor)
        truncated = (0 < since < floor) or (start < latest and (first == 0 or first > start + 1))
        return History(_text(messages), latest, truncated)

    def members(self, room: str) -> list[Member]:
        records = self._members(keys=room_keys(room), args=[now_ms()])
        members = [Member.from_json(r) for r in _text(records) if r]
        return sorted(members, key=lambda m: (m.connectedAt, m.connectionId))

    def last_seen(self, room: str) -> dict[str, int]:
        """When each registered connection was last heard from (epoch ms): every frame sets a
        registration's expiry to then plus the connection TTL, so it is read back from there."""
        entries = self.client.zrange(room_keys(room)[0], 0, -1, withscores=True)
        ttl = self.connection_ttl * 1000
        return {_str(c): int(expiry) - ttl for c, expiry in entries}

    def latest_seq(self, room: str) -> int:
        return int(self.client.get(room_keys(room)[3]) or 0)

    def last_activity(self, room: str) -> int:
        return int(self.client.hget(room_keys(room)[4], "lastActivity") or 0)

    def rooms(self, cursor: int = 0, limit: int = 50) -> tuple[list[str], int]:
        """One page of the active-classroom index; cursor 0 starts and ends the walk."""
        next_cursor, entries = self.client.zscan(ROOM_INDEX, cursor=cursor, count=limit)
        return [_str(room) for room, _ in entries], int(next_cursor)

    def room_page(
        self,
        cursor: int = 0,
        limit: int = 50,
        now: int | None = None,
        known: Mapping[str, str] | None = None,
    ) -> RoomPage:
        """One page of the index with each room's live members, activity and seq, and the
        environment's totals: two round trips whatever the page's size (the index, then one
        pipeline over the listed rooms), plus one to forget rooms found empty.

        ``known`` maps rooms to the versions the caller holds: a listed room still at that
        version is answered ``unchanged`` without reading its member records (the bulk of a
        page); the rooms whose version moved take one more round trip for their records.

        Plain reads, no script: a room's expired members are left for its next script to drop.
        A room's version is read before its members, so a change between the two reads leaves
        an older version beside newer members (read again next time), never the reverse.
        """
        now = now_ms() if now is None else now
        known = known or {}
        names, next_cursor = self.rooms(cursor, limit)
        minute, into = divmod(now, 60_000)
        pipe = self.client.pipeline(transaction=False)
        pipe.zremrangebyscore(CONNECTION_INDEX, "-inf", now)
        pipe.zcard(CONNECTION_INDEX)
        pipe.zcard(ROOM_INDEX)
        for name in names:
            members_key, info_key, _, seq_key, meta_key, *_ = room_keys(name)
            pipe.hmget(meta_key, "lastActivity", "changed")
            pipe.get(seq_key)
            pipe.get(sent_key(name, minute))
            pipe.get(sent_key(name, minute - 1))
            if name in known:
                pipe.zcount(members_key, f"({now}", "+inf")
            else:
                pipe.zrangebyscore(members_key, f"({now}", "+inf")
                pipe.hgetall(info_key)
        answers = iter(pipe.execute())
        next(answers)
        connections, classrooms = int(next(answers)), int(next(answers))
        cheap: dict[str, tuple[int, int, int, str]] = {}  # activity, seq, last minute, version
        found: dict[str, list[Member]] = {}  # the rooms whose member records were read
        unchanged: set[str] = set()
        moved: list[str] = []
        for name in names:
            (activity, changed), seq, this_minute, last_minute = (next(answers) for _ in range(4))
            if name in known:
                live_count = int(next(answers))
            else:
                live, info = _text(next(answers)), _text_dict(next(answers))
                live_count = len(live)
                found[name] = _members(live, info)
            version = f"{_str(changed) if changed else '0'}.{live_count}"
            # A sliding minute from two per-minute counts: all of this minute's, and the share
            # of the last minute's that falls within the past 60 s (counts assumed even).
            recent = int(this_minute or 0) + int(last_minute or 0) * (60_000 - into) / 60_000
            cheap[name] = (int(activity or 0), int(seq or 0), round(recent), version)
            if name in known and live_count and version == known[name]:
                unchanged.add(name)
            elif name in known and live_count:
                moved.append(name)
        if moved:
            pipe = self.client.pipeline(transaction=False)
            for name in moved:
                members_key, info_key, *_ = room_keys(name)
                pipe.zrangebyscore(members_key, f"({now}", "+inf")
                pipe.hgetall(info_key)
            records = iter(pipe.execute())
            for name in moved:
                found[name] = _members(_text(next(records)), _text_dict(next(records)))
        summaries, empty = [], []
        for name in names:
            if name not in unchanged and not found.get(name):
                empty.append(name)
                continue
            activity, seq, recent_count, version = cheap[name]
            summaries.append(
                RoomSummary(
                    room=name,
                    members=found.get(name, []),
                    last_activity=activity,
                    latest_seq=seq,
                    messages_last_minute=recent_count,
                    version=version,
                    unchanged=name in unchanged,
                )
            )
        if empty:
            self.client.zrem(ROOM_INDEX, *empty)
            classrooms -= len(empty)
        return RoomPage(summaries, next_cursor, classrooms, connections)

    def user_rooms(self, user_id: str, now: int | None = None) -> dict[str, list[str]]:
        """The classrooms a user is in, each with the user's live connections there.

        Entries whose registration is gone (a lost ``$disconnect``, an expiry) are dropped from
        the user's index here: one round trip for the index, one pipeline for the rooms, one
        more only when there is something to drop.
        """
        now = now_ms() if now is None else now
        key = user_rooms_key(user_id)
        entries = _text(self.client.zrange(key, 0, -1))
        pipe = self.client.pipeline(transaction=False)
        pairs = [entry.split("|", 1) for entry in entries]
        for room, connection_id in pairs:
            pipe.zscore(room_keys(room)[0], connection_id)
        expiries = pipe.execute() if pairs else []
        found: dict[str, list[str]] = {}
        stale = []
        for entry, (room, connection_id), expiry in zip(entries, pairs, expiries, strict=True):
            if expiry is not None and float(expiry) > now:
                found.setdefault(room, []).append(connection_id)
            else:
                stale.append(entry)
        if stale:
            self.client.zrem(key, *stale)
        return found

    def forget_room(self, room: str) -> None:
        self.client.zrem(ROOM_INDEX, room)

    def audit(self, entry: dict) -> None:
        """Records a support action with the staff identity (PROTOCOL.md: every injection)."""
        fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in entry.items()}
        self.client.xadd(AUDIT_STREAM, fields, maxlen=AUDIT_MAX_ENTRIES, approximate=True)

    def audit_entries(self, count: int = 100) -> list[dict]:
        entries = self.client.xrevrange(AUDIT_STREAM, count=count)
        return [_text_dict(fields) | {"auditId": _str(entry_id)} for entry_id, fields in entries]


def _members(live: list[str], records: dict[str, str]) -> list[Member]:
    """The live connections' member records, in the order they joined."""
    found = [Member.from_json(records[c]) for c in live if c in records]
    return sorted(found, key=lambda m: (m.connectedAt, m.connectionId))


def _json(member: Member) -> str:
    return json.dumps(asdict(member), separators=(",", ":"))


def _str(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _text(values) -> list:
    return [_str(v) if v is not None else None for v in values]


def _text_dict(mapping) -> dict:
    return {_str(k): _str(v) for k, v in mapping.items()}
