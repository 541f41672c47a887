"""REQUEST authorizer on ``$connect``: a verified token becomes an IAM policy with context.

Every failure is a Deny (API Gateway answers 403), never an exception or a 500; API Gateway
itself answers 401 when the ``token`` query parameter is missing. The token is never logged.
An answer over 8 KB would be a 500: the token's bounds on ``sub`` and ``name`` keep an Allow
well under it, and an Allow that would not fit anyway is a Deny.
"""

from __future__ import annotations

import json

from backend import config
from backend.observability import COUNT, invocation, logger, record, request_keys
from backend.tokens import Identity, TokenRejected, verify

# API Gateway's limit on an authorizer's answer; measured with non-ASCII text escaped, the
# larger of the two ways the answer can be written.
MAX_ANSWER_BYTES = 8 * 1024


def policy(effect: str, method_arn: str, principal: str, context: dict | None = None) -> dict:
    answer = {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": effect, "Resource": method_arn}
            ],
        },
    }
    if context:
        answer["context"] = context
    return answer


def authorize(event: dict, secret: str) -> dict:
    """The policy for a REQUEST authorizer event; denies with the reason logged."""
    query = event.get("queryStringParameters") or {}
    method_arn = event.get("methodArn", "")
    try:
        identity: Identity = verify(query.get("token"), query.get("room"), secret)
    except TokenRejected as reason:
        logger.info("connection denied", extra={"reason": str(reason), "room": query.get("room")})
        record("AuthorizerDenied", COUNT, 1)
        return policy("Deny", method_arn, "anonymous")
    context = {"userId": identity.user_id, "role": identity.role, "room": identity.room}
    if identity.name:
        context["name"] = identity.name
    answer = policy("Allow", method_arn, identity.user_id, context)
    size = len(json.dumps(answer).encode("utf-8"))
    if size > MAX_ANSWER_BYTES:
        logger.warning(
            "connection denied", extra={"reason": f"answer of {size} bytes", "room": identity.room}
        )
        record("AuthorizerDenied", COUNT, 1)
        return policy("Deny", method_arn, "anonymous")
    return answer


@logger.inject_lambda_context(clear_state=True, log_event=False)
def handler(event: dict, context: object) -> dict:
    logger.append_keys(**request_keys(event))
    with invocation("authorizer"):
        try:
            return authorize(event, config.settings().token_secret)
        except Exception:
            logger.exception("authorizer failed; denying")
            return policy("Deny", event.get("methodArn", ""), "anonymous")
