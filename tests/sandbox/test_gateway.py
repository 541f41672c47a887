"""The gateway's API Gateway semantics: handshake refusals, @connections through boto3, failing
handlers, the admin and metrics endpoints."""

from __future__ import annotations

import datetime
import json
import time
import urllib.error
import urllib.request

import boto3
import jwt
import pytest
import websocket
from botocore.config import Config

from desktop.sandbox.gateway import Sandbox
from desktop.sandbox.websocket import route_key
from tests.sandbox import integrations
from tests.sandbox.conftest import (
    SECRET,
    USER_AGENT,
    ClassroomSocket,
    admin,
    metrics_document,
    mint,
)
from tests.waiting import eventually


def handshake_status(sandbox: Sandbox, query: str) -> int:
    """The HTTP status of a refused handshake (101 would mean it was accepted)."""
    try:
        ws = websocket.create_connection(f"{sandbox.websocket_url}?{query}", timeout=5)
    except websocket.WebSocketBadStatusException as error:
        return error.status_code
    ws.close()
    return 101


def members_of(sandbox: Sandbox, room: str) -> list[dict]:
    status, answer = admin(sandbox, {"op": "members", "room": room})
    assert status == 200 and answer["ok"], answer
    return answer["members"]


def forged(role: str, rooms: list[str], key=SECRET, algorithm: str = "HS256") -> str:
    """A token ``mint`` refuses to make: an unknown role, ``*`` for a student, ``alg: none``."""
    claims = {"sub": "eve", "role": role, "rooms": rooms, "exp": int(time.time()) + 60}
    return jwt.encode(claims, key, algorithm=algorithm)


def signed(**claims) -> str:
    """A token signed with the sandbox's secret that ``mint`` refuses to make."""
    return jwt.encode({"role": "student", "exp": int(time.time()) + 60, **claims}, SECRET)


@pytest.mark.parametrize(
    ("make_query", "status"),
    [
        (lambda room: f"room={room}", 401),
        (lambda room: f"room={room}&token=", 401),
        (
            lambda room: (
                f"room={room}&token={mint('eve', secret='another-secret-' + 'x' * 40, rooms=[room])}"
            ),
            403,
        ),
        (
            lambda room: (
                f"room={room}&token={mint('eve', rooms=[room], ttl=60, now=time.time() - 3600)}"
            ),
            403,
        ),
        (lambda room: f"room={room}&token={mint('eve', rooms=['another-room'])}", 403),
        (lambda room: f"room=bad%20room&token={mint('eve', rooms=[room])}", 403),
        (lambda room: f"room={room}&token={forged('teacher', [room], None, 'none')}", 403),
        (lambda room: f"room={room}&token={forged('principal', [room])}", 403),
        (lambda room: f"room={room}&token={forged('student', ['*'])}", 403),
        (lambda room: f"room={room}&token={mint('eve', 'student', [room])[:-2]}", 403),
        (lambda room: f"room={room}%0A&token={mint('staff', 'support', ['*'])}", 403),
        (lambda room: f"room={room}&token={signed(sub='s' * 4096, rooms=[room])}", 403),
        (lambda room: f"room={room}&token={signed(sub='eve', rooms=[room], exp='9' * 10)}", 403),
    ],
    ids=[
        "no-token",
        "empty-token",
        "bad-signature",
        "expired",
        "wrong-room",
        "malformed-room",
        "alg-none",
        "unknown-role",
        "student-star",
        "truncated",
        "room-with-a-newline",
        "sub-of-4-kb",
        "exp-a-string",
    ],
)
def test_bad_tokens_are_refused_and_nothing_is_registered(sandbox, room, make_query, status):
    assert handshake_status(sandbox, make_query(room)) == status
    assert members_of(sandbox, room) == []


def test_api_gateway_paths_it_does_not_serve(sandbox, room):
    url = sandbox.websocket_url.replace("/local", "/prod")
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"{url}?room={room}&token={mint('a', rooms=[room])}", timeout=5)
    assert refused.value.status_code == 403
    plain = sandbox.websocket_url.replace("ws://", "http://")
    with pytest.raises(urllib.error.HTTPError) as not_upgraded:
        urllib.request.urlopen(plain, timeout=5)
    assert not_upgraded.value.code == 426
    not_upgraded.value.close()


def management_client(sandbox: Sandbox):
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=sandbox.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=sandbox.management_credentials.access_key,
        aws_secret_access_key=sandbox.management_credentials.secret_key,
        config=Config(retries={"total_max_attempts": 1}),
    )


