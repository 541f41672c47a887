"""The fan-out multiplexer: many requests over a pool's connections from one thread.

Each lane (a keep-alive connection) carries one request at a time; a selector (epoll on Linux,
so in Lambda) waits for whichever lane answers first, and that lane takes the next request. A
fan-out then costs no thread hand-offs and no lock convoys, and its requests reach the API back
to back. As ``ConnectionPool.request`` does, a reused connection that the server closed while
idle is replaced and the request sent again, once; a lane that fails is replaced while requests
remain, and when no connection can be opened the rest fail with why.
"""

from __future__ import annotations

import select
import selectors
import socket
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from backend.poster.errors import ConnectionFailed, PostFailed, Timeout
from backend.poster.http11 import RECV_SIZE, Answer

if TYPE_CHECKING:
    from backend.poster.pool import ConnectionPool


class Readable:
    """Which of a fan-out's sockets have something to read.

    ``select.epoll`` directly where there is one (Linux, so Lambda): the ``selectors`` module's
    bookkeeping (a key object per registration) cost more CPU than the two system calls it
    wraps, once per post. Elsewhere, the ``selectors`` module's default.
    """

    def __init__(self) -> None:
        self._sockets: dict[int, socket.socket] = {}
        epoll = getattr(select, "epoll", None)
        self._epoll = epoll() if epoll is not None else None
        # Only where there is no epoll (a selector would cost a tenth more CPU per post).
        self._selector = selectors.DefaultSelector() if self._epoll is None else None

    def add(self, sock: socket.socket) -> None:
        if self._epoll is not None:
            fd = sock.fileno()
            self._epoll.register(fd, select.EPOLLIN)
            self._sockets[fd] = sock
        else:
            assert self._selector is not None
            self._selector.register(sock, selectors.EVENT_READ)

    def remove(self, sock: socket.socket) -> None:
        if self._epoll is not None:
            fd = sock.fileno()
            self._epoll.unregister(fd)
            del self._sockets[fd]
        else:
            assert self._selector is not None
            self._selector.unregister(sock)

    def wait(self, timeout: float) -> list[socket.socket]:
        if self._epoll is not None:
            sockets = self._sockets
            return [sockets[fd] for fd, _ in self._epoll.poll(timeout)]
        assert self._selector is not None
        return [key.fileobj for key, _ in self._selector.select(timeout)]  # type: ignore[misc]

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
        elif self._selector is not None:
            self._selector.close()


def exchange(
    pool: ConnectionPool, count: int, build: Callable[[int], bytes], method: str, width: int
) -> list[Answer | PostFailed]:
    """Answers to ``count`` requests (``build(i)`` makes the i-th) over ``width`` of the
    pool's connections (lanes), all from this thread: see the module's docstring."""
    results: list[Answer | PostFailed | None] = [None] * count
    lanes, failure = pool.lanes(width)
    following = 0  # the next request to send
    flying: dict[socket.socket, tuple[int, bool, float]] = {}
    readable = Readable()

    def send(sock: socket.socket, reused: bool, index: int) -> bool:
        """Writes request ``index``; False when the lane is dead (request not sent)."""
        try:
            request = build(index)
        except BaseException:
            sock.close()
            raise
        while True:
            try:
                sock.sendall(request)
            except OSError as error:  # reset, broken pipe, timeout
                sock.close()
                if reused:
                    try:
                        sock, reused = pool.connect(), False
                    except PostFailed as reconnect:
                        results[index] = reconnect
                        return False
                    continue
                results[index] = ConnectionFailed(f"writing to {pool.name}: {error}")
                return False
            flying[sock] = (index, reused, time.monotonic() + pool.read_timeout)
            readable.add(sock)
            return True

    def carry(sock: socket.socket | None, reused: bool) -> None:
        """Gives the lane the next request, or back to the pool when none is left."""
        nonlocal following
        while following < count:
            if sock is None:
                try:
                    sock, reused = pool.connect(), False
                except PostFailed as error:
                    if flying:
                        return  # the lanes still flying take the rest
                    for index in range(following, count):
                        results[index] = error
                    following = count
                    return
            index, following = following, following + 1
            if send(sock, reused, index):
                return
            sock = None
        if sock is not None:
            pool.release(sock)

    def answered(sock: socket.socket) -> None:
        # Readable is not always an answer: over TLS 1.3 the server's session tickets
        # arrive after the handshake. A blocking read would then wait for this lane's
        # answer while the others queue behind it, so the first read does not block.
        sock.setblocking(False)
        try:
            first = sock.recv(RECV_SIZE)
            reason = "end of stream"
        except (ssl.SSLWantReadError, BlockingIOError):
            return  # nothing for us yet: we are woken again
        except OSError as error:
            first, reason = b"", str(error)
        finally:
            if sock.fileno() >= 0:
                sock.settimeout(pool.read_timeout)
        index, reused, _ = flying.pop(sock)
        readable.remove(sock)
        if not first:
            sock.close()
            if reused:  # closed while idle: again on a new connection, once
                try:
                    fresh = pool.connect()
                except PostFailed as error:
                    results[index] = error
                    carry(None, False)
                    return
                if not send(fresh, False, index):
                    carry(None, False)
                return
            results[index] = ConnectionFailed(
                f"{pool.name} closed the connection without answering: {reason}"
            )
            carry(None, False)
            return
        answer = pool.finish(sock, first, method)
        results[index] = answer
        if isinstance(answer, Answer) and answer.keep_alive:
            carry(sock, True)
        else:
            sock.close()
            carry(None, False)

    try:
        if not lanes:
            carry(None, False)
        while lanes:
            carry(*lanes.pop(0))
        while flying:
            soonest = min(deadline for _, _, deadline in flying.values())
            ready = readable.wait(max(0.0, soonest - time.monotonic()))
            for sock in ready:
                answered(sock)
            now = time.monotonic()
            if soonest <= now:
                for sock, (index, _, deadline) in list(flying.items()):
                    if deadline <= now:
                        flying.pop(sock)
                        readable.remove(sock)
                        sock.close()
                        results[index] = Timeout(
                            f"{pool.name} did not answer within {pool.read_timeout:g} s"
                        )
                        carry(None, False)
    finally:  # only an exception (a request that could not be built) leaves sockets here
        for sock in flying:
            sock.close()
        for sock, _ in lanes:
            sock.close()
        readable.close()
    if failure is not None:
        results = [failure if r is None else r for r in results]
    return results  # type: ignore[return-value]
