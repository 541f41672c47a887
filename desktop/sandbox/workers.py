"""Handler invocations in worker processes, as Lambda runs each invocation in its own container.

The gateway (aiohttp, one event loop) and the handlers (Redis, then one management API post per
member) both spend CPU on every delivery; in one process they share one GIL, so a worker process
lets them use two CPUs. This module is what a worker imports: it is kept free of aiohttp and of
the gateway so that a worker starts by importing the backend alone.

A worker is a cold start of its own: ``initialize`` sets the sandbox's variables (the worker
inherited the environment at spawn, this makes it explicit), resets the backend's cached clients,
signs management calls with the sandbox's stand-in keys and loads the entry points once. Each
``invoke`` returns the handler's result or exception together with the custom metric points it
recorded, which the gateway adds to its ``/_metrics``.
"""

from __future__ import annotations

import gc
import os
import pickle

_ENTRY_POINTS = ("authorizer", "connect", "disconnect", "messages", "admin")
_handlers: dict[str, object] = {}
_points: list[tuple[str, str, float]] = []


def _collect(name: str, unit: str, value: float) -> None:
    _points.append((name, unit, float(value)))


def initialize(environment: dict[str, str], access_key: str, secret_key: str) -> None:
    """The worker's cold start (the pool's ``initializer``)."""
    import importlib
    import signal

    # Ctrl+C in a terminal reaches the whole process group; the sandbox that owns this worker
    # decides when it ends, so a worker ignores it rather than dying mid-invocation.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

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


def warm() -> int:
    """Nothing: submitted once per worker at start so that the pool spawns its processes."""
    return os.getpid()


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