def connection_id_of(sandbox: Sandbox, room: str, user: str) -> str:
    return next(m["connectionId"] for m in members_of(sandbox, room) if m["userId"] == user)


def test_boto3_management_client_works_unchanged(classroom, sandbox, room):
    teacher = classroom("teacher-1", "teacher")
    student = classroom("student-1")
    teacher.receive_event("join")
    client = management_client(sandbox)
    connection_id = connection_id_of(sandbox, room, "student-1")
    assert connection_id.endswith("=") and len(connection_id) == 16

    client.post_to_connection(ConnectionId=connection_id, Data=b'{"event":"pong","ts":1}')
    assert student.receive() == {"event": "pong", "ts": 1}

    described = client.get_connection(ConnectionId=connection_id)
    assert described["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": USER_AGENT}
    now = datetime.datetime.now(datetime.UTC)
    assert abs((now - described["ConnectedAt"]).total_seconds()) < 60
    assert described["LastActiveAt"] >= described["ConnectedAt"] - datetime.timedelta(seconds=1)

    client.delete_connection(ConnectionId=connection_id)
    code, _ = student.wait_closed()
    assert code == 1000
    assert teacher.receive_event("leave")["userId"] == "student-1"

    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=connection_id, Data=b"{}")
    with pytest.raises(client.exceptions.GoneException):
        client.get_connection(ConnectionId=connection_id)
    with pytest.raises(client.exceptions.GoneException):
        client.delete_connection(ConnectionId=connection_id)
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId="bm90QUNvbm5lY3Q=", Data=b"{}")
    with pytest.raises(client.exceptions.PayloadTooLargeException):
        client.post_to_connection(
            ConnectionId=connection_id_of(sandbox, room, "teacher-1"), Data=b"x" * (128 * 1024 + 1)
        )


def test_a_handler_that_raises_gives_internal_server_error_and_the_gateway_goes_on(
    classroom, sandbox, room, monkeypatch
):
    teacher = classroom("teacher-1", "teacher")
    student = classroom("student-1")
    teacher.receive_event("join")
    monkeypatch.setattr(
        sandbox.integrations, "messages", integrations.reference("explode_on_request")
    )
    student.send({"action": "send", "type": "explode", "id": "boom"})
    answer = student.receive()
    assert answer["message"] == "Internal server error"
    assert answer["connectionId"] == connection_id_of(sandbox, room, "student-1")
    assert isinstance(answer["requestId"], str) and answer["requestId"]
    assert answer["id"] == "boom"  # which frame it was

    ack = student.request({"action": "send", "type": "chat.message", "id": "after"}, "ack")
    assert teacher.receive_event("message")["seq"] == ack["seq"]

    monkeypatch.setattr(sandbox.integrations, "messages", integrations.reference("returns_nothing"))
    student.send({"action": "ping"})
    answer = student.receive()
    assert answer["message"] == "Internal server error" and "id" not in answer


def test_a_failing_authorizer_or_connect_refuses_with_500_and_registers_nothing(
    sandbox, room, monkeypatch
):
    query = f"room={room}&token={mint('eve', rooms=[room])}"
    broken = integrations.reference("raises")

    monkeypatch.setattr(sandbox.integrations, "authorizer", broken)
    assert handshake_status(sandbox, query) == 500
    monkeypatch.setattr(
        sandbox.integrations, "authorizer", integrations.reference("allows_without_policy")
    )
    assert handshake_status(sandbox, query) == 500
    monkeypatch.undo()

    monkeypatch.setattr(sandbox.integrations, "connect", broken)
    assert handshake_status(sandbox, query) == 500
    monkeypatch.setattr(sandbox.integrations, "connect", integrations.reference("refuses_with_429"))
    assert handshake_status(sandbox, query) == 429
    monkeypatch.undo()
    assert members_of(sandbox, room) == []
    assert handshake_status(sandbox, query) == 101


