"""The registry's Lua scripts: each one a classroom operation in one Redis round trip.

Every script takes ``registry.room_keys(room)`` as its KEYS (one hash tag, so one cluster slot)
and is registered once by ``backend.registry.Registry``; the key schema is described there.
"""

from __future__ import annotations

# How long a connection that left is remembered, so a frame still in flight when its
# $disconnect ran does not register it again.
LEFT_REMEMBERED_SECONDS = 600

# Stamps the room's membership as changed: ``changed`` in its meta hash, the Redis clock in
# microseconds, always above the stamp before (a clock set back cannot repeat one). With the
# count of live members it is the room's version in the ``rooms`` admin op: a console that
# holds a room's version is answered "unchanged" instead of the room's member records. Every
# script that registers or removes a member calls it; an expiry lowers the live count until
# the next script drops the member (and stamps the room).
MEMBERSHIP = """
local function membership_changed()
  local clock = redis.call('TIME')
  local stamp = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
  local before = tonumber(redis.call('HGET', KEYS[5], 'changed') or '0')
  if stamp <= before then stamp = before + 1 end
  redis.call('HSET', KEYS[5], 'changed', string.format('%.0f', stamp))
end
"""

# KEYS: room_keys(). The first lines of each script drop expired members.
PRUNE = (
    MEMBERSHIP
    + """
local now = tonumber(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  redis.call('HDEL', KEYS[2], unpack(expired))
  membership_changed()
end
"""
)

# ARGV[2..4]: connectionId, expiry, member JSON. Extends the caller's registration, or
# writes it again when it is gone (lost data, an expiry) unless the connection left: then
# ``rejoined`` is 1 and the room is told ``join``.
REGISTER = """
local rejoined = 0
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
elseif not redis.call('ZSCORE', KEYS[7], ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
  membership_changed()
  rejoined = 1
end
"""

# Starts the room's seq count at the floor (the Redis clock in microseconds) if it has none;
# ARGV[retention_arg]: retention seconds.
FLOOR = """
local function start_count(retention)
  if redis.call('EXISTS', KEYS[4]) == 1 then return end
  local clock = redis.call('TIME')
  local floor = clock[1] .. string.format('%06d', tonumber(clock[2]))
  redis.call('SET', KEYS[4], floor, 'EX', retention + 86400 * 30)
  redis.call('HSET', KEYS[5], 'floor', floor)
  redis.call('EXPIRE', KEYS[5], retention)
end
"""

# Remembers that a connection left (for LEFT_REMEMBERED_SECONDS), forgetting older ones.
REMEMBER_LEFT = f"""
local function remember_left(now, connection_id)
  redis.call('ZADD', KEYS[7], now, connection_id)
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now - {LEFT_REMEMBERED_SECONDS * 1000})
  redis.call('EXPIRE', KEYS[7], {LEFT_REMEMBERED_SECONDS})
end
"""

# ARGV: now, connectionId, expiry, member JSON. Returns {rejoined, other live members}: the
# caller's registration refreshed, or written again (``ping``, ``sync``, ``who``).
TOUCH = (
    PRUNE
    + REGISTER
    + """
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
return {rejoined, members}
"""
)

# ARGV: now, connectionId, expiry, member JSON. Returns the other live members.
JOIN = (
    PRUNE
    + """
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
redis.call('HSET', KEYS[5], 'lastActivity', ARGV[1])
membership_changed()
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
return members
"""
)

# ARGV: now, connectionId. Returns {removed member JSON or false, other live members}.
LEAVE = (
    PRUNE
    + REMEMBER_LEFT
    + """
local info = redis.call('HGET', KEYS[2], ARGV[2])
local removed = redis.call('ZREM', KEYS[1], ARGV[2]) + redis.call('HDEL', KEYS[2], ARGV[2])
if removed > 0 then membership_changed() end
remember_left(now, ARGV[2])
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
return {info or false, members}
"""
)

# KEYS[8]: the sender's send counter for this second; KEYS[9]: the room's count of messages
# stored this minute. ARGV: now, sender connectionId, sender
# expiry, sender member JSON, frame head, frame tail, max messages, retention seconds, rate
# limit a second (0: off), dedupe key ('' when the message has no id). Stores the frame with
# the next seq and returns {seq, live members, rejoined, false}; {0, members, rejoined, false}
# when the sender is over its rate; {original seq, members, rejoined, original frame} when the
# sender's id is already in the log. The whole broadcast costs this one round trip, whatever
# the classroom's size, and so does a resend or a sender registered again.
SEND = (
    PRUNE
    + REGISTER
    + FLOOR
    + """
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
local dedupe = ARGV[10]
if dedupe ~= '' then
  local seen = redis.call('ZSCORE', KEYS[6], dedupe)
  if seen then
    local original = redis.call('ZRANGEBYSCORE', KEYS[3], seen, seen)
    return {tonumber(seen), members, rejoined, original[1] or ''}
  end
end
local limit = tonumber(ARGV[9])
if limit > 0 then
  local used = redis.call('INCR', KEYS[8])
  if used == 1 then redis.call('EXPIRE', KEYS[8], 2) end
  if used > limit then return {0, members, rejoined, false} end
end
local retention = tonumber(ARGV[8])
start_count(retention)
local seq = redis.call('INCR', KEYS[4])
-- Lua's own number format would write a seq past 10^14 with an exponent.
redis.call('ZADD', KEYS[3], seq, ARGV[5] .. string.format('%.0f', seq) .. ARGV[6])
if redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[7]) + 1)) > 0 then
  local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', '(' .. first[2])
end
if dedupe ~= '' then
  redis.call('ZADD', KEYS[6], seq, dedupe)
end
if redis.call('INCR', KEYS[9]) == 1 then redis.call('EXPIRE', KEYS[9], 120) end
redis.call('EXPIRE', KEYS[3], retention)
redis.call('EXPIRE', KEYS[6], retention)
redis.call('EXPIRE', KEYS[4], retention + 86400 * 30)
redis.call('HSET', KEYS[5], 'lastActivity', ARGV[1])
redis.call('EXPIRE', KEYS[5], retention)
return {seq, members, rejoined, false}
"""
)

# ARGV: now, since, retention seconds. Returns {latest seq, first retained seq or 0, floor,
# frames after since}. Starts the count when the room has none, so ``latest`` never goes back.
HISTORY = (
    FLOOR
    + """
start_count(tonumber(ARGV[3]))
local latest = tonumber(redis.call('GET', KEYS[4]))
local floor = tonumber(redis.call('HGET', KEYS[5], 'floor') or '0')
local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
local messages = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. ARGV[2], '+inf')
return {latest, tonumber(first[2] or '0'), floor, messages}
"""
)

# ARGV: now, the oldest connectedAt that may be pruned (epoch ms), then connection ids. Removes
# the members the gateway reported gone, except those that joined since: API Gateway answers
# 410 for a connection whose handshake is still in progress. Returns {removed member JSON,
# members left}.
PRUNE_GONE = (
    MEMBERSHIP
    + REMEMBER_LEFT
    + """
local removed = {}
for i = 3, #ARGV do
  local info = redis.call('HGET', KEYS[2], ARGV[i])
  if info and cjson.decode(info)['connectedAt'] <= tonumber(ARGV[2]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    remember_left(tonumber(ARGV[1]), ARGV[i])
    removed[#removed + 1] = info
  end
end
if #removed > 0 then membership_changed() end
return {removed, redis.call('ZCARD', KEYS[1])}
"""
)

# ARGV: now. Returns {member JSON...} of live members.
MEMBERS = (
    PRUNE
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[2], unpack(ids))
"""
)
