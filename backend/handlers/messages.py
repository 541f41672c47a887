"""``send``, ``sync``, ``who``, ``ping`` and ``$default``: one entry point, PROTOCOL.md's rules.

Redis being down answers ``unavailable`` and anything unexpected ``internal``, both as error
frames to the sender, so a client always learns its frame was not taken.
"""

from __future__ import annotations

import redis.exceptions

from backend import classroom, config, frames, runtime
from backend.handlers.events import OK, caller, poster
from backend.observability import invocation, logger, request_keys


@logger.inject_lambda_context(clear_state=True, log_event=False)
def handler(event: dict, context: object) -> dict:
    logger.append_keys(**request_keys(event))
    with invocation("messages"):
        who = caller(event)
        management = poster(event)
        try:
            classroom.handle_frame(
                runtime.registry(),
                management,
                who,
                event.get("body"),
                concurrency=config.settings().fanout_concurrency,
            )
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            logger.exception("redis unavailable")
            message = "the classroom service is unavailable; retry shortly"
            error = frames.error("unavailable", message, frames.client_id_of(event.get("body")))
            classroom.reply(management, who, error)
        except Exception:
            logger.exception("frame failed")
            error = frames.error(
                "internal", "internal error", frames.client_id_of(event.get("body"))
            )
            classroom.reply(management, who, error)
        return OK
