"""REQUEST authorizer on ``$connect``: a verified token becomes an IAM policy with context.

Every failure is a Deny (API Gateway answers 403), never an exception or a 500; API Gateway
itself answers 401 when the ``token`` query parameter is missing. The token is never logged.
"""

from __future__ import annotations

from backend import config
from backend.observability import COUNT, invocation, logger, record, request_keys
from backend.tokens import Identity, TokenRejected, verify


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
    return policy("Allow", method_arn, identity.user_id, context)


@logger.inject_lambda_context(clear_state=True, log_event=False)
def handler(event: dict, context: object) -> dict:
    logger.append_keys(**request_keys(event))
    with invocation("authorizer"):
        try:
            return authorize(event, config.settings().token_secret)
        except Exception:
            logger.exception("authorizer failed; denying")
            return policy("Deny", event.get("methodArn", ""), "anonymous")
