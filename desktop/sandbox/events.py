"""The events API Gateway hands to Lambda for a WebSocket API, built as AWS builds them.

The handlers in ``backend/`` run unchanged in the sandbox, so every event they receive must have
the shape AWS sends: the REQUEST authorizer event on ``$connect``, then the ``CONNECT``,
``MESSAGE`` and ``DISCONNECT`` proxy events (``tests/events`` holds recorded examples). Ids
(connection, request, message) look like API Gateway's: 16 characters of base64 ending in
``=``, drawn from the URL-safe alphabet so they need no escaping beyond the ``=``.
"""

from __future__ import annotations

import base64
import os
import secrets
import string
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

ACCOUNT_ID = "000000000000"
ROUTE_CONNECT = "$connect"
ROUTE_DISCONNECT = "$disconnect"
ROUTE_DEFAULT = "$default"


def gateway_id() -> str:
    """A connection, request or message id shaped like API Gateway's (``L0SM9cOFvHcCIhw=``)."""
    return base64.urlsafe_b64encode(os.urandom(11)).decode("ascii")


def api_id() -> str:
    """A REST-style API id: ten lowercase letters and digits, like ``abcdef1234``."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(10))


def request_time(epoch_ms: int) -> str:
    """``requestTime`` in API Gateway's access-log format: ``09/Feb/2019:17:46:29 +0000``."""
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch_ms / 1000))


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Handshake:
    """What the gateway learnt from a WebSocket upgrade request, before anything is decided."""

    connection_id: str
    api_id: str
    stage: str
    region: str
    domain_name: str
    source_ip: str
    user_agent: str
    headers: list[tuple[str, str]]
    query: list[tuple[str, str]]
    connected_at: int = field(default_factory=now_ms)

    @property
    def method_arn(self) -> str:
        return (
            f"arn:aws:execute-api:{self.region}:{ACCOUNT_ID}:{self.api_id}/{self.stage}/"
            f"{ROUTE_CONNECT}"
        )

    def single_headers(self) -> dict[str, str]:
        return _single(self.headers)

    def multi_headers(self) -> dict[str, list[str]]:
        return _multi(self.headers)

    def single_query(self) -> dict[str, str] | None:
        return _single(self.query) or None

    def multi_query(self) -> dict[str, list[str]] | None:
        return _multi(self.query) or None

    def query_value(self, name: str) -> str | None:
        """The last value of a query parameter, as ``queryStringParameters`` keeps it."""
        return (self.single_query() or {}).get(name)

    def identity(self) -> dict:
        return {"sourceIp": self.source_ip, "userAgent": self.user_agent}

    def request_context(
        self, route_key: str, event_type: str, request_id: str, epoch_ms: int
    ) -> dict:
        """The ``requestContext`` fields every WebSocket event carries."""
        return {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": request_time(epoch_ms),
            "messageDirection": "IN",
            "stage": self.stage,
            "connectedAt": self.connected_at,
            "requestTimeEpoch": epoch_ms,
            "identity": self.identity(),
            "requestId": request_id,
            "domainName": self.domain_name,
            "connectionId": self.connection_id,
            "apiId": self.api_id,
        }


def _single(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    # API Gateway keeps the last value of a repeated name in the single-value map.
    return {name: value for name, value in pairs}


def _multi(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in pairs:
        found.setdefault(name, []).append(value)
    return found


def authorizer_event(handshake: Handshake) -> dict:
    """The REQUEST authorizer event for ``$connect``."""
    request_id = gateway_id()
    return {
        "type": "REQUEST",
        "methodArn": handshake.method_arn,
        "headers": handshake.single_headers(),
        "multiValueHeaders": handshake.multi_headers(),
        "queryStringParameters": handshake.single_query(),
        "multiValueQueryStringParameters": handshake.multi_query(),
        "stageVariables": {},
        "requestContext": handshake.request_context(ROUTE_CONNECT, "CONNECT", request_id, now_ms()),
    }


def connect_event(handshake: Handshake, authorizer: dict) -> dict:
    """The ``$connect`` proxy event; ``authorizer`` is the policy's context with principalId."""
    context = handshake.request_context(ROUTE_CONNECT, "CONNECT", gateway_id(), now_ms())
    context["authorizer"] = authorizer
    return {
        "headers": handshake.single_headers(),
        "multiValueHeaders": handshake.multi_headers(),
        "queryStringParameters": handshake.single_query(),
        "multiValueQueryStringParameters": handshake.multi_query(),
        "requestContext": context,
        "isBase64Encoded": False,
    }


def message_event(
    handshake: Handshake, authorizer: dict, route_key: str, body: str, is_base64: bool = False
) -> dict:
    """A ``MESSAGE`` event for one client frame routed to ``route_key``."""
    request_id = gateway_id()
    context = handshake.request_context(route_key, "MESSAGE", request_id, now_ms())
    context["messageId"] = gateway_id()
    context["authorizer"] = authorizer
    return {"requestContext": context, "body": body, "isBase64Encoded": is_base64}


def disconnect_event(handshake: Handshake, authorizer: dict, status_code: int, reason: str) -> dict:
    """The ``$disconnect`` event; API Gateway sends only a few headers with it."""
    host = handshake.single_headers().get("Host", handshake.domain_name)
    context = handshake.request_context(ROUTE_DISCONNECT, "DISCONNECT", gateway_id(), now_ms())
    context["authorizer"] = authorizer
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    return {
        "headers": {
            "Host": host,
            "x-api-key": "",
            "X-Forwarded-For": "",
            "x-restapi": "",
        },
        "multiValueHeaders": {
            "Host": [host],
            "x-api-key": [""],
            "X-Forwarded-For": [""],
            "x-restapi": [""],
        },
        "requestContext": context,
        "isBase64Encoded": False,
    }


@dataclass
class LambdaContext:
    """The context object Lambda passes a handler: names, request id and the time left.

    Each invocation gets a fresh one, so ``aws_request_id`` is unique and the remaining time
    counts down from the function's timeout (API Gateway's integration timeout is 29 s).
    """

    function_name: str
    region: str
    timeout_seconds: float = 29.0
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: object = None
    client_context: object = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return time.strftime("%Y/%m/%d/[$LATEST]sandbox", time.gmtime())

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
