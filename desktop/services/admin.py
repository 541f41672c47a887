"""One admin client for every environment, over two transports.

    AdminClient(transport)       the admin operations (docs/architecture.md, "Admin operations")
    SandboxTransport(url, key)   the local sandbox's ``POST /_admin``, with its admin key
    LambdaTransport(name, ...)   the stack's admin function through Lambda ``Invoke``; IAM is the
                                 access control, the user's AWS profile the identity

The registry lives in Redis in private subnets, so the console reaches it only through the
admin function (or, for the sandbox, its own endpoint), never over the internet. Every failure
is a ``ConsoleError`` with a sentence the user can act on: the sandbox not running, access
denied (naming ``lambda:InvokeFunction`` and the function), the stack not deployed, the function
timing out or failing (its message, never its traceback), the network down. An answer
``{"ok": false, ...}`` is an ``AdminError`` with the function's code and message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Protocol

from desktop.services import aws
from desktop.services.errors import AdminError, AwsError, ConsoleError, SandboxError

SANDBOX_TIMEOUT = 15.0
ADMIN_OUTPUT = "AdminFunctionName"


class Transport(Protocol):
    def call(self, request: dict) -> dict: ...


class AdminClient:
    """The admin operations over one transport; each returns the function's answer."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def call(self, op: str, **fields) -> dict:
        answer = self.transport.call({"op": op, **fields})
        if not isinstance(answer, dict):
            raise AdminError(
                "internal", "The admin function answered something that is not an object"
            )
        if answer.get("ok") is False:
            raise AdminError(str(answer.get("error", "internal")), str(answer.get("message", "")))
        return answer

    def rooms(
        self, cursor: str | None = None, limit: int = 50, known: dict[str, str] | None = None
    ) -> dict:
        """A page of classrooms; the rooms whose version is still the one in ``known``
        (room -> version, from an earlier page) come back ``unchanged``, without members."""
        if known:
            return self.call("rooms", cursor=cursor, limit=limit, known=known)
        return self.call("rooms", cursor=cursor, limit=limit)

    def members(self, room: str) -> list[dict]:
        return self.call("members", room=room)["members"]

    def user_rooms(self, user_id: str) -> list[dict]:
        """The classrooms a user is in: ``[{room, connections}]``."""
        return self.call("user_rooms", userId=user_id)["rooms"]

    def check_connections(self, room: str, prune: bool = False) -> dict:
        """The room's ghosts (registered, gone at the gateway), removed too with ``prune``."""
        return self.call("check_connections", room=room, prune=prune)

    def history(self, room: str, since: int = 0) -> dict:
        return self.call("history", room=room, since=since)

    def kick(self, connection_id: str) -> bool:
        return bool(self.call("kick", connectionId=connection_id)["kicked"])

    def close_room(self, room: str) -> int:
        return int(self.call("close_room", room=room)["closed"])

    def support_token(self, staff: str, room: str, ttl: int = 900) -> dict:
        return self.call("support_token", staff=staff, room=room, ttl=ttl)

    def stats(self) -> dict:
        return self.call("stats")


