"""The handlers' logs as Powertools writes them: the Lambda context and the request's keys on
every line, and nothing of one invocation left on the next one's lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from backend.handlers import admin, authorizer, connect, disconnect, messages
from backend.observability import logger, request_keys
from desktop.sandbox import events as sandbox_events
from tests.backend.conftest import LambdaContext, load_event, token

ROOM = "physics-101"


class Lines:
    """What the Powertools logger wrote, one JSON object per line."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def all(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]

    def named(self, message: str) -> list[dict]:
        return [line for line in self.all() if line["message"] == message]

    def clear(self) -> None:
        self.stream.seek(0)
        self.stream.truncate()


@pytest.fixture
def logged() -> Iterator[Lines]:
    """Every line the backend's logger writes, at INFO, with Powertools' own JSON formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    level = logger.log_level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield Lines(stream)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def joining(connection_id: str, user_id: str, room: str = ROOM) -> dict:
    return load_event(
        "connect",
        connectionId=connection_id,
        requestId=f"req-{connection_id}",
        authorizer={"userId": user_id, "role": "student", "room": room, "principalId": user_id},
    )


@pytest.mark.parametrize(
    "context",
    [
        LambdaContext(aws_request_id="lambda-request-1"),
        # What the sandbox's workers hand the handlers (pickled across the process boundary).
        sandbox_events.LambdaContext("classroom-connect", "us-east-1"),
    ],
    ids=["lambda", "sandbox"],
)
def test_connect_lines_carry_the_lambda_context_and_the_request_keys(backend_env, logged, context):
    assert connect.handler(joining("C1", "student-1"), context) == {"statusCode": 200}
    (line,) = logged.named("connected")
    assert line["function_request_id"] == context.aws_request_id
    assert line["function_name"] == context.function_name
    assert line["function_arn"] == context.invoked_function_arn
    assert line["function_memory_size"] == context.memory_limit_in_mb
    assert "cold_start" in line
    assert line["connectionId"] == "C1"
    assert line["room"] == ROOM
    assert line["route"] == "$connect"
    assert line["requestId"] == "req-C1"
    assert line["userId"] == "student-1"
    assert line["role"] == "student"


def test_keys_of_one_invocation_do_not_leak_into_the_next(backend_env, logged):
    connect.handler(joining("C1", "student-1"), LambdaContext(aws_request_id="first"))
    logged.clear()
    # No authorizer context: the handler refuses it and logs why, with this request's keys only.
    stranger = load_event("connect", connectionId="C2", requestId="req-C2", authorizer={})
    stranger["queryStringParameters"] = None  # else the room asked for is this request's key
    assert connect.handler(stranger, LambdaContext(aws_request_id="second")) == {"statusCode": 403}
    (line,) = logged.named("connect without authorizer context")
    assert line["function_request_id"] == "second"
    assert line["connectionId"] == "C2"
    assert line["requestId"] == "req-C2"
    assert "room" not in line and "userId" not in line and "role" not in line


def test_every_entry_point_logs_its_route_and_request(backend_env, logged, monkeypatch):
    connect.handler(joining("C1", "student-1"), LambdaContext(aws_request_id="r-connect"))
    broken = load_event(
        "message",
        connectionId="C1",
        routeKey="send",
        body='{"action":"send","text":"hi"}',
        authorizer={"userId": "student-1", "role": "student", "room": ROOM},
    )
    monkeypatch.setattr(
        "backend.classroom.handle_frame", lambda *args, **kwargs: 1 / 0
    )  # an unexpected failure, which the handler logs and answers as an error frame
    messages.handler(broken, LambdaContext(aws_request_id="r-send"))
    (line,) = logged.named("frame failed")
    assert (line["function_request_id"], line["route"], line["connectionId"], line["room"]) == (
        "r-send",
        "send",
        "C1",
        ROOM,
    )
    left = load_event(
        "disconnect",
        connectionId="C1",
        authorizer={"userId": "student-1", "role": "student", "room": ROOM},
    )
    disconnect.handler(left, LambdaContext(aws_request_id="r-disconnect"))
    (line,) = logged.named("disconnected")
    assert (line["function_request_id"], line["route"], line["connectionId"]) == (
        "r-disconnect",
        "$disconnect",
        "C1",
    )
    assert line["room"] == ROOM and "status" in line


def test_the_authorizer_logs_the_room_asked_for_never_the_token(backend_env, logged):
    signed = token(rooms=["chemistry-2"])
    event = load_event("authorizer", connectionId="C9")
    event["queryStringParameters"] = {"room": ROOM, "token": signed}
    answer = authorizer.handler(event, LambdaContext(aws_request_id="r-auth"))
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    (line,) = logged.named("connection denied")
    assert (line["function_request_id"], line["route"], line["connectionId"], line["room"]) == (
        "r-auth",
        "$connect",
        "C9",
        ROOM,
    )
    assert signed not in json.dumps(logged.all())


def test_admin_lines_name_the_operation(backend_env, logged, monkeypatch):
    monkeypatch.setattr("backend.admin.handle", lambda *args: 1 / 0)
    answer = admin.handler({"op": "members", "room": ROOM}, LambdaContext(aws_request_id="r-adm"))
    assert answer["error"] == "internal"
    (line,) = logged.named("admin request failed")
    assert (line["function_request_id"], line["route"], line["room"]) == (
        "r-adm",
        "admin:members",
        ROOM,
    )


@pytest.mark.parametrize(
    ("event", "keys"),
    [
        (None, {}),
        (["rooms"], {}),
        ({"op": "kick", "connectionId": "C1"}, {"route": "admin:kick", "connectionId": "C1"}),
        ({}, {"route": "admin"}),
        (
            {"requestContext": {"routeKey": "$default", "authorizer": "odd"}},
            {"route": "$default"},
        ),
        (
            {"queryStringParameters": {"room": "r" * 500}, "requestContext": {}},
            {"room": "r" * 128},
        ),
    ],
)
def test_request_keys_never_fail_whatever_the_event(event, keys):
    assert request_keys(event) == keys
