"""The ``@connections`` management API: deliver a frame to a connection, look it up, close it.

Two posters behave the same way:

- ``Boto3Poster`` wraps ``boto3``'s ``apigatewaymanagementapi`` client, the reference.
- ``LeanPoster`` signs each request with SigV4 itself (the signing key is cached per day) and
  writes it as one buffer on a pooled HTTP/1.1 keep-alive socket (TLS for ``https``), then
  reads the answer with a minimal parser. A ``boto3`` call spends most of its CPU in request
  building and event hooks, and urllib3 in its request machinery; at every fan-out that is
  billed Lambda time, per member. The lean poster costs about a tenth of boto3's CPU per post.

Both raise ``Gone`` for HTTP 410 (the connection is no more), ``Throttled`` for 429, and
``PostFailed`` for anything else.

``LeanPoster.post_many`` posts one frame to many connections from the calling thread: a request
is written on each of up to ``concurrency`` pooled sockets, a selector waits for whichever
answers first, and that socket carries the next request. A fan-out then costs no thread
hand-offs and no lock convoys, and its requests reach the API back to back.
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import hmac
import json
import os
import select
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, Protocol
from urllib.parse import quote, urlsplit


class PostError(Exception):
    pass


class Gone(PostError):
    """HTTP 410: the connection is gone; remove its registration."""


class Throttled(PostError):
    """HTTP 429: the management API's rate limit; retry with backoff."""


class PostFailed(PostError):
    """Any other failure to post; counted and logged, never fatal to a fan-out."""


class Poster(Protocol):
    def post(self, connection_id: str, data: bytes) -> None: ...

    def delete(self, connection_id: str) -> None: ...

    def get(self, connection_id: str) -> dict: ...


def endpoint_for(event: dict, override: str | None = None) -> str:
    """``https://{domainName}/{stage}`` from the event, as API Gateway's samples build it."""
    if override:
        return override.rstrip("/")
    context = event["requestContext"]
    return f"https://{context['domainName']}/{context['stage']}"


def _boto_config(concurrency: int):
    from botocore.config import Config

    # Retries are the fan-out's job, so both posters report the first answer as it is.
    return Config(
        max_pool_connections=concurrency,
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=3,
        read_timeout=5,
    )


class Boto3Poster:
    def __init__(
        self, endpoint_url: str, region: str, concurrency: int = 128, client=None, credentials=None
    ) -> None:
        if client is None:
            import boto3

            keys = {}
            if credentials is not None:
                keys = {
                    "aws_access_key_id": credentials.access_key,
                    "aws_secret_access_key": credentials.secret_key,
                    "aws_session_token": credentials.token,
                }
            client = boto3.client(
                "apigatewaymanagementapi",
                endpoint_url=endpoint_url,
                region_name=region,
                config=_boto_config(concurrency),
                **keys,
            )
        self.client = client

    def _call(self, method, connection_id: str, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return method(ConnectionId=connection_id, **kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "GoneException" or status == 410:
                raise Gone(connection_id) from None
            if status == 429 or code in ("LimitExceededException", "TooManyRequestsException"):
                raise Throttled(connection_id) from None
            raise PostFailed(f"{code or status}: {error}") from None
        except BotoCoreError as error:
            raise PostFailed(str(error)) from None

    def post(self, connection_id: str, data: bytes) -> None:
        self._call(self.client.post_to_connection, connection_id, Data=data)

    def delete(self, connection_id: str) -> None:
        self._call(self.client.delete_connection, connection_id)

    def get(self, connection_id: str) -> dict:
        answer = self._call(self.client.get_connection, connection_id)
        answer.pop("ResponseMetadata", None)
        return answer


_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_SIGNED = "host;x-amz-date"
_SIGNED_WITH_TOKEN = "host;x-amz-date;x-amz-security-token"
_DEFAULT_PORTS = {"http": 80, "https": 443}

_clock: tuple[int, str] = (-1, "")


def _amz_date() -> str:
    """``X-Amz-Date`` for now, formatted once per second (one tuple swap: thread-safe)."""
    global _clock
    second = int(time.time())
    cached = _clock
    if cached[0] != second:
        cached = _clock = (second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second)))
    return cached[1]


def _host_from_url(parts) -> str:
    """The ``Host`` botocore signs: lowercase, without userinfo or the scheme's default port."""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{port}"
    return host


def _canonical_path(path: str) -> str:
    """The canonical URI botocore signs for a non-S3 service: dot and empty segments removed
    (``botocore.utils.remove_dot_segments``), then the path quoted once more."""
    if not path:
        return "/"
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    first = "/" if path[0] == "/" else ""
    last = "/" if path[-1] == "/" and segments else ""
    return quote(first + "/".join(segments) + last, safe="/~")


