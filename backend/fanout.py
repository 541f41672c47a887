"""Delivery of one frame to many connections in parallel, as a fan-out in Lambda must.

A poster that can post to many connections itself (``post_many``: the lean poster, from this
thread over its pooled sockets) gets the whole fan-out; any other (boto3's) posts on a thread
pool kept across warm invocations. A connection that answers 410 is reported gone (the caller
removes exactly that registration); throttling is retried with jittered exponential backoff;
any other failure is counted and logged, and the rest of the fan-out goes on.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from backend.poster import Gone, Poster, PostError, PostFailed, Throttled

THROTTLE_ATTEMPTS = 4
THROTTLE_BASE_DELAY = 0.05

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


@dataclass
class FanoutResult:
    delivered: int = 0
    gone: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    throttled_retries: int = 0
    lead_failure: str | None = None  # why the lead frame was not delivered (not when gone)


class _Outcome(NamedTuple):
    """A post's last attempt: delivered (after ``retries`` throttled ones), gone, or failed."""

    kind: Literal["delivered", "gone", "failed"]
    retries: int = 0
    why: str = ""  # when failed


_GONE = _Outcome("gone")


def _executor(concurrency: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != concurrency:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fanout")
            _pool_size = concurrency
        return _pool


def _backoff(attempt: int) -> None:
    delay = THROTTLE_BASE_DELAY * (2**attempt)
    time.sleep(delay + random.uniform(0, delay))


def _encoded(payload: bytes | str) -> bytes:
    return payload.encode("utf-8") if isinstance(payload, str) else payload


def deliver(
    poster: Poster,
    connection_ids: list[str],
    payload: bytes | str,
    concurrency: int = 128,
    *,
    lead: tuple[str, bytes | str] | None = None,
) -> FanoutResult:
    """Posts ``payload`` to every connection, at most ``concurrency`` at a time.

    ``lead`` is one more (connection id, frame) posted first, in the same fan-out: the
    sender's ack, so that the members need not wait for its round trip. Its outcome is not a
    delivery; only a failure other than 410 is reported, in ``lead_failure``.
    """
    data = _encoded(payload)
    posts = [(connection_id, data) for connection_id in connection_ids]
    if lead is not None:
        posts.insert(0, (lead[0], _encoded(lead[1])))
    post_many = getattr(poster, "post_many", None)
    outcomes: list[_Outcome]
    if not posts:
        outcomes = []
    elif len(posts) == 1:
        outcomes = [_attempt(poster, *posts[0])]
    elif post_many is not None:
        outcomes = _together(post_many, posts, concurrency)
    else:
        outcomes = [_attempt(poster, *posts[0])] if lead is not None else []
        pool = _executor(concurrency)
        outcomes += pool.map(lambda post: _attempt(poster, *post), posts[len(outcomes) :])
    result = FanoutResult()
    if lead is not None:
        led = outcomes.pop(0)
        if led.kind == "failed":
            result.lead_failure = led.why
    for connection_id, outcome in zip(connection_ids, outcomes, strict=True):
        if outcome.kind == "delivered":
            result.delivered += 1
            result.throttled_retries += outcome.retries
        elif outcome.kind == "gone":
            result.gone.append(connection_id)
        else:
            result.failed[connection_id] = outcome.why
    return result


def _together(post_many, posts: list[tuple[str, bytes]], concurrency: int) -> list[_Outcome]:
    """Outcomes as ``_attempt`` gives them, with the throttled posts retried together."""
    outcomes: dict[int, _Outcome] = {}  # by the post's place
    pending = list(range(len(posts)))
    for attempt in range(THROTTLE_ATTEMPTS):
        errors: list[Exception | None]
        try:
            errors = post_many([posts[index] for index in pending], concurrency)
        except Exception as failure:  # a fan-out never dies of its poster
            errors = [PostFailed(f"{type(failure).__name__}: {failure}")] * len(pending)
        throttled = []
        for index, error in zip(pending, errors, strict=True):
            if isinstance(error, Throttled) and attempt < THROTTLE_ATTEMPTS - 1:
                throttled.append(index)
            else:
                outcomes[index] = _outcome(error, attempt)
        if not throttled:
            break
        _backoff(attempt)
        pending = throttled
    return [outcomes[index] for index in range(len(posts))]


def _post_one(poster: Poster, connection_id: str, payload: bytes) -> int:
    """Posts with retries on throttling; returns how many retries it took."""
    for attempt in range(THROTTLE_ATTEMPTS):
        try:
            poster.post(connection_id, payload)
            return attempt
        except Throttled:
            if attempt == THROTTLE_ATTEMPTS - 1:
                raise
            _backoff(attempt)
    raise AssertionError("unreachable")


def _attempt(poster: Poster, connection_id: str, data: bytes) -> _Outcome:
    try:
        retries = _post_one(poster, connection_id, data)
    except Exception as error:  # a fan-out never dies of one member
        return _outcome(error, 0)
    return _outcome(None, retries)


def _outcome(error: Exception | None, retries: int) -> _Outcome:
    """The outcome of a post whose last attempt ended in ``error`` (None: delivered)."""
    if error is None:
        return _Outcome("delivered", retries)
    if isinstance(error, Gone):
        return _GONE
    if isinstance(error, Throttled):
        return _Outcome("failed", why="throttled after retries")
    if isinstance(error, PostError):
        return _Outcome("failed", why=str(error) or type(error).__name__)
    return _Outcome("failed", why=f"{type(error).__name__}: {error}")
