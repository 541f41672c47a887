"""``$connect``: register the connection, tell the classroom ``join``."""

from __future__ import annotations

from backend import classroom, config, runtime
from backend.handlers.events import OK, caller, poster
from backend.observability import invocation, logger, request_keys


@logger.inject_lambda_context(clear_state=True, log_event=False)
def handler(event: dict, context: object) -> dict:
    logger.append_keys(**request_keys(event))
    with invocation("connect"):
        who = caller(event)
        if not who.room or not who.user_id:
            logger.warning("connect without authorizer context")
            return {"statusCode": 403}
        request = event["requestContext"]
        identity = request.get("identity") or {}
        classroom.connect(
            runtime.registry(),
            poster(event),
            who,
            source_ip=identity.get("sourceIp", ""),
            user_agent=identity.get("userAgent") or "",
            connected_at=request.get("connectedAt"),
            concurrency=config.settings().fanout_concurrency,
        )
        logger.info("connected", extra={"role": who.role})
        return OK
