"""What API Gateway makes of a Lambda authorizer's answer: allow, deny, or a broken authorizer.

The authorizer returns an IAM policy; API Gateway evaluates it against the ``$connect`` method
ARN (an explicit ``Deny`` wins, no matching ``Allow`` is a deny) and refuses answers it cannot
use with HTTP 500: not an object, no ``principalId`` or policy, a ``context`` holding objects or
arrays, or more than 8 KB. The sandbox applies the same rules so an authorizer that works here
is not refused in AWS.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

MAX_RESULT_BYTES = 8 * 1024
INVOKE_ACTION = "execute-api:Invoke"


class MalformedPolicy(Exception):
    """An authorizer answer API Gateway cannot use (HTTP 500); ``str()`` says why."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    principal_id: str
    context: dict


def _patterns(value: object, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise MalformedPolicy(f"{what} must be a string or a list of strings")


def _matches(pattern: str, text: str) -> bool:
    """IAM's wildcards: ``*`` any run of characters, ``?`` one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, flags=re.DOTALL) is not None


def evaluate(answer: object, method_arn: str) -> Decision:
    """The decision for ``method_arn``, or ``MalformedPolicy`` when API Gateway would answer 500."""
    if not isinstance(answer, dict):
        raise MalformedPolicy(f"the authorizer returned {type(answer).__name__}, not an object")
    try:
        size = len(json.dumps(answer).encode("utf-8"))
    except (TypeError, ValueError) as error:
        raise MalformedPolicy(f"the authorizer's answer is not JSON ({error})") from None
    if size > MAX_RESULT_BYTES:
        raise MalformedPolicy(f"the authorizer's answer is {size} bytes; the limit is 8 KB")
    principal = answer.get("principalId")
    if not isinstance(principal, str | int | float) or isinstance(principal, bool):
        raise MalformedPolicy("principalId is missing or not a string")
    document = answer.get("policyDocument")
    if not isinstance(document, dict):
        raise MalformedPolicy("policyDocument is missing")
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise MalformedPolicy("policyDocument has no Statement")
    context = answer.get("context") or {}
    if not isinstance(context, dict):
        raise MalformedPolicy("context must be an object")
    for key, value in context.items():
        if value is not None and not isinstance(value, str | int | float | bool):
            raise MalformedPolicy(f"context value {key!r} is an object or array")

    allowed = denied = False
    for statement in statements:
        if not isinstance(statement, dict):
            raise MalformedPolicy("every Statement must be an object")
        effect = statement.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise MalformedPolicy("Effect must be Allow or Deny")
        actions = _patterns(statement.get("Action"), "Action")
        resources = _patterns(statement.get("Resource"), "Resource")
        if not any(_matches(a.lower(), INVOKE_ACTION.lower()) for a in actions):
            continue
        if not any(_matches(r, method_arn) for r in resources):
            continue
        if effect == "Deny":
            denied = True
        else:
            allowed = True
    return Decision(allowed and not denied, str(principal), dict(context))