def test_events_reach_handlers_in_api_gateway_shape(sandbox, room, monkeypatch, redis_server):
    for name in ("authorizer", "connect", "messages", "disconnect"):
        monkeypatch.setattr(sandbox.integrations, name, integrations.reference(f"spy_{name}"))
    member = ClassroomSocket(sandbox, room, "student-1")
    member.request({"action": "ping"}, "pong")
    member.close()
    seen = {}
    for name in ("authorizer", "connect", "messages", "disconnect"):
        (record,) = eventually(
            lambda name=name: integrations.recorded(redis_server, f"{room}:{name}")
        )
        assert record["remaining_ms"] > 0
        assert record["invoked_function_arn"].endswith(f":function:{record['function_name']}")
        seen[name] = record["event"]

    authorizer = seen["authorizer"]
    assert authorizer["type"] == "REQUEST"
    assert authorizer["methodArn"].startswith("arn:aws:execute-api:")
    assert authorizer["methodArn"].endswith("/local/$connect")
    assert authorizer["queryStringParameters"]["room"] == room
    assert authorizer["multiValueQueryStringParameters"]["room"] == [room]
    assert authorizer["requestContext"]["eventType"] == "CONNECT"
    connect = seen["connect"]["requestContext"]
    assert connect["routeKey"] == "$connect"
    assert connect["authorizer"]["userId"] == "student-1"
    assert connect["authorizer"]["principalId"] == "student-1"
    assert connect["identity"] == {"sourceIp": "127.0.0.1", "userAgent": USER_AGENT}
    message = seen["messages"]
    assert message["requestContext"]["routeKey"] == "ping"
    assert message["requestContext"]["eventType"] == "MESSAGE"
    assert message["requestContext"]["messageDirection"] == "IN"
    assert message["isBase64Encoded"] is False
    assert json.loads(message["body"]) == {"action": "ping"}
    disconnect = seen["disconnect"]["requestContext"]
    assert disconnect["eventType"] == "DISCONNECT"
    assert disconnect["disconnectStatusCode"] == 1000
    assert (
        disconnect["connectionId"]
        == connect["connectionId"]
        == message["requestContext"]["connectionId"]
    )


def test_route_selection_follows_the_action():
    assert route_key('{"action": "send", "id": "m1"}') == ("send", "m1")
    assert route_key('{"action": "who", "x": 1}') == ("who", None)
    assert route_key('{"action": "dance", "id": 7}') == ("$default", None)
    assert route_key('{"action": ["send"]}') == ("$default", None)
    assert route_key("[1]") == ("$default", None)
    assert route_key("not json") == ("$default", None)
    assert route_key("[" * 5000 + "]" * 5000) == ("$default", None)


def test_admin_endpoint_runs_the_admin_handler(classroom, sandbox, room):
    teacher = classroom("teacher-1", "teacher")
    student = classroom("student-1")
    teacher.receive_event("join")
    status, answer = admin(sandbox, {"op": "rooms", "limit": 500})
    assert status == 200 and answer["ok"]
    assert room in [r["room"] for r in answer["rooms"]]
    status, answer = admin(
        sandbox, {"op": "kick", "connectionId": connection_id_of(sandbox, room, "student-1")}
    )
    assert status == 200 and answer["ok"] and answer["kicked"]
    assert student.wait_closed()[0] == 1000
    assert teacher.receive_event("leave")["userId"] == "student-1"
    status, answer = admin(sandbox, b"{not json")
    assert status == 400 and answer["error"] == "bad_json"
    status, answer = admin(sandbox, {"op": "no-such-op"})
    assert status == 200 and answer["ok"] is False


def test_metrics_endpoint_serves_per_minute_api_gateway_and_handler_metrics(classroom, sandbox):
    teacher = classroom("teacher-1", "teacher")
    teacher.request({"action": "ping"}, "pong")
    handshake_status(sandbox, "room=x")
    document = metrics_document(sandbox)
    assert document["namespace"] == "AWS/ApiGateway" and document["period"] == 60
    series = {m["name"]: m for m in document["metrics"]}
    for name, unit in [
        ("ConnectCount", "Count"),
        ("MessageCount", "Count"),
        ("ClientError", "Count"),
        ("IntegrationError", "Count"),
        ("ExecutionError", "Count"),
        ("IntegrationLatency", "Milliseconds"),
    ]:
        assert series[name]["unit"] == unit
    assert series["ConnectCount"]["points"][-1]["sum"] >= 1
    assert series["ClientError"]["points"][-1]["sum"] >= 1
    point = series["IntegrationLatency"]["points"][-1]
    assert point["timestamp"] % 60 == 0 and point["min"] <= point["max"]
    assert series["HandlerDuration"]["unit"] == "Milliseconds"


def test_a_connection_is_unknown_to_the_management_api_until_its_connect_returns(
    sandbox, room, monkeypatch, redis_server
):
    monkeypatch.setattr(sandbox.integrations, "connect", integrations.reference("posts_to_itself"))
    member = ClassroomSocket(sandbox, room, "student-1")
    try:
        assert integrations.recorded(redis_server, f"{room}:self-post") == [{"answer": "gone"}]
        assert member.request({"action": "ping"}, "pong")  # and nothing arrived before it
    finally:
        member.close()
