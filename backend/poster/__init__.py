"""The ``@connections`` management API: deliver a frame to a connection, look it up, close it.

Two posters behave the same way:

- ``Boto3Poster`` (``boto3_client``) wraps ``boto3``'s ``apigatewaymanagementapi`` client, the
  reference.
- ``LeanPoster`` (``lean``) signs each request with SigV4 itself and writes it on a pooled
  HTTP/1.1 keep-alive socket; about a tenth of boto3's CPU per post. Its parts, split at their
  seams as botocore splits ``auth.py`` from ``httpsession.py``:

      sigv4       the signer, tested byte for byte against botocore's
      http11      reading an HTTP/1.1 answer off a socket
      pool        keep-alive connections to one host
      multiplex   a fan-out over a pool's connections from one thread
      lean        the poster that puts them together

Both raise the classes of ``errors`` (the tree is drawn there): ``Gone`` for HTTP 410 (the
connection is no more), ``Throttled`` for 429, and ``PostFailed`` (``ConnectionFailed``,
``Timeout``, ``BadAnswer``, or itself for an error answer) for anything else.
"""

from __future__ import annotations

from typing import Protocol

from backend.poster.boto3_client import Boto3Poster
from backend.poster.errors import (
    BadAnswer,
    ConnectionFailed,
    Gone,
    PostError,
    PostFailed,
    Throttled,
    Timeout,
)
from backend.poster.lean import LeanPoster, connection_from_wire
from backend.poster.sigv4 import SigV4Signer

__all__ = [
    "POSTERS",
    "BadAnswer",
    "Boto3Poster",
    "ConnectionFailed",
    "Gone",
    "LeanPoster",
    "PostError",
    "PostFailed",
    "Poster",
    "SigV4Signer",
    "Throttled",
    "Timeout",
    "connection_from_wire",
    "endpoint_for",
]


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


POSTERS = {"lean": LeanPoster, "boto3": Boto3Poster}
