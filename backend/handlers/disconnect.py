"""``$disconnect``: best effort (API Gateway may not deliver it); registrations also expire."""

from __future__ import annotations

from backend import classroom, config, runtime
from backend.handlers.events import OK, caller, poster
from backend.observability import invocation, logger, request_keys


@logger.inject_lambda_context(clear_state=True, log_event=False)
def handler(event: dict, context: object) -> dict:
    logger.append_keys(**request_keys(event))
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
                "status": request.get("disconnectStatusCode"),
                "reason": request.get("disconnectReason"),
            },
        )
        return OK
