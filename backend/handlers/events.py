"""Reading API Gateway WebSocket events: the caller, the management endpoint."""

from __future__ import annotations

from backend import config, runtime
from backend.classroom import Caller
from backend.poster import Poster, endpoint_for


def caller(event: dict) -> Caller:
    context = event["requestContext"]
    authorizer = context.get("authorizer") or {}
    identity = context.get("identity") or {}
    return Caller(
        connection_id=context["connectionId"],
        user_id=str(authorizer.get("userId", "")),
        role=str(authorizer.get("role", "")),
        room=str(authorizer.get("room", "")),
        name=str(authorizer.get("name", "")),
        connected_at=int(context.get("connectedAt") or 0),
        source_ip=str(identity.get("sourceIp") or ""),
        user_agent=str(identity.get("userAgent") or ""),
    )


def poster(event: dict) -> Poster:
    return runtime.poster(endpoint_for(event, config.settings().management_endpoint_url))


OK = {"statusCode": 200}
