"""The lean poster: the management API over HTTP/1.1 written directly on pooled sockets.

It signs each request with SigV4 itself (``sigv4``: the signing key is cached per day) and
writes it as one buffer on a pooled keep-alive socket (``pool``; TLS for ``https``), then reads
the answer with a minimal parser (``http11``). A ``boto3`` call spends most of its CPU in request
building and event hooks, and urllib3 in its request machinery; at every fan-out that is billed
Lambda time, per member. The lean poster costs about a tenth of boto3's CPU per post.
``post_many`` runs a whole fan-out from the calling thread (``multiplex``).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import ssl
from urllib.parse import quote, urlsplit

from backend.poster.errors import BadAnswer, Gone, PostError, PostFailed, Throttled
from backend.poster.http11 import Answer
from backend.poster.pool import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    ConnectionPool,
    NoEndpoint,
    default_ssl_context,
)
from backend.poster.sigv4 import (
    DEFAULT_PORTS,
    EMPTY_SHA256,
    SigV4Signer,
    amz_date,
    canonical_path,
    host_from_url,
)


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
        self.pool: ConnectionPool | NoEndpoint
        try:
            self._host = host_from_url(parts)
            port = parts.port or DEFAULT_PORTS.get(parts.scheme)
        except ValueError:  # a port that is not a number
            self._host, port = "", None
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname or port is None:
            # As urllib3 did: every request fails (PostFailed), the handler itself does not.
            self.pool = NoEndpoint(f"not an http(s) endpoint: {endpoint_url!r}")
            return
        if parts.scheme == "https" and ssl_context is None:
            ssl_context = default_ssl_context()
        self.pool = ConnectionPool(
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
            found = (path, canonical_path(path))
            if len(self._paths) >= 8192:
                self._paths.clear()
            self._paths[connection_id] = found
        return found

    def _build(self, method: str, connection_id: str, body: bytes, digest: str) -> bytes:
        """One signed request, as one buffer."""
        path, signed_path = self._path(connection_id)
        creds = self.signer.frozen_credentials()
        stamp = amz_date()
        authorization = self.signer.authorization(
            creds, method, self._host, signed_path, "", digest, stamp
        )
        token = creds.token
        # The headers boto3 sends, less its User-Agent and SDK invocation ids; like boto3, no
        # Content-Type (the body is the frame, raw) and no Content-Length on a GET.
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self._host}\r\nAccept-Encoding: identity\r\n"
            f"X-Amz-Date: {stamp}\r\n"
            + (f"X-Amz-Security-Token: {token}\r\n" if token else "")
            + f"Authorization: {authorization}\r\n"
            + ("\r\n" if method == "GET" else f"Content-Length: {len(body)}\r\n\r\n")
        ).encode()
        return head + body if body else head

    @staticmethod
    def _error(answer: Answer, connection_id: str) -> PostError | None:
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

    def _request(self, method: str, connection_id: str, body: bytes = b"") -> Answer:
        digest = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
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
                    hashlib.sha256(data).hexdigest() if data else EMPTY_SHA256
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
            raise BadAnswer(f"GetConnection's answer is not JSON: {error}") from None
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