class SandboxTransport:
    """``POST /_admin`` on the local sandbox, as ``Authorization: Bearer <admin key>``."""

    def __init__(self, admin_url: str, admin_key: str, timeout: float = SANDBOX_TIMEOUT) -> None:
        self.admin_url = admin_url
        self._admin_key = admin_key
        self.timeout = timeout

    def __repr__(self) -> str:  # the key never reaches a log
        return f"SandboxTransport({self.admin_url!r})"

    def call(self, request: dict) -> dict:
        post = urllib.request.Request(
            self.admin_url,
            data=json.dumps(request).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {self._admin_key}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(post, timeout=self.timeout) as answer:
                return _json(answer.read(), self.admin_url)
        except urllib.error.HTTPError as error:
            with error:
                body = error.read()
            raise self._refusal(error.code, body) from None
        except (urllib.error.URLError, OSError) as error:
            if isinstance(error, TimeoutError) or isinstance(
                getattr(error, "reason", None), TimeoutError
            ):
                raise SandboxError(
                    f"The local sandbox did not answer within {self.timeout:.0f} s.",
                    hint="It may be overloaded; try again, or restart it.",
                ) from None
            raise SandboxError(
                f"The local sandbox is not answering at {self.admin_url}.",
                hint="Start it (or restart it) from Environments & Deploy.",
            ) from None

    def _refusal(self, status: int, body: bytes) -> ConsoleError:
        try:
            answer = json.loads(body)
            message = str(answer.get("message", "")) if isinstance(answer, dict) else ""
        except ValueError:
            message = ""
        if status == 401:
            return SandboxError(
                "The local sandbox refused the console's admin key.",
                hint="Restart the sandbox from the console so that both use the same key.",
            )
        if status == 429:
            return SandboxError("The local sandbox is overloaded.", hint="Try again in a moment.")
        if status == 504:
            return SandboxError("The sandbox's admin handler timed out.", hint="Try again.")
        if status >= 500:
            return AdminError("internal", f"The sandbox's admin handler failed: {message}")
        return SandboxError(f"The local sandbox refused the request ({status}): {message}")


class LambdaTransport:
    """The stack's admin function through Lambda ``Invoke`` (``RequestResponse``)."""

    def __init__(self, function_name: str, target: aws.AwsTarget, client=None) -> None:
        self.function_name = function_name
        self.target = target
        self._client = client

    def _lambda(self):
        if self._client is None:
            self._client = aws.client(self.target, "lambda")
        return self._client

    def call(self, request: dict) -> dict:
        from botocore.exceptions import ClientError

        name = self.function_name
        with aws.aws_errors(self.target):  # a ConsoleError raised inside passes as it is
            try:
                answer = self._lambda().invoke(
                    FunctionName=name,
                    InvocationType="RequestResponse",
                    Payload=json.dumps(request).encode(),
                )
                payload = answer["Payload"].read()
            except ClientError as error:
                raise self._refusal(error) from error
        failure = answer.get("FunctionError")
        if failure:
            raise _function_failure(name, payload)
        return _json(payload, f"the admin function {name}")

    def _refusal(self, error) -> ConsoleError:
        code = str(error.response.get("Error", {}).get("Code", ""))
        name = self.function_name
        profile = self.target.profile_label
        if code in aws.ACCESS_DENIED:
            return AwsError(
                f"Your AWS identity (profile {profile}) may not invoke the admin function {name}.",
                hint=f"Ask your AWS administrator for lambda:InvokeFunction on {name} "
                "(the stack's AdminFunctionArn output names it), or choose a profile that has it.",
            )
        if code == "ResourceNotFoundException":
            return AwsError(
                f"The admin function {name} does not exist: the stack is not deployed here, or "
                "was deleted.",
                hint="Deploy it from Environments & Deploy, or check the environment's region.",
            )
        if code in ("TooManyRequestsException", "ThrottlingException"):
            return AwsError(
                f"Lambda is throttling the admin function {name}.", hint="Try again in a moment."
            )
        return aws.translate(error, self.target)


def _function_failure(name: str, payload: bytes) -> ConsoleError:
    """A function error as a sentence: its type and message, never its stack trace."""
    try:
        details = json.loads(payload)
    except ValueError:
        details = {}
    details = details if isinstance(details, dict) else {}
    message = str(details.get("errorMessage", "")).strip()
    if "Task timed out" in message:
        return AwsError(
            f"The admin function {name} timed out.",
            hint="Redis may be unreachable from it; check the stack's alarms, then try again.",
        )
    kind = str(details.get("errorType", "")).strip()
    said = f"{kind}: {message}" if kind and message else message or kind or "no details"
    return AwsError(f"The admin function {name} failed ({said}).")


def _json(payload: bytes, where: str) -> dict:
    try:
        answer = json.loads(payload)
    except ValueError:
        raise AdminError("internal", f"{where} answered something that is not JSON") from None
    if not isinstance(answer, dict):
        raise AdminError("internal", f"{where} answered something that is not an object")
    return answer


def admin_function_name(outputs: dict[str, str]) -> str:
    """The admin function's name from a stack's outputs."""
    name = outputs.get(ADMIN_OUTPUT)
    if not name:
        raise AwsError(
            "This environment's stack has no admin function in its outputs: it is not deployed "
            "yet, or was deployed by an older version of the console.",
            hint="Deploy it from Environments & Deploy.",
        )
    return name