class SigV4Signer:
    """AWS Signature Version 4 for ``execute-api``, as botocore signs it, with a cached key."""

    def __init__(self, region: str, service: str = "execute-api", credentials=None) -> None:
        self.region = region
        self.service = service
        self._credentials = credentials
        self._scope_tail = f"/{region}/{service}/aws4_request"
        # (date, secret, key) swapped as one tuple, so a thread never pairs a key with another
        # day's date.
        self._cached_key: tuple[str, str, bytes] = ("", "", b"")

    @property
    def _key(self) -> bytes:
        return self._cached_key[2]

    def _frozen(self):
        if self._credentials is None:
            import botocore.session

            self._credentials = botocore.session.get_session().get_credentials()
            if self._credentials is None:
                raise PostFailed("no AWS credentials to sign management API requests")
        return self._credentials.get_frozen_credentials()

    def _signing_key(self, secret: str, date: str) -> bytes:
        cached = self._cached_key
        if cached[0] == date and cached[1] == secret:
            return cached[2]
        key = hmac.digest(("AWS4" + secret).encode(), date.encode(), "sha256")
        for part in (self.region, self.service, "aws4_request"):
            key = hmac.digest(key, part.encode(), "sha256")
        self._cached_key = (date, secret, key)
        return key

    def authorization(
        self,
        creds,
        method: str,
        host: str,
        canonical_path: str,
        query: str,
        payload_hash: str,
        amz_date: str,
    ) -> str:
        """The ``Authorization`` value for a request signed on host, date and token."""
        token = creds.token
        if token:
            signed = _SIGNED_WITH_TOKEN
            canonical_headers = (
                f"host:{host}\nx-amz-date:{amz_date}\nx-amz-security-token:{token}\n"
            )
        else:
            signed = _SIGNED
            canonical_headers = f"host:{host}\nx-amz-date:{amz_date}\n"
        canonical = (
            f"{method}\n{canonical_path}\n{query}\n{canonical_headers}\n{signed}\n{payload_hash}"
        )
        date = amz_date[:8]
        scope = date + self._scope_tail
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{digest}"
        key = self._signing_key(creds.secret_key, date)
        signature = hmac.digest(key, to_sign.encode(), "sha256").hex()
        return (
            f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )

    def headers(
        self, method: str, url: str, body: bytes, now: datetime.datetime | None = None
    ) -> dict:
        """The headers that sign this request (host, x-amz-date, token, authorization)."""
        creds = self._frozen()
        amz_date = now.strftime("%Y%m%dT%H%M%SZ") if now else _amz_date()
        parts = urlsplit(url)
        host = _host_from_url(parts)
        headers = {"host": host, "x-amz-date": amz_date}
        if creds.token:
            headers["x-amz-security-token"] = creds.token
        headers["authorization"] = self.authorization(
            creds,
            method,
            host,
            _canonical_path(parts.path),
            parts.query,
            hashlib.sha256(body).hexdigest(),
            amz_date,
        )
        return headers


# ----- a minimal HTTP/1.1 keep-alive client ------------------------------------------------------

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0
_RECV_SIZE = 65536
_MAX_HEAD = 65536


class _Answer(NamedTuple):
    status: int
    body: bytes
    error_type: str  # x-amzn-ErrorType, up to its first ':'
    keep_alive: bool


def _more(sock: socket.socket, data: bytes) -> bytes:
    chunk = sock.recv(_RECV_SIZE)
    if not chunk:
        raise PostFailed("the management API closed the connection in the middle of an answer")
    return data + chunk


def _find(sock: socket.socket, data: bytes, marker: bytes, too_long: str) -> tuple[bytes, int]:
    """Reads until ``marker`` is in ``data``; returns the data and where the marker starts."""
    end = data.find(marker)
    while end < 0:
        if len(data) > _MAX_HEAD:
            raise PostFailed(too_long)
        data = _more(sock, data)
        end = data.find(marker)
    return data, end


