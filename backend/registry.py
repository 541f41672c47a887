"""The Redis key schema: which connection is in which classroom, and each classroom's log.

This module is the only one that knows the keys. Per-classroom keys share the hash tag
``{room}`` so a classroom's keys live in one cluster slot and its scripts run in cluster mode:

    room:{r}:members   sorted set  connectionId -> registration expiry (epoch ms)
    room:{r}:info      hash        connectionId -> member JSON (userId, role, connectedAt, ...)
    room:{r}:log       sorted set  stored message frame -> seq
    room:{r}:seq       string      the last seq given out
    room:{r}:meta      hash        lastActivity (epoch ms)
    room:{r}:rate:{c}:{s} string   sends by connection c in second s (expires in 2 s)
    conn:{id}          hash        room, userId, role: finds the classroom at $disconnect
    rooms              sorted set  room -> last join (epoch ms): the index of active classrooms
    audit:support      stream      support injections with the staff identity

Registrations expire after the gateway's connection limit unless refreshed by traffic or
``ping``, so a lost ``$disconnect`` heals itself; expired members are dropped by the next
script that reads the classroom.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

ROOM_INDEX = "rooms"
AUDIT_STREAM = "audit:support"
AUDIT_MAX_ENTRIES = 100_000


def room_keys(room: str) -> list[str]:
    tag = "{" + room + "}"
    return [f"room:{tag}:{part}" for part in ("members", "info", "log", "seq", "meta")]


def rate_key(room: str, connection_id: str, second: int) -> str:
    return "room:{" + room + "}:rate:" + connection_id + ":" + str(second)


def connection_key(connection_id: str) -> str:
    return "conn:{" + connection_id + "}"


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

    def presence(self) -> dict:
        return {"userId": self.userId, "role": self.role, "connectedAt": self.connectedAt}


# KEYS: members, info, log, seq, meta. The first lines of each script drop expired members.
_PRUNE = """
local now = tonumber(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  redis.call('HDEL', KEYS[2], unpack(expired))
end
"""

# ARGV: now, connectionId, expiry, member JSON. Returns the other live members.
_JOIN = (
    _PRUNE
    + """
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
redis.call('HSET', KEYS[5], 'lastActivity', ARGV[1])
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
return members
"""
)

# ARGV: now, connectionId. Returns {removed member JSON or false, other live members}.
_LEAVE = (
    _PRUNE
    + """
local info = redis.call('HGET', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
return {info or false, members}
"""
)

# KEYS[6]: the sender's send counter for this second. ARGV: now, sender connectionId, sender
# expiry, frame head, frame tail, max messages, retention seconds, rate limit a second (0: off).
# Stores the frame with the next seq and returns {seq, live members}, or {0} when the sender is
# over its rate: the whole broadcast costs this one round trip, whatever the classroom's size.
_SEND = (
    _PRUNE
    + """
local limit = tonumber(ARGV[8])
if limit > 0 then
  local used = redis.call('INCR', KEYS[6])
  if used == 1 then redis.call('EXPIRE', KEYS[6], 2) end
  if used > limit then return {0} end
end
local seq = redis.call('INCR', KEYS[4])
redis.call('ZADD', KEYS[3], seq, ARGV[4] .. seq .. ARGV[5])
local keep = tonumber(ARGV[6])
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(keep + 1))
local retention = tonumber(ARGV[7])
redis.call('EXPIRE', KEYS[3], retention)
redis.call('EXPIRE', KEYS[4], retention + 86400 * 30)
redis.call('HSET', KEYS[5], 'lastActivity', ARGV[1])
redis.call('EXPIRE', KEYS[5], retention)
redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[2])
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
return {seq, members}
"""
)

# ARGV: now, since. Returns {latest seq, first retained seq or 0, frames after since}.
_HISTORY = """
local latest = tonumber(redis.call('GET', KEYS[4]) or '0')
local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
local messages = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. ARGV[2], '+inf')
return {latest, tonumber(first[2] or '0'), messages}
"""

# ARGV: the oldest connectedAt that may be pruned (epoch ms), then connection ids. Removes the
# members the gateway reported gone, except those that joined since: API Gateway answers 410
# for a connection whose handshake is still in progress. Returns {removed member JSON, members
# left}.
_PRUNE_GONE = """
local removed = {}
for i = 2, #ARGV do
  local info = redis.call('HGET', KEYS[2], ARGV[i])
  if info and cjson.decode(info)['connectedAt'] <= tonumber(ARGV[1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    removed[#removed + 1] = info
  end
end
return {removed, redis.call('ZCARD', KEYS[1])}
"""

# ARGV: now. Returns {member JSON...} of live members.
_MEMBERS = (
    _PRUNE
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[2], unpack(ids))
"""
)


@dataclass(frozen=True)
class History:
    messages: list[str]
    latest: int
    truncated: bool


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
        self._join = client.register_script(_JOIN)
        self._leave = client.register_script(_LEAVE)
        self._send = client.register_script(_SEND)
        self._history = client.register_script(_HISTORY)
        self._members = client.register_script(_MEMBERS)
        self._prune_gone = client.register_script(_PRUNE_GONE)

    def _expiry(self, now: int) -> int:
        return now + self.connection_ttl * 1000

    def join(self, room: str, member: Member, now: int | None = None) -> list[str]:
        """Registers ``member`` in ``room``; returns the other live connections to tell."""
        now = now_ms() if now is None else now
        record = json.dumps(asdict(member), separators=(",", ":"))
        pipe = self.client.pipeline(transaction=False)
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
        pipe.execute()
        members = self._join(
            keys=room_keys(room), args=[now, member.connectionId, self._expiry(now), record]
        )
        return [m for m in _text(members) if m != member.connectionId]

    def room_of(self, connection_id: str) -> dict | None:
        record = self.client.hgetall(connection_key(connection_id))
        return _text_dict(record) or None

    def leave(
        self, room: str, connection_id: str, now: int | None = None
    ) -> tuple[Member | None, list[str]]:
        """Removes a connection; returns the member it was (None if already gone) and who is left."""
        now = now_ms() if now is None else now
        self.client.delete(connection_key(connection_id))
        info, members = self._leave(keys=room_keys(room), args=[now, connection_id])
        member = Member(**json.loads(info)) if info else None
        left = _text(members)
        if not left:
            self.client.zrem(ROOM_INDEX, room)
        return member, left

    def prune(self, room: str, connection_ids: list[str], now: int | None = None) -> list[Member]:
        """Removes connections the gateway reported gone (HTTP 410); returns who they were.

        Members that connected within the grace period are kept: their handshake may still be
        in progress, and API Gateway answers 410 until it completes.
        """
        now = now_ms() if now is None else now
        oldest = now - self.gone_grace_seconds * 1000
        records, left = self._prune_gone(keys=room_keys(room), args=[oldest, *connection_ids])
        removed = [Member(**json.loads(record)) for record in _text(records)]
        if removed:
            pipe = self.client.pipeline(transaction=False)  # the records live in other slots
            for member in removed:
                pipe.delete(connection_key(member.connectionId))
            pipe.execute()
        if int(left) == 0:
            self.client.zrem(ROOM_INDEX, room)
        return removed

    def store(
        self, room: str, sender_id: str, head: str, tail: str, now: int | None = None
    ) -> tuple[int, list[str]]:
        """Stores a message frame with the next seq; returns the seq and every live connection.

        A seq of 0 means the sender is over its rate limit and nothing was stored.
        """
        now = now_ms() if now is None else now
        answer = self._send(
            keys=[*room_keys(room), rate_key(room, sender_id, now // 1000)],
            args=[
                now,
                sender_id,
                self._expiry(now),
                head,
                tail,
                self.log_max_messages,
                self.log_retention_seconds,
                self.rate_limit_per_second,
            ],
        )
        if int(answer[0]) == 0:
            return 0, []
        return int(answer[0]), _text(answer[1])

    def history(self, room: str, since: int) -> History:
        latest, first, messages = self._history(keys=room_keys(room), args=[now_ms(), since])
        latest, first = int(latest), int(first)
        # Messages after ``since`` were lost when the first retained one is not since + 1.
        truncated = since < latest and (first == 0 or first > since + 1)
        return History(_text(messages), latest, truncated)

    def members(self, room: str) -> list[Member]:
        records = self._members(keys=room_keys(room), args=[now_ms()])
        members = [Member(**json.loads(r)) for r in _text(records) if r]
        return sorted(members, key=lambda m: (m.connectedAt, m.connectionId))

    def refresh(self, room: str, connection_id: str, now: int | None = None) -> bool:
        """Extends a registration (``ping``); False when it had already expired or gone."""
        now = now_ms() if now is None else now
        members_key = room_keys(room)[0]
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(members_key, {connection_id: self._expiry(now)}, xx=True)
        pipe.zscore(members_key, connection_id)
        pipe.expire(connection_key(connection_id), self.connection_ttl)
        _, score, _ = pipe.execute()
        return score is not None

    def latest_seq(self, room: str) -> int:
        return int(self.client.get(room_keys(room)[3]) or 0)

    def last_activity(self, room: str) -> int:
        return int(self.client.hget(room_keys(room)[4], "lastActivity") or 0)

    def rooms(self, cursor: int = 0, limit: int = 50) -> tuple[list[str], int]:
        """One page of the active-classroom index; cursor 0 starts and ends the walk."""
        next_cursor, entries = self.client.zscan(ROOM_INDEX, cursor=cursor, count=limit)
        return [_str(room) for room, _ in entries], int(next_cursor)

    def forget_room(self, room: str) -> None:
        self.client.zrem(ROOM_INDEX, room)

    def audit(self, entry: dict) -> None:
        """Records a support action with the staff identity (PROTOCOL.md: every injection)."""
        fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in entry.items()}
        self.client.xadd(AUDIT_STREAM, fields, maxlen=AUDIT_MAX_ENTRIES, approximate=True)

    def audit_entries(self, count: int = 100) -> list[dict]:
        entries = self.client.xrevrange(AUDIT_STREAM, count=count)
        return [_text_dict(fields) | {"auditId": _str(entry_id)} for entry_id, fields in entries]


def _str(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _text(values) -> list:
    return [_str(v) if v is not None else None for v in values]


def _text_dict(mapping) -> dict:
    return {_str(k): _str(v) for k, v in mapping.items()}
