"""How long a connection may take to send a request: cutting idle and half-sent requests.

A client that connects and sends nothing, half a request head, or a head and part of its
body, holds a socket (and, at aiohttp, a task) for as long as it likes unless someone cuts it.
What cuts it in the sandbox:

- **aiohttp's server** (3.14): ``keepalive_timeout`` is already a head timeout. Its timer is
  armed when the connection is made and again after each response, is not moved by bytes that
  arrive, and closes the connection when it fires while the server is still waiting for a
  whole head (a request being handled, or an upgraded WebSocket, is left alone). So
  ``web.Server(..., keepalive_timeout=HEAD_TIMEOUT)`` cuts a silent client, a half head and a
  head trickled a byte at a time, ``HEAD_TIMEOUT`` after it connected or was last answered.
  aiohttp's default is 3630 s. A connection handed to aiohttp gets its timer at hand-over,
  when ``connection_made`` is called.
- **A body** is read by the handler, and aiohttp never times that out: a handler that reads
  one bounds it itself (``async with asyncio.timeout(BODY_TIMEOUT): await request.read()``).
- **A protocol of our own** ahead of aiohttp (the management API's front door) has no timer
  unless it keeps one: ``Deadline`` is that timer, cheap enough to move after every answer.

``Deadline`` is aiohttp's own technique: one timer handle per connection, moving the deadline is
one float store, and a timer that fires early re-arms itself for the new deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

HEAD_TIMEOUT = 60.0
BODY_TIMEOUT = 60.0


class Deadline:
    """Calls ``expire`` (e.g. ``transport.abort``) ``seconds`` after the last ``restart``,
    unless ``cancel``ed first.

    For a protocol: ``restart()`` in ``connection_made`` and after each request answered,
    ``cancel()`` in ``connection_lost`` and when another protocol takes the connection. Then a
    connection is cut once it has gone ``seconds`` without a whole request answered: idle,
    half a head, or a body that stopped coming.
    """

    __slots__ = ("_loop", "seconds", "_expire", "_at", "_handle")

    def __init__(
        self,
        seconds: float,
        expire: Callable[[], object],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self.seconds = seconds
        self._expire: Callable[[], object] | None = expire
        self._at = 0.0
        self._handle: asyncio.TimerHandle | None = None

    @property
    def active(self) -> bool:
        return self._expire is not None and self._handle is not None

    def restart(self) -> None:
        """The deadline is ``seconds`` from now; no timer is cancelled or made if one runs."""
        if self._expire is None:
            return
        self._at = self._loop.time() + self.seconds
        if self._handle is None:
            self._handle = self._loop.call_at(self._at, self._fire)

    def cancel(self) -> None:
        """For good: a cancelled deadline never fires, and ``restart`` does nothing."""
        self._expire = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        if self._expire is None:
            return
        if self._loop.time() < self._at:  # moved since this timer was set
            self._handle = self._loop.call_at(self._at, self._fire)
            return
        expire, self._expire = self._expire, None
        expire()
