"""Keep-alive HTTP/1.1 connections to the management API's host, for the lean poster.

One request at a time on a connection (``request``), or many over lent lanes (``exchange``, which
the multiplexer runs). Failures are typed (``backend.poster.errors``): ``ConnectionFailed`` when
no connection could be made or it dropped before an answer, ``Timeout``, and ``BadAnswer`` from
the parser.
"""

from __future__ import annotations

import collections
import os
import socket
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from backend.poster import multiplex
from backend.poster.errors import ConnectionFailed, PostFailed, Timeout
from backend.poster.http11 import RECV_SIZE, Answer, read_answer

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0


class ConnectionPool:
    """Keep-alive connections to one host: a LIFO of idle sockets, at most ``maxsize`` kept.

    A request takes the most recently used idle socket, or opens one; ``deque.pop`` and
    ``append`` are atomic, so threads share the pool without a lock. A reused socket that the
    server closed while it was idle (end of stream or reset before any byte of the answer) is
    replaced by a new connection and the request sent again, once.
    """

    def __init__(
        self,
        host: str,
        port: int,
        maxsize: int,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port
        self.maxsize = maxsize
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.name = f"{host}:{port}"
        self._idle: collections.deque[socket.socket] = collections.deque()
        self._opener: ThreadPoolExecutor | None = None
        # Lanes lent to fan-outs in progress: concurrent fan-outs (the sandbox's handler
        # threads) share ``maxsize`` connections rather than each opening its own and closing
        # them after, which a Lambda (one invocation at a time) never meets.
        self._lent = 0
        self._lending = threading.Lock()

    def connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as error:
            raise ConnectionFailed(f"could not connect to {self.name}: {error}") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.read_timeout)
        except OSError as error:
            sock.close()
            raise ConnectionFailed(f"could not connect to {self.name}: {error}") from None
        return sock

    def request(self, request: bytes, method: str) -> Answer:
        idle = self._idle
        try:
            sock = idle.pop()
            reused = True
        except IndexError:
            sock = self.connect()
            reused = False
        while True:
            try:
                sock.sendall(request)
                first = sock.recv(RECV_SIZE)
            except TimeoutError:
                sock.close()
                raise Timeout(
                    f"{self.name} did not answer within {self.read_timeout:g} s"
                ) from None
            except OSError as error:  # reset, broken pipe, TLS end of stream
                first = b""
                reason = str(error)
            else:
                reason = "end of stream"
            if first:
                break
            sock.close()
            if not reused:
                raise ConnectionFailed(
                    f"{self.name} closed the connection without answering: {reason}"
                )
            sock = self.connect()
            reused = False
        answer = self.finish(sock, first, method)
        if isinstance(answer, PostFailed):
            raise answer
        if answer.keep_alive:
            self.release(sock)
        else:
            sock.close()
        return answer

    def finish(self, sock: socket.socket, first: bytes, method: str) -> Answer | PostFailed:
        """The answer whose first bytes are ``first``, or why it could not be read (then the
        connection is closed: it is in no known state)."""
        failure: PostFailed
        try:
            return read_answer(sock, first, method)
        except TimeoutError:
            failure = Timeout(f"{self.name} did not finish answering within the timeout")
        except OSError as error:
            failure = ConnectionFailed(f"reading {self.name}'s answer: {error}")
        except PostFailed as error:
            failure = error
        sock.close()
        return failure

    def release(self, sock: socket.socket) -> None:
        if len(self._idle) < self.maxsize:
            self._idle.append(sock)
        else:
            sock.close()

    def lanes(self, width: int) -> tuple[list[tuple[socket.socket, bool]], PostFailed | None]:
        """Up to ``width`` connections: idle ones first, the rest opened at the same time.

        Only a cold start opens many: threads open them in parallel (one TLS handshake's
        wait, not ``width`` of them). Returns the connections, each with whether it was
        reused, and the error of a connection that could not be opened, if any.
        """
        lanes: list[tuple[socket.socket, bool]] = []
        while len(lanes) < width:
            try:
                lanes.append((self._idle.pop(), True))
            except IndexError:
                break
        missing = width - len(lanes)
        failure = None
        if missing == 1:
            try:
                lanes.append((self.connect(), False))
            except PostFailed as error:
                failure = error
        elif missing > 1:
            if self._opener is None:
                self._opener = ThreadPoolExecutor(self.maxsize, thread_name_prefix="connect")
            for opening in [self._opener.submit(self.connect) for _ in range(missing)]:
                try:
                    lanes.append((opening.result(), False))
                except PostFailed as error:
                    failure = error
        return lanes, failure

    def exchange(
        self, count: int, build: Callable[[int], bytes], method: str, width: int
    ) -> list[Answer | PostFailed]:
        """Answers to ``count`` requests (``build(i)`` makes the i-th), at most ``width`` at a
        time, all from this thread (``multiplex.exchange``), on lanes lent from this pool."""
        if count == 0:
            return []
        with self._lending:
            granted = max(1, min(width, count, self.maxsize - self._lent))
            self._lent += granted
        try:
            return multiplex.exchange(self, count, build, method, granted)
        finally:
            with self._lending:
                self._lent -= granted

    def close(self) -> None:
        while True:
            try:
                self._idle.pop().close()
            except IndexError:
                break
        if self._opener is not None:
            self._opener.shutdown(wait=False)
            self._opener = None


class NoEndpoint:
    """The pool of an endpoint that is not one: every request fails, the handler does not."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def request(self, request: bytes, method: str) -> Answer:
        raise PostFailed(self.reason)

    def exchange(self, count: int, build, method: str, width: int) -> list[PostFailed]:
        return [PostFailed(self.reason)] * count

    def close(self) -> None:
        pass


def default_ssl_context() -> ssl.SSLContext:
    """Verified TLS with the CA bundle botocore would use: ``AWS_CA_BUNDLE``, else certifi's,
    else the system's."""
    cafile = os.environ.get("AWS_CA_BUNDLE")
    if not cafile:
        try:
            import certifi

            cafile = certifi.where()
        except ImportError:
            cafile = None
    return ssl.create_default_context(cafile=cafile)
