"""The sandbox's local surface, probed as a hostile local program or web page would: the
console endpoints' key, Host, Origin and media type; SigV4 on ``@connections``; what reaches the
logs; requests that never finish; frames and bodies nested too deep."""

from __future__ import annotations

import json
import logging
import socket

import boto3
import pytest
import websocket
from botocore.config import Config
from botocore.credentials import Credentials

from backend.poster import LeanPoster
from desktop.sandbox.gateway import Sandbox, SandboxConfig
from tests.sandbox.conftest import (
    ADMIN_KEY,
    SECRET,
    ClassroomSocket,
    admin,
    console_request,
    mint,
)


@pytest.fixture(scope="module")
def sandbox_config(redis_server: str) -> SandboxConfig:
    return SandboxConfig(
        port=0, redis_url=redis_server, token_secret=SECRET, admin_key=ADMIN_KEY, header_timeout=1.0
    )


ROOMS = {"op": "rooms"}


@pytest.mark.parametrize(
    ("headers", "status", "sentence"),
    [
        ({"Authorization": ""}, 401, "need the sandbox's admin key"),
        ({"Authorization": "Bearer not-the-key"}, 401, "is not this sandbox's"),
        ({"Origin": "https://evil.example"}, 403, "refuse requests from web pages"),
        ({"Host": "evil.example:8765"}, 403, "does not name this sandbox"),
        ({"Content-Type": "text/plain"}, 415, "take JSON"),
    ],
)
def test_the_admin_endpoint_refuses_what_a_page_or_another_program_sends(
    sandbox, headers, status, sentence
):
    answered, answer = admin(sandbox, ROOMS, headers)
    assert answered == status and sentence in answer["message"], answer
    assert admin(sandbox, ROOMS)[0] == 200  # and the console's own request passes


def test_the_metrics_endpoint_wants_the_key_too(sandbox):
    status, answer = console_request(sandbox, sandbox.metrics_url, headers={"Authorization": ""})
    assert status == 401 and answer["ok"] is False
    assert console_request(sandbox, sandbox.metrics_url)[0] == 200


def test_an_admin_body_nested_too_deep_is_a_bad_request(sandbox):
    status, answer = admin(sandbox, b"[" * 5000 + b"]" * 5000)
    assert status == 400 and answer["error"] == "bad_json"


def management_client(sandbox: Sandbox, credentials: Credentials):
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=sandbox.endpoint_url,
        region_name=sandbox.region,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        config=Config(retries={"total_max_attempts": 1}),
    )


def connection_id(sandbox: Sandbox, room: str, user: str) -> str:
    status, answer = admin(sandbox, {"op": "members", "room": room})
    assert status == 200, answer
    return next(m["connectionId"] for m in answer["members"] if m["userId"] == user)


def test_connections_wants_the_sandboxs_own_signature(classroom, sandbox, room):
    member = classroom("teacher-1", "teacher")
    member.request({"action": "ping"}, "pong")
    target = connection_id(sandbox, room, "teacher-1")
    forger = management_client(sandbox, Credentials("AKIAOTHERKEYS", "other-secret"))
    with pytest.raises(forger.exceptions.ForbiddenException):
        forger.post_to_connection(ConnectionId=target, Data=b'{"event":"message","forged":1}')
    unsigned = socket.create_connection(("127.0.0.1", sandbox.port), timeout=5)
    with unsigned:
        unsigned.sendall(
            f"POST /local/@connections/{target} HTTP/1.1\r\nHost: 127.0.0.1:{sandbox.port}\r\n"
            "Content-Length: 2\r\nConnection: close\r\n\r\n{}".encode()
        )
        assert unsigned.recv(65536).startswith(b"HTTP/1.1 403 ")

    # Signed with the sandbox's keys, by boto3 and by the backend's lean poster: delivered.
    management_client(sandbox, sandbox.management_credentials).post_to_connection(
        ConnectionId=target, Data=b'{"event":"boto3"}'
    )
    assert member.receive() == {"event": "boto3"}
    poster = LeanPoster(
        sandbox.endpoint_url, sandbox.region, credentials=sandbox.management_credentials
    )
    try:
        assert poster.post_many([(target, b'{"event":"lean"}')], 4) == [None]
        assert member.receive() == {"event": "lean"}
        assert poster.get(target)["Identity"]["SourceIp"] == "127.0.0.1"
    finally:
        poster.close()
    assert member.request({"action": "ping"}, "pong")  # and no forged frame came before


def test_a_frame_nested_too_deep_gets_an_error_frame(classroom):
    member = classroom("student-1")
    member.send_raw('{"action": "send", "type": "x", "data": ' + "[" * 1500 + "]" * 1500 + "}")
    answer = member.receive()
    assert answer.get("event") == "error" or answer.get("message") == "Internal server error"
    assert member.request({"action": "ping"}, "pong")


def test_a_request_that_never_finishes_its_head_is_cut(sandbox):
    stalled = socket.create_connection(("127.0.0.1", sandbox.port), timeout=10)
    with stalled:
        stalled.sendall(b"GET /local?room=r HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no blank line
        assert stalled.recv(65536) == b""  # closed by the sandbox after its header timeout
    idle = socket.create_connection(("127.0.0.1", sandbox.port), timeout=10)
    with idle:
        assert idle.recv(65536) == b""  # a connection that sends nothing is cut as well


def test_no_token_or_key_reaches_a_log_line_of_a_hostile_session(sandbox, room, caplog):
    token = mint("mallory", rooms=[room])
    caplog.set_level(logging.DEBUG)
    # A token offered as a WebSocket subprotocol (as browsers must carry it): the sandbox, as
    # API Gateway without a subprotocol in $connect's answer, picks none, and the client gives up.
    with pytest.raises(websocket.WebSocketException):
        websocket.create_connection(
            f"{sandbox.websocket_url}?room={room}&token={token}",
            subprotocols=[token, "chat"],
            timeout=5,
        )
    # A URL over aiohttp's line limit, with the token in it.
    with socket.create_connection(("127.0.0.1", sandbox.port), timeout=5) as long_line:
        long_line.sendall(
            f"GET /local?token={token}&pad={'x' * 9000} HTTP/1.1\r\nHost: h\r\n\r\n".encode()
        )
        long_line.recv(65536)
    # An admin key in an over-long header, and one in a malformed one.
    for head in (
        f"POST /_admin HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {ADMIN_KEY}{'x' * 9000}\r\n",
        f"POST /_admin HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {ADMIN_KEY}\x01\r\n",
    ):
        with socket.create_connection(("127.0.0.1", sandbox.port), timeout=5) as bad:
            bad.sendall((head + "\r\n").encode())
            bad.recv(65536)
    # A refused handshake with a forged token, and a wrong admin key.
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(
            f"{sandbox.websocket_url}?room={room}&token={token}x", timeout=5
        )
    admin(sandbox, ROOMS, {"Authorization": f"Bearer {ADMIN_KEY}-guess"})
    member = ClassroomSocket(sandbox, room, "alice")
    member.request({"action": "ping"}, "pong")
    member.close()

    lines = [caplog.handler.format(record) for record in caplog.records]
    assert lines, "the hostile session logged nothing at all: the capture is not working"
    text = "\n".join(lines)
    for secret in (token, token[:40], SECRET, ADMIN_KEY, sandbox.management_credentials.secret_key):
        assert secret not in text
    assert json.dumps(token) not in text
