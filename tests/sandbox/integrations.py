"""Stand-in Lambda entry points for tests, named by reference (``module:function``) so the
sandbox's worker processes import and run them as they run the backend's own.

What a stand-in sees is recorded in the sandbox's real Redis (the worker's configured
settings name it), where the test reads it back: the worker is another process.
"""

from __future__ import annotations

import json
import os

import redis

from backend import config, runtime
from backend.handlers import authorizer, connect, disconnect, messages
from backend.poster import Gone

REAL = {
    "authorizer": authorizer.handler,
    "connect": connect.handler,
    "disconnect": disconnect.handler,
    "messages": messages.handler,
}


def reference(name: str) -> str:
    return f"{__name__}:{name}"


def _redis() -> redis.Redis:
    return redis.Redis.from_url(config.settings().redis_url, decode_responses=True)


def recorded(redis_url: str, key: str) -> list[dict]:
    """What the stand-ins recorded under ``key``, oldest first (read from the test's side)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return [json.loads(item) for item in client.lrange(f"test-record:{key}", 0, -1)]
    finally:
        client.close()


def _record(key: str, value: dict) -> None:
    client = _redis()
    try:
        client.rpush(f"test-record:{key}", json.dumps(value, default=str))
        client.expire(f"test-record:{key}", 600)
    finally:
        client.close()


def _room_of(event: dict) -> str | None:
    query = event.get("queryStringParameters") or {}
    context = event.get("requestContext", {}).get("authorizer") or {}
    return query.get("room") or context.get("room")


def _spy(name: str, event: dict, context) -> object:
    room = _room_of(event)
    if room:
        _record(
            f"{room}:{name}",
            {
                "event": event,
                "remaining_ms": context.get_remaining_time_in_millis(),
                "function_name": context.function_name,
                "invoked_function_arn": context.invoked_function_arn,
            },
        )
    return REAL[name](event, context)


def spy_authorizer(event, context):
    return _spy("authorizer", event, context)


def spy_connect(event, context):
    return _spy("connect", event, context)


def spy_messages(event, context):
    return _spy("messages", event, context)


def spy_disconnect(event, context):
    return _spy("disconnect", event, context)


def explode_on_request(event, context):
    """The real message handler, except that a frame mentioning ``explode`` raises."""
    if "explode" in (event.get("body") or ""):
        raise RuntimeError("a bug in the handler")
    return messages.handler(event, context)


def returns_nothing(event, context):
    return None


def raises(event, context):
    raise RuntimeError("a bug in the handler")


def allows_without_policy(event, context):
    return {"principalId": "eve"}


def refuses_with_429(event, context):
    return {"statusCode": 429}


def posts_to_itself(event, context):
    """``$connect`` that posts to its own connection first, as some clients' backends do."""
    request = event["requestContext"]
    try:
        runtime.poster("unused").post(request["connectionId"], b"{}")
        answer = "delivered"
    except Gone:
        answer = "gone"
    _record(f"{_room_of(event)}:self-post", {"answer": answer})
    return connect.handler(event, context)


def blocks_until_released(event, context):
    """The real message handler, once the test releases it: it records that it started (and
    where), then waits for an item on the room's release list."""
    room = _room_of(event) or "nowhere"
    client = _redis()
    try:
        client.rpush(f"test-record:{room}:started", json.dumps({"pid": os.getpid()}))
        client.blpop([f"test-release:{room}"], timeout=60)
    finally:
        client.close()
    return REAL["messages"](event, context)


def release(redis_url: str, room: str, count: int = 1) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.rpush(f"test-release:{room}", *["go"] * count)
    finally:
        client.close()


def blocks(event, context):
    """For pool tests: records the worker's pid under ``event["key"]``, then waits for an item
    on ``event["release"]`` (when given); answers the pid."""
    client = _redis()
    try:
        client.rpush(f"test-record:{event['key']}", json.dumps({"pid": os.getpid()}))
        if event.get("release"):
            client.blpop([f"test-release:{event['release']}"], timeout=60)
    finally:
        client.close()
    return {"pid": os.getpid()}
