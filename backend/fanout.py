"""Delivery of one frame to many connections in parallel, as a fan-out in Lambda must.

Posts run on a thread pool kept across warm invocations. A connection that answers 410 is
reported gone (the caller removes exactly that registration); throttling is retried with
jittered exponential backoff; any other failure is counted and logged, and the rest of the
fan-out goes on.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from backend.poster import Gone, Poster, PostError, Throttled

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


def _executor(concurrency: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != concurrency:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fanout")
            _pool_size = concurrency
        return _pool


def _post_one(poster: Poster, connection_id: str, payload: bytes) -> tuple[str, int]:
    """Posts with retries on throttling; returns (outcome, retries)."""
    for attempt in range(THROTTLE_ATTEMPTS):
        try:
            poster.post(connection_id, payload)
            return "delivered", attempt
        except Throttled:
            if attempt == THROTTLE_ATTEMPTS - 1:
                raise
            delay = THROTTLE_BASE_DELAY * (2**attempt)
            time.sleep(delay + random.uniform(0, delay))
    raise AssertionError("unreachable")


def deliver(
    poster: Poster, connection_ids: list[str], payload: bytes | str, concurrency: int = 128
) -> FanoutResult:
    """Posts ``payload`` to every connection, at most ``concurrency`` at a time."""
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    result = FanoutResult()
    if not connection_ids:
        return result
    if len(connection_ids) == 1:
        outcomes = [_attempt(poster, connection_ids[0], data)]
    else:
        pool = _executor(concurrency)
        outcomes = list(pool.map(lambda cid: _attempt(poster, cid, data), connection_ids))
    for connection_id, (outcome, detail) in zip(connection_ids, outcomes, strict=True):
        if outcome == "delivered":
            result.delivered += 1
            result.throttled_retries += detail
        elif outcome == "gone":
            result.gone.append(connection_id)
        else:
            result.failed[connection_id] = detail
    return result


def _attempt(poster: Poster, connection_id: str, data: bytes) -> tuple[str, object]:
    try:
        _, retries = _post_one(poster, connection_id, data)
        return "delivered", retries
    except Gone:
        return "gone", None
    except Throttled:
        return "failed", "throttled after retries"
    except PostError as error:
        return "failed", str(error) or type(error).__name__
    except Exception as error:  # a fan-out never dies of one member
        return "failed", f"{type(error).__name__}: {error}"
