"""``send``, ``sync``, ``who``, ``ping`` and ``$default``: one entry point, PROTOCOL.md's rules.

Redis being down answers ``unavailable`` and anything unexpected ``internal``, both as error
frames to the sender, so a client always learns its frame was not taken.
"""

from __future__ import annotations

import redis.exceptions

from backend import classroom, config, frames, runtime
from backend.handlers.events import OK, caller, poster
from backend.observability import invocation, logger


def handler(event: dict, context: object) -> dict:
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
            logger.exception("redis unavailable", extra={"connectionId": who.connection_id})
            message = "the classroom service is unavailable; retry shortly"
            error = frames.error("unavailable", message, frames.client_id_of(event.get("body")))
            classroom.reply(management, who, error)
        except Exception:
            logger.exception("frame failed", extra={"connectionId": who.connection_id})
            error = frames.error(
                "internal", "internal error", frames.client_id_of(event.get("body"))
            )
            classroom.reply(management, who, error)
        return OK