def _read_answer(sock: socket.socket, data: bytes, method: str) -> _Answer:
    """One HTTP/1.x response whose first bytes are ``data``: status, headers, then a body by
    ``Content-Length``, chunked, or up to the end of the connection."""
    while True:
        data, end = _find(
            sock, data, b"\r\n\r\n", "the management API's answer has too long a head"
        )
        lines = data[:end].decode("latin-1").split("\r\n")
        data = data[end + 4 :]
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not (version.startswith("HTTP/1.") and code.isdigit()):
            raise PostFailed(f"not an HTTP answer: {lines[0][:80]!r}")
        status = int(code)
        if status >= 200:
            break  # 1xx answers are interim: the final one follows

    length = -1
    chunked = False
    keep_alive = version != "HTTP/1.0"
    error_type = ""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            try:
                length = int(value)
            except ValueError:
                raise PostFailed(f"bad Content-Length: {value.strip()[:40]!r}") from None
        elif name == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif name == "connection":
            tokens = value.lower()
            if "close" in tokens:
                keep_alive = False
            elif "keep-alive" in tokens:
                keep_alive = True
        elif name == "x-amzn-errortype":
            error_type = value.strip().partition(":")[0]

    if method == "HEAD" or status in (204, 304):
        body = b""
    elif chunked:
        body, data = _read_chunked(sock, data)
    elif length >= 0:
        while len(data) < length:
            data = _more(sock, data)
        body, data = data[:length], data[length:]
    else:  # the body ends with the connection
        parts = [data]
        while chunk := sock.recv(_RECV_SIZE):
            parts.append(chunk)
        body, data, keep_alive = b"".join(parts), b"", False
    if data:  # bytes beyond the answer: the connection is not in a known state
        keep_alive = False
    return _Answer(status, body, error_type, keep_alive)


def _read_chunked(sock: socket.socket, data: bytes) -> tuple[bytes, bytes]:
    body = bytearray()
    while True:
        data, end = _find(sock, data, b"\r\n", "bad chunk size line in the management API's answer")
        try:
            size = int(data[:end].partition(b";")[0].strip(), 16)
        except ValueError:
            raise PostFailed("bad chunk size in the management API's answer") from None
        data = data[end + 2 :]
        if size == 0:
            break
        while len(data) < size + 2:
            data = _more(sock, data)
        if data[size : size + 2] != b"\r\n":
            raise PostFailed("a chunk of the management API's answer does not end with CRLF")
        body += data[:size]
        data = data[size + 2 :]
    while True:  # trailers, up to an empty line
        data, end = _find(sock, data, b"\r\n", "too long trailers in the management API's answer")
        line, data = data[:end], data[end + 2 :]
        if not line:
            return bytes(body), data


class _Readable:
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


