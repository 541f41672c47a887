"""Admin entry point, invoked directly through IAM (and by the sandbox's ``/_admin``).

The management endpoint comes from ``MANAGEMENT_ENDPOINT_URL``: no API Gateway event names it.
"""

from __future__ import annotations

import redis.exceptions

from backend import admin, config, runtime
from backend.observability import invocation, logger, request_keys


def _poster():
    endpoint = config.settings().management_endpoint_url
    if not endpoint:
        raise admin.AdminError("unavailable", "MANAGEMENT_ENDPOINT_URL is not configured")
    return runtime.poster(endpoint)


@logger.inject_lambda_context(clear_state=True, log_event=False)
def handler(event: object, context: object) -> dict:
    logger.append_keys(**request_keys(event))
    with invocation("admin"):
        try:
            return admin.handle(
                event, runtime.registry(), _poster, lambda: config.settings().token_secret
            )
        except admin.AdminError as error:
            return {"ok": False, "error": error.code, "message": error.message}
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            logger.exception("redis unavailable")
            return {
                "ok": False,
                "error": "unavailable",
                "message": f"Redis is unreachable: {error}",
            }
        except Exception as error:
            logger.exception("admin request failed")
            return {"ok": False, "error": "internal", "message": f"{type(error).__name__}: {error}"}
