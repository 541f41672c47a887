"""``$disconnect``: best effort (API Gateway may not deliver it); registrations also expire."""

from __future__ import annotations

from backend import classroom, config, runtime
from backend.handlers.events import OK, caller, poster
from backend.observability import invocation, logger


def handler(event: dict, context: object) -> dict:
    with invocation("disconnect"):
        who = caller(event)
        classroom.disconnect(
            runtime.registry(),
            poster(event),
            who.connection_id,
            room=who.room or None,
            concurrency=config.settings().fanout_concurrency,
        )
        request = event["requestContext"]
        logger.info(
            "disconnected",
            extra={
                "connectionId": who.connection_id,
                "room": who.room,
                "status": request.get("disconnectStatusCode"),
                "reason": request.get("disconnectReason"),
            },
        )
        return OK
