"""Handler invocations in worker processes, as Lambda runs each invocation in its own container.

The gateway (aiohttp, one event loop) and the handlers (Redis, then one management API post per
member) both spend CPU on every delivery; in one process they share one GIL, so a worker process
lets them use two CPUs. This module is what a worker imports: it is kept free of aiohttp and of
the gateway so that a worker starts by importing the backend alone.

A worker is a cold start of its own: ``initialize`` sets the sandbox's variables (the worker
inherited the environment at spawn, this makes it explicit), resets the backend's cached clients,
signs management calls with the sandbox's stand-in keys and loads the entry points once. It then
``serve``s invocations, one at a time, on the socket it shares with the gateway: each message is a
4-byte length and a pickle. A request is ``(number, entry point, event, context)``; the answer is
``(number, result, exception or None, the custom metric points it recorded)``, and the gateway
adds the points to its ``/_metrics``. The first message a worker sends is ``(READY, pid)``, or
``(FAILED, why)`` when it cannot load the backend. The socket is private to the two processes
(a socket pair made by the gateway), so pickles come only from the gateway itself.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import socket
import struct

READY = "ready"
FAILED = "failed"
HEADER = struct.Struct("!I")

_ENTRY_POINTS = ("authorizer", "connect", "disconnect", "messages", "admin")
_handlers: dict[str, object] = {}
_points: list[tuple[str, str, float]] = []


def _collect(name: str, unit: str, value: float) -> None:
    _points.append((name, unit, float(value)))


def initialize(environment: dict[str, str], access_key: str, secret_key: str) -> None:
    """The worker's cold start."""
    import importlib
    import signal

    # Ctrl+C in a terminal, and a service manager's SIGTERM, reach the whole process group. The
    # sandbox that owns this worker decides when it ends (it hangs up, and kills one stuck in a
    # handler), so a worker ignores both rather than dying mid-invocation, which the sandbox
    # would take for a crash and replace just as it stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGTERM") and os.name != "nt":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    from botocore.credentials import Credentials

    from backend import observability, runtime

    os.environ.update(environment)
    runtime.reset()
    runtime.sign_with(Credentials(access_key, secret_key))
    for name in _ENTRY_POINTS:
        _handlers[name] = importlib.import_module(f"backend.handlers.{name}").handler
    observability.add_listener(_collect)
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


def invoke(name: str, event: object, context: object) -> tuple[object, BaseException | None, list]:
    """One invocation: (result, exception or None, the metric points it recorded)."""
    _points.clear()
    try:
        result = _handlers[name](event, context)
    except Exception as error:
        return None, _portable(error), list(_points)
    return result, None, list(_points)


def encode(message: object) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(payload)) + payload


def _read(sock: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _receive(sock: socket.socket) -> object | None:
    """The next message, or None once the gateway has closed its end."""
    head = _read(sock, HEADER.size)
    if head is None:
        return None
    payload = _read(sock, HEADER.unpack(head)[0])
    return None if payload is None else pickle.loads(payload)


def serve(
    sock: socket.socket, environment: dict[str, str], access_key: str, secret_key: str
) -> None:
    """The worker process's main: a cold start, then invocations until the gateway hangs up.

    A gateway that hung up while this worker was starting or working (its sandbox stopped)
    ends the worker quietly: there is no one left to answer.
    """
    with sock, contextlib.suppress(ConnectionError):
        try:
            initialize(environment, access_key, secret_key)
        except Exception as error:
            sock.sendall(encode((FAILED, f"{type(error).__name__}: {error}")))
            return
        sock.sendall(encode((READY, os.getpid())))
        while (request := _receive(sock)) is not None:
            number, name, event, context = request
            result, error, points = invoke(name, event, context)
            try:
                answer = encode((number, result, error, points))
            except Exception as unpicklable:  # a result the gateway could not receive
                answer = encode((number, None, _portable(unpicklable), points))
            sock.sendall(answer)
