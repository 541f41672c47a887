"""Handler invocations in worker processes, as Lambda runs each invocation in a container.

The gateway relays every delivery on its event loop; the handlers (Redis, then a fan-out) spend
CPU on every message too. They never share a process, so they never share a GIL. This module
is what a worker imports: it is kept free of aiohttp and of the gateway so that a worker starts
by importing the backend alone.

A worker is a cold start of its own: ``initialize`` hands the backend its settings, its poster
and its metric sink in one ``backend.runtime.configure`` call (nothing goes through the
environment), then it ``serve``s invocations one at a time on the socket pair it shares with the
gateway. Each message is a 4-byte length and a pickle:

- gateway to worker: ``(INVOKE, handler reference, event, context)``, and
  ``(REPLY, value)`` answering the worker's last ``CALL``;
- worker to gateway: ``(READY, pid)`` or ``(FAILED, why)`` once, ``(ANSWER, result, exception
  or None, metric points)`` per invocation, in the order the invocations came, and ``(CALL,
  operation, argument)`` when a handler uses the management API.

A fan-out is one ``CALL``: the handler's poster (``ChannelPoster``) hands the gateway every
(connection, frame) of it in one message and gets every post's status back in one reply, so a
delivery costs no HTTP request, signature or parse inside the sandbox. ``@connections`` over
HTTP stays for boto3 and every other client, exactly as API Gateway serves it.

The socket is private to the two processes (a socket pair made by the gateway), so pickles come
only from the gateway itself.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import importlib
import os
import pickle
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

READY = "ready"
FAILED = "failed"
INVOKE = "invoke"
ANSWER = "answer"
CALL = "call"
REPLY = "reply"
HEADER = struct.Struct("!I")

# The backend's entry points, as the references an invocation names.
BACKEND_HANDLERS = {
    name: f"backend.handlers.{name}:handler"
    for name in ("authorizer", "connect", "disconnect", "messages", "admin")
}


@dataclass(frozen=True)
class WorkerSetup:
    """Everything a worker's cold start needs, handed over at spawn (it is pickled)."""

    settings: object  # backend.config.Settings; typed loosely so the gateway need not import it
    log_level: str = "WARNING"
    preload: tuple[str, ...] = field(default_factory=lambda: tuple(BACKEND_HANDLERS.values()))


def encode(message: object) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(payload)) + payload


class Channel:
    """The worker's end of its socket pair: invocations in, answers and management calls out.

    While a handler waits for the reply to a call, invocations that arrive meanwhile are kept
    in order and served after it.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox: collections.deque[tuple] = collections.deque()

    def send(self, message: object) -> None:
        self.sock.sendall(encode(message))

    def _read(self, size: int) -> bytes | None:
        data = bytearray()
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return bytes(data)

    def _receive(self) -> tuple | None:
        head = self._read(HEADER.size)
        if head is None:
            return None
        payload = self._read(HEADER.unpack(head)[0])
        return None if payload is None else pickle.loads(payload)

    def next_invocation(self) -> tuple | None:
        """The next ``INVOKE`` message, or None once the gateway has hung up."""
        if self.inbox:
            return self.inbox.popleft()
        return self._receive()

    def call(self, operation: str, argument: object) -> Any:
        """One management API operation through the gateway; blocks for its reply."""
        self.send((CALL, operation, argument))
        while True:
            message = self._receive()
            if message is None:
                raise ConnectionError("the sandbox's gateway hung up")
            if message[0] == REPLY:
                return message[1]
            self.inbox.append(message)


class ChannelPoster:
    """The backend's ``Poster`` inside the sandbox: management calls over the worker's channel.

    It raises what the HTTP posters raise for the same statuses (``Gone`` for 410, ``Throttled``
    for 429, ``PostFailed`` otherwise), so the handlers cannot tell it from them.
    """

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    @staticmethod
    def _error(connection_id: str, status: int):
        from backend.poster import Gone, PostFailed, Throttled

        if status == 200 or status == 204:
            return None
        if status == 410:
            return Gone(connection_id)
        if status == 429:
            return Throttled(connection_id)
        return PostFailed(f"the management API answered {status}")

    def _check(self, connection_id: str, status: int) -> None:
        error = self._error(connection_id, status)
        if error is not None:
            raise error

    def post_many(self, posts: list[tuple[str, bytes]], concurrency: int) -> list:
        statuses = self.channel.call("post_many", posts)
        return [
            self._error(connection_id, status)
            for (connection_id, _), status in zip(posts, statuses, strict=True)
        ]

    def post(self, connection_id: str, data: bytes) -> None:
        (status,) = self.channel.call("post_many", [(connection_id, data)])
        self._check(connection_id, status)

    def delete(self, connection_id: str) -> None:
        self._check(connection_id, self.channel.call("delete", connection_id))

    def get(self, connection_id: str) -> dict:
        from backend.poster import connection_from_wire

        status, wire = self.channel.call("get", connection_id)
        self._check(connection_id, status)
        return connection_from_wire(wire)


_points: list[tuple[str, str, float]] = []
_handlers: dict[str, object] = {}


def _collect(name: str, unit: str, value: float) -> None:
    _points.append((name, unit, float(value)))


def handler_for(reference: str):
    """The callable a ``module:function`` reference names, imported once."""
    found = _handlers.get(reference)
    if found is None:
        module, _, name = reference.partition(":")
        found = _handlers[reference] = getattr(importlib.import_module(module), name)
    return found


def initialize(channel: Channel, setup: WorkerSetup) -> None:
    """The worker's cold start."""
    import signal

    # Ctrl+C in a terminal, and a service manager's SIGTERM, reach the whole process group. The
    # sandbox that owns this worker decides when it ends (it hangs up, and kills one stuck in a
    # handler), so a worker ignores both rather than dying mid-invocation, which the sandbox
    # would take for a crash and replace just as it stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGTERM") and os.name != "nt":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    from backend import runtime

    runtime.configure(
        setup.settings,  # type: ignore[arg-type]
        poster=ChannelPoster(channel),
        metrics=_collect,
        log_level=setup.log_level,
    )
    for reference in setup.preload:
        handler_for(reference)
    # The imported backend never goes away: full collections need not scan it again.
    gc.collect()
    gc.freeze()


def _portable(error: BaseException) -> BaseException:
    """The exception itself when it survives pickling, else one that says what it was."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def invoke(reference: str, event: object, context: object) -> tuple:
    """One invocation: (result, exception or None, the metric points it recorded)."""
    _points.clear()
    try:
        result = handler_for(reference)(event, context)
    except Exception as error:
        return None, _portable(error), list(_points)
    return result, None, list(_points)


def serve(sock: socket.socket, setup: WorkerSetup) -> None:
    """The worker process's main: a cold start, then invocations until the gateway hangs up.

    A gateway that hung up while this worker was starting or working (its sandbox stopped)
    ends the worker quietly: there is no one left to answer.
    """
    channel = Channel(sock)
    with sock, contextlib.suppress(ConnectionError):
        try:
            initialize(channel, setup)
        except Exception as error:
            channel.send((FAILED, f"{type(error).__name__}: {error}"))
            return
        channel.send((READY, os.getpid()))
        while (request := channel.next_invocation()) is not None:
            _, reference, event, context = request
            result, failure, points = invoke(reference, event, context)
            try:
                answer = encode((ANSWER, result, failure, points))
            except Exception as unpicklable:  # a result the gateway could not receive
                answer = encode((ANSWER, None, _portable(unpicklable), points))
            sock.sendall(answer)
