"""AWS Signature Version 4 for ``execute-api``, byte for byte as botocore signs it.

The lean poster signs every post itself: botocore's ``SigV4Auth`` builds an ``AWSRequest`` and
runs its hooks per request, which at a fan-out's rate is most of the CPU a post costs. This module
keeps the signing key per day and formats ``X-Amz-Date`` once per second; its output is tested
against botocore's (``tests/backend/test_poster.py``).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import time
from urllib.parse import quote, urlsplit

from backend.poster.errors import PostFailed

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_SIGNED = "host;x-amz-date"
_SIGNED_WITH_TOKEN = "host;x-amz-date;x-amz-security-token"
DEFAULT_PORTS = {"http": 80, "https": 443}

_clock: tuple[int, str] = (-1, "")


def amz_date() -> str:
    """``X-Amz-Date`` for now, formatted once per second (one tuple swap: thread-safe)."""
    global _clock
    second = int(time.time())
    cached = _clock
    if cached[0] != second:
        cached = _clock = (second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second)))
    return cached[1]


def host_from_url(parts) -> str:
    """The ``Host`` botocore signs: lowercase, without userinfo or the scheme's default port."""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{port}"
    return host


def canonical_path(path: str) -> str:
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

    def frozen_credentials(self):
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
        creds = self.frozen_credentials()
        stamp = now.strftime("%Y%m%dT%H%M%SZ") if now else amz_date()
        parts = urlsplit(url)
        host = host_from_url(parts)
        headers = {"host": host, "x-amz-date": stamp}
        if creds.token:
            headers["x-amz-security-token"] = creds.token
        headers["authorization"] = self.authorization(
            creds,
            method,
            host,
            canonical_path(parts.path),
            parts.query,
            hashlib.sha256(body).hexdigest(),
            stamp,
        )
        return headers