class _ConnectionPool:
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

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as error:
            raise PostFailed(f"could not connect to {self.name}: {error}") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.read_timeout)
        except OSError as error:
            sock.close()
            raise PostFailed(f"could not connect to {self.name}: {error}") from None
        return sock

    def request(self, request: bytes, method: str) -> _Answer:
        idle = self._idle
        try:
            sock = idle.pop()
            reused = True
        except IndexError:
            sock = self._connect()
            reused = False
        while True:
            try:
                sock.sendall(request)
                first = sock.recv(_RECV_SIZE)
            except TimeoutError:
                sock.close()
                raise PostFailed(
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
                raise PostFailed(f"{self.name} closed the connection without answering: {reason}")
            sock = self._connect()
            reused = False
        answer = self._finish(sock, first, method)
        if isinstance(answer, PostFailed):
            raise answer
        if answer.keep_alive:
            self._release(sock)
        else:
            sock.close()
        return answer

    def _finish(self, sock: socket.socket, first: bytes, method: str) -> _Answer | PostFailed:
        """The answer whose first bytes are ``first``, or why it could not be read (then the
        connection is closed: it is in no known state)."""
        try:
            return _read_answer(sock, first, method)
        except TimeoutError:
            failure = PostFailed(f"{self.name} did not finish answering within the timeout")
        except OSError as error:
            failure = PostFailed(f"reading {self.name}'s answer: {error}")
        except PostFailed as error:
            failure = error
        sock.close()
        return failure

    def _release(self, sock: socket.socket) -> None:
        if len(self._idle) < self.maxsize:
            self._idle.append(sock)
        else:
            sock.close()

    def _lanes(self, width: int) -> tuple[list[tuple[socket.socket, bool]], PostFailed | None]:
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
                lanes.append((self._connect(), False))
            except PostFailed as error:
                failure = error
        elif missing > 1:
            if self._opener is None:
                self._opener = ThreadPoolExecutor(self.maxsize, thread_name_prefix="connect")
            for opening in [self._opener.submit(self._connect) for _ in range(missing)]:
                try:
                    lanes.append((opening.result(), False))
                except PostFailed as error:
                    failure = error
        return lanes, failure

    def exchange(
        self, count: int, build: Callable[[int], bytes], method: str, width: int
    ) -> list[_Answer | PostFailed]:
        """Answers to ``count`` requests (``build(i)`` makes the i-th), at most ``width`` at a
        time, all from this thread.

        Each lane (a connection) has one request in flight; when it answers, the lane takes
        the next request. As ``request`` does, a reused connection that the server closed
        while idle is replaced and the request sent again, once. A lane that fails is
        replaced while requests remain; when no connection can be opened, they fail with why.
        """
        if count == 0:
            return []
        with self._lending:
            granted = max(1, min(width, count, self.maxsize - self._lent))
            self._lent += granted
        try:
            return self._exchange(count, build, method, granted)
        finally:
            with self._lending:
                self._lent -= granted

    def _exchange(
        self, count: int, build: Callable[[int], bytes], method: str, width: int
    ) -> list[_Answer | PostFailed]:
        results: list[_Answer | PostFailed | None] = [None] * count
        lanes, failure = self._lanes(width)
        following = 0  # the next request to send
        flying: dict[socket.socket, tuple[int, bool, float]] = {}
        readable = _Readable()

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
                            sock, reused = self._connect(), False
                        except PostFailed as reconnect:
                            results[index] = reconnect
                            return False
                        continue
                    results[index] = PostFailed(f"writing to {self.name}: {error}")
                    return False
                flying[sock] = (index, reused, time.monotonic() + self.read_timeout)
                readable.add(sock)
                return True

        def carry(sock: socket.socket | None, reused: bool) -> None:
            """Gives the lane the next request, or back to the pool when none is left."""
            nonlocal following
            while following < count:
                if sock is None:
                    try:
                        sock, reused = self._connect(), False
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
                self._release(sock)

        def answered(sock: socket.socket) -> None:
            # Readable is not always an answer: over TLS 1.3 the server's session tickets
            # arrive after the handshake. A blocking read would then wait for this lane's
            # answer while the others queue behind it, so the first read does not block.
            sock.setblocking(False)
            try:
                first = sock.recv(_RECV_SIZE)
                reason = "end of stream"
            except (ssl.SSLWantReadError, BlockingIOError):
                return  # nothing for us yet: we are woken again
            except OSError as error:
                first, reason = b"", str(error)
            finally:
                if sock.fileno() >= 0:
                    sock.settimeout(self.read_timeout)
            index, reused, _ = flying.pop(sock)
            readable.remove(sock)
            if not first:
                sock.close()
                if reused:  # closed while idle: again on a new connection, once
                    try:
                        fresh = self._connect()
                    except PostFailed as error:
                        results[index] = error
                        carry(None, False)
                        return
                    if not send(fresh, False, index):
                        carry(None, False)
                    return
                results[index] = PostFailed(
                    f"{self.name} closed the connection without answering: {reason}"
                )
                carry(None, False)
                return
            answer = self._finish(sock, first, method)
            results[index] = answer
            if isinstance(answer, _Answer) and answer.keep_alive:
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
                            results[index] = PostFailed(
                                f"{self.name} did not answer within {self.read_timeout:g} s"
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

    def close(self) -> None:
        while True:
            try:
                self._idle.pop().close()
            except IndexError:
                break
        if self._opener is not None:
            self._opener.shutdown(wait=False)
            self._opener = None


class _NoEndpoint:
    def __init__(self, reason: str) -> None:
        self.reason = reason

    def request(self, request: bytes, method: str) -> _Answer:
        raise PostFailed(self.reason)

    def exchange(self, count: int, build, method: str, width: int) -> list[PostFailed]:
        return [PostFailed(self.reason)] * count

    def close(self) -> None:
        pass


def _default_ssl_context() -> ssl.SSLContext:
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


class LeanPoster:
    """The management API over HTTP/1.1 written directly on pooled keep-alive sockets.

    Per endpoint, the ``Host`` value, the path prefix and the signing scope are worked out once;
    per connection id, its path and canonical path are cached; per post, what is left is one
    SigV4 signature, one buffer written and one answer read.
    """

    def __init__(
        self,
        endpoint_url: str,
        region: str,
        concurrency: int = 128,
        credentials=None,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self.signer = SigV4Signer(region, credentials=credentials)
        parts = urlsplit(self.endpoint_url)
        self._prefix = f"{parts.path}/@connections/"
        self._paths: dict[str, tuple[str, str]] = {}
        self.pool: _ConnectionPool | _NoEndpoint
        try:
            self._host = _host_from_url(parts)
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:  # a port that is not a number
            self._host, port = "", None
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or port is None:
            # As urllib3 did: every request fails (PostFailed), the handler itself does not.
            self.pool = _NoEndpoint(f"not an http(s) endpoint: {endpoint_url!r}")
            return
        if parts.scheme == "https" and ssl_context is None:
            ssl_context = _default_ssl_context()
        self.pool = _ConnectionPool(
            parts.hostname,
            port,
            max(1, concurrency),
            ssl_context if parts.scheme == "https" else None,
            connect_timeout,
            read_timeout,
        )

    def _url(self, connection_id: str) -> str:
        return f"{self.endpoint_url}/@connections/{quote(connection_id, safe='')}"

    def _path(self, connection_id: str) -> tuple[str, str]:
        """(path on the wire, canonical path signed) for a connection id, cached."""
        found = self._paths.get(connection_id)
        if found is None:
            path = self._prefix + quote(connection_id, safe="")
            found = (path, _canonical_path(path))
            if len(self._paths) >= 8192:
                self._paths.clear()
            self._paths[connection_id] = found
        return found

    def _build(self, method: str, connection_id: str, body: bytes, digest: str) -> bytes:
        """One signed request, as one buffer."""
        path, canonical_path = self._path(connection_id)
        creds = self.signer._frozen()
        amz_date = _amz_date()
        authorization = self.signer.authorization(
            creds, method, self._host, canonical_path, "", digest, amz_date
        )
        token = creds.token
        # The headers boto3 sends, less its User-Agent and SDK invocation ids; like boto3, no
        # Content-Type (the body is the frame, raw) and no Content-Length on a GET.
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self._host}\r\nAccept-Encoding: identity\r\n"
            f"X-Amz-Date: {amz_date}\r\n"
            + (f"X-Amz-Security-Token: {token}\r\n" if token else "")
            + f"Authorization: {authorization}\r\n"
            + ("\r\n" if method == "GET" else f"Content-Length: {len(body)}\r\n\r\n")
        ).encode()
        return head + body if body else head

    @staticmethod
    def _error(answer: _Answer, connection_id: str) -> PostError | None:
        """As Boto3Poster reads botocore's ClientError: by status, or by AWS error code."""
        status = answer.status
        if status < 300:
            return None
        code = answer.error_type
        if status == 410 or code == "GoneException":
            return Gone(connection_id)
        if status == 429 or code in ("LimitExceededException", "TooManyRequestsException"):
            return Throttled(connection_id)
        text = answer.body[:200].decode("utf-8", "replace")
        return PostFailed(f"{code or status}: HTTP {status}: {text}")

    def _request(self, method: str, connection_id: str, body: bytes = b"") -> _Answer:
        digest = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
        answer = self.pool.request(self._build(method, connection_id, body, digest), method)
        error = self._error(answer, connection_id)
        if error is not None:
            raise error
        return answer

    def post_many(self, posts: list[tuple[str, bytes]], concurrency: int) -> list[PostError | None]:
        """Posts each (connection id, frame), ``concurrency`` at a time, from this thread;
        returns each one's error (``Gone``, ``Throttled``, ``PostFailed``), or None."""
        digests: dict[int, str] = {}  # a fan-out posts the same bytes object to everyone

        def build(index: int) -> bytes:
            connection_id, data = posts[index]
            digest = digests.get(id(data))
            if digest is None:
                digest = digests[id(data)] = (
                    hashlib.sha256(data).hexdigest() if data else _EMPTY_SHA256
                )
            return self._build("POST", connection_id, data, digest)

        answers = self.pool.exchange(len(posts), build, "POST", concurrency)
        return [
            answer if isinstance(answer, PostError) else self._error(answer, connection_id)
            for (connection_id, _), answer in zip(posts, answers, strict=True)
        ]

    def post(self, connection_id: str, data: bytes) -> None:
        self._request("POST", connection_id, data)

    def delete(self, connection_id: str) -> None:
        self._request("DELETE", connection_id)

    def get(self, connection_id: str) -> dict:
        """GetConnection, in the shape boto3 returns it."""
        try:
            wire = json.loads(self._request("GET", connection_id).body or b"{}")
        except ValueError as error:
            raise PostFailed(f"GetConnection's answer is not JSON: {error}") from None
        return connection_from_wire(wire)

    def close(self) -> None:
        """Closes the idle connections (a warm Lambda keeps them; tests and tools close them)."""
        self.pool.close()


def connection_from_wire(wire: dict) -> dict:
    """GetConnection's JSON answer in the shape boto3 returns it."""
    identity = wire.get("identity") or {}
    answer: dict = {
        "Identity": {
            "SourceIp": identity.get("sourceIp"),
            "UserAgent": identity.get("userAgent"),
        }
    }
    for key in ("connectedAt", "lastActiveAt"):
        if wire.get(key):
            answer[key[0].upper() + key[1:]] = _timestamp(wire[key])
    return answer


def _timestamp(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


POSTERS = {"lean": LeanPoster, "boto3": Boto3Poster}
