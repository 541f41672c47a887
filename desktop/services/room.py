"""A support person's hidden connection to one classroom, as the Inspector holds it (no Qt).

``RoomClient.watch(abort)`` connects (a fresh short-lived ``support`` token each time, asked
of the environment's admin function), asks ``sync`` from the last seq it holds, and yields what
happens as plain data until aborted:

    Status(phase, detail, retry_in)   connecting, live, reconnecting (in N s), closed
    Received(at, frame, size, kind)   a frame from the backend or the gateway; ``kind`` says
                                      how a message came: live, history (the retained log at
                                      joining) or filled (caught up after a gap or a reconnect)
    Gap(after, before)                seqs missing between two held ones; ``sync`` is asked

A dropped connection is tried again with growing pauses, and caught up with ``sync`` from the
last seq held, so no message is missed that the log still has. API Gateway closes every
connection after two hours: the client renews its connection a few minutes before, by itself.
Tokens live in the URL only: never in a log line or an event (``Status`` never carries a URL).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import websocket

from desktop.services.errors import ConsoleError, SocketError

CONNECT_TIMEOUT = 10.0
READ_TICK = 0.05  # how often a quiet connection hands on what it holds, or checks to stop
KEEPALIVE = 300.0  # a ping this often keeps an idle connection within API Gateway's 10 minutes
MAX_AGE = 2 * 3600 - 300  # renewed five minutes before API Gateway's two-hour limit
BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
USER_AGENT = "ClassroomConsole-Inspector"
# Seqs remembered to drop a repeat; older ones are taken as held. A repeat is a resend or a
# sync's history overlapping the live messages that came while it was asked, seconds' worth;
# the window is the Inspector's row cap (its first fill is memory a benchmark sees grow).
HELD = 20_000


@dataclass(frozen=True)
class Status:
    phase: str  # "connecting", "live", "reconnecting", "closed"
    detail: str = ""
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class Received:
    at: float  # epoch seconds, when it arrived
    frame: dict
    size: int  # bytes of the frame as received
    kind: str = "live"  # "live", "history", "filled"
    # The frame's JSON on one line as it came (None: not kept), so the Inspector's row and the
    # spool need not write it out again; a message of a history frame is written out once.
    text: str | None = None

    @property
    def json(self) -> str:
        """The frame as one line of JSON."""
        if self.text is not None:
            return self.text
        return json.dumps(self.frame, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Gap:
    after: int  # the last seq held before the gap
    before: int  # the first seq after it


RoomEvent = Status | Received | Gap
BATCH_SECONDS = 0.05  # what arrives within this goes to the console in one batch


def room_url(websocket_url: str, room: str, token: str) -> str:
    return f"{websocket_url}?room={quote(room)}&token={quote(token)}"


class RoomClient:
    """One classroom, joined unseen; ``send`` may be called from another thread while
    ``watch`` runs (websocket-client serialises writes)."""

    def __init__(
        self,
        room: str,
        url: Callable[[], str],
        *,
        max_age: float = MAX_AGE,
        backoff: tuple[float, ...] = BACKOFF,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.room = room
        self._url = url  # a fresh URL (and token) for every connection
        self.max_age = max_age
        self.backoff = backoff
        self.clock = clock
        self.latest = 0  # the highest seq held
        self._held: set[int] = set()
        self._forgotten = 0  # seqs up to this one are taken as held without being kept
        self._ws: websocket.WebSocket | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # the URL holds a token: never in a log
        return f"RoomClient({self.room!r})"

    @property
    def live(self) -> bool:
        return self._ws is not None

    def send(self, frame: dict) -> None:
        """Sends one protocol frame on the live connection."""
        with self._lock:
            ws = self._ws
        if ws is None:
            raise SocketError(
                f"Not connected to {self.room} right now.",
                hint="Wait until the Inspector says it is live, then send again.",
            )
        try:
            ws.send(json.dumps(frame, allow_nan=False))
        except (websocket.WebSocketException, OSError) as error:
            raise SocketError(f"Could not send to {self.room}: {error}.") from None

    def batches(
        self,
        abort: threading.Event,
        spool: Callable[[Received], None] | None = None,
        prepare: Callable[[Received], Any] | None = None,
    ) -> Iterator[list]:
        """``watch``'s events in lists, one at least every ``BATCH_SECONDS`` while they come
        (and at once when the connection goes quiet), so a fast classroom costs the console's
        GUI thread one delivery a batch, not one a frame. ``spool`` sees every frame first;
        ``prepare`` then stands in for each ``Received`` in the batch with what it returns, so
        a parsed frame need not outlive its reading (each is dozens of objects that the
        garbage collector walks for as long as they live)."""
        batch: list = []
        started = time.monotonic()
        for event in self.watch(abort):
            if event is not None:
                if not batch:
                    started = time.monotonic()
                if isinstance(event, Received):
                    if spool is not None:
                        spool(event)
                    batch.append(event if prepare is None else prepare(event))
                else:
                    batch.append(event)
            if batch and (
                event is None
                or isinstance(event, Status)
                or time.monotonic() - started >= BATCH_SECONDS
            ):
                yield batch
                batch = []
        if batch:
            yield batch

    def watch(self, abort: threading.Event) -> Iterator[RoomEvent | None]:
        """Every event of the connection; None when it is quiet for a moment."""
        attempt = 0
        renewing = False
        while not abort.is_set():
            if not renewing:
                yield Status("connecting" if attempt == 0 and not self.latest else "reconnecting")
            try:
                ws = self._connect()
            except ConsoleError as error:
                delay = self.backoff[min(attempt, len(self.backoff) - 1)]
                attempt += 1
                yield Status("reconnecting", str(error), retry_in=delay)
                if abort.wait(delay):
                    break
                continue
            attempt, renewing = 0, False
            reason = ""
            try:
                yield from self._read(ws, abort)
                renewing = not abort.is_set()  # the connection reached its age: a new one
            except _Closed as closed:
                reason = str(closed)
            finally:
                with self._lock:
                    self._ws = None
                _close(ws)
            if reason and not abort.is_set():
                delay = self.backoff[0]
                yield Status("reconnecting", reason, retry_in=delay)
                attempt = 1
                if abort.wait(delay):
                    break
        yield Status("closed", "You left the classroom.")

    def _connect(self) -> websocket.WebSocket:
        url = self._url()  # a ConsoleError (the admin function refused a token) passes
        try:
            # websocket-client checks a text frame's UTF-8 a byte at a time in Python, most of
            # a fast classroom's cost; the frame is decoded (strictly, in C) as it is parsed.
            return websocket.create_connection(
                url,
                timeout=CONNECT_TIMEOUT,
                header=[f"User-Agent: {USER_AGENT}"],
                skip_utf8_validation=True,
            )
        except websocket.WebSocketBadStatusException as error:
            status = getattr(error, "status_code", 0)
            if status in (401, 403):
                raise SocketError(
                    f"The classroom refused the Inspector's support token ({status}).",
                    hint="The environment's token secret may have changed; try again.",
                ) from None
            raise SocketError(f"The classroom answered {status} to the Inspector.") from None
        except (websocket.WebSocketException, OSError) as error:
            raise SocketError(f"Could not connect to {self.room}: {_reason(error)}.") from None

    def _read(self, ws: websocket.WebSocket, abort: threading.Event) -> Iterator[RoomEvent | None]:
        ws.settimeout(READ_TICK)
        with self._lock:
            self._ws = ws
        joining = self.latest == 0
        ws.send(json.dumps({"action": "sync", "since": self.latest}))
        catching_up = True  # until the sync's history has come
        yield Status("live")
        opened = last_sent = time.monotonic()
        while not abort.is_set():
            now = time.monotonic()
            if now - opened >= self.max_age:
                return
            if now - last_sent >= KEEPALIVE:
                ws.send(json.dumps({"action": "ping"}))
                last_sent = now
            try:
                opcode, data = ws.recv_data()
            except websocket.WebSocketTimeoutException:
                yield None  # quiet for a moment: whatever was batched can go
                continue
            except (websocket.WebSocketException, OSError) as error:
                raise _Closed(f"The connection dropped ({_reason(error)})") from None
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise _Closed(_close_reason(data))
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue
            received = self.clock()
            text: str | None = None
            try:
                text = data.decode("utf-8")  # not UTF-8: unreadable
                frame = json.loads(text)
            except ValueError:
                text = None
                frame = {"event": "unreadable", "text": data[:200].decode("utf-8", "replace")}
            if not isinstance(frame, dict):
                text = None
                frame = {"event": "unreadable", "text": str(frame)[:200]}
            if text is not None and ("\n" in text or "\r" in text):
                text = None  # laid out on several lines: written out again, on one
            size = len(data)
            if frame.get("event") == "history":
                kind = "history" if joining else "filled"
                messages = [m for m in frame.get("messages") or [] if isinstance(m, dict)]
                for message in messages:
                    if self._hold(message.get("seq")):
                        line = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
                        size = len(line.encode("utf-8"))
                        yield Received(received, message, size, kind, line)
                latest = frame.get("latest")
                # A long history comes in several frames; it is over once the latest is held
                # (or a frame brings nothing: the log no longer has the rest). Gaps count from
                # its latest from then on (PROTOCOL.md, Guarantees).
                if isinstance(latest, int) and (self.latest >= latest or not messages):
                    self.latest = max(self.latest, latest)
                    catching_up = joining = False
                continue
            if frame.get("event") == "message":
                seq = frame.get("seq")
                if (
                    isinstance(seq, int)
                    and not catching_up
                    and self.latest
                    and seq > self.latest + 1
                ):
                    yield Gap(self.latest, seq)
                    ws.send(json.dumps({"action": "sync", "since": self.latest}))
                    catching_up = True
                if not self._hold(seq):
                    continue  # a seq already held: a resend, or a sync overlapping live ones
            yield Received(received, frame, size, "live", text)

    def _hold(self, seq) -> bool:
        """Takes ``seq`` as held; False if it already was."""
        if not isinstance(seq, int) or isinstance(seq, bool):
            return True
        if seq in self._held or (self._forgotten and seq <= self._forgotten):
            return False
        self._held.add(seq)
        self.latest = max(self.latest, seq)
        if len(self._held) > HELD:  # seqs far behind are not sent again: forget them
            self._forgotten = self.latest - HELD // 2
            self._held = {s for s in self._held if s > self._forgotten}
        return True


class _Closed(Exception):
    pass


def _close(ws: websocket.WebSocket) -> None:
    with contextlib.suppress(websocket.WebSocketException, OSError):
        ws.close(timeout=1)


def _close_reason(data: bytes) -> str:
    code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
    text = data[2:].decode("utf-8", "replace")
    if code == 1001:
        return f"The classroom's gateway closed the connection ({code} {text or 'Going away'})"
    return f"The connection was closed ({code}{' ' + text if text else ''})"


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    if "?" in text and "token=" in text:  # never a token in a sentence
        text = text.split("?", 1)[0]
    return text or type(error).__name__
