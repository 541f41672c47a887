"""The admin client over its two transports: the sandbox's /_admin on a real sandbox with real
classroom clients, and Lambda Invoke against a local endpoint that speaks Lambda's API."""

from __future__ import annotations

import socket

import pytest

from desktop.sandbox.gateway import Sandbox, SandboxConfig
from desktop.services import admin
from desktop.services.aws import AwsTarget
from desktop.services.errors import AdminError, AwsError, SandboxError
from tests.desktop.services.conftest import FUNCTION
from tests.desktop.services.lambda_endpoint import service_error
from tests.sandbox.conftest import ADMIN_KEY, SECRET, ClassroomSocket


@pytest.fixture(scope="module")
def sandbox(redis_server):
    running = Sandbox(
        SandboxConfig(port=0, redis_url=redis_server, token_secret=SECRET, admin_key=ADMIN_KEY)
    )
    running.start()
    yield running
    running.stop()


def sandbox_client(sandbox: Sandbox, key: str = ADMIN_KEY) -> admin.AdminClient:
    return admin.AdminClient(admin.SandboxTransport(sandbox.admin_url, key))


def test_the_sandbox_transport_sees_the_classroom_and_acts_on_it(sandbox):
    teacher = ClassroomSocket(sandbox, "admin-room", "ms-lee", "teacher")
    student = ClassroomSocket(sandbox, "admin-room", "sam")
    try:
        teacher.receive_event("join")
        client = sandbox_client(sandbox)
        assert "admin-room" in [r["room"] for r in client.rooms(limit=500)["rooms"]]
        members = {m["userId"]: m for m in client.members("admin-room")}
        assert set(members) == {"ms-lee", "sam"}
        assert client.user_rooms("sam") == [
            {"room": "admin-room", "connections": [members["sam"]["connectionId"]]}
        ]
        assert client.check_connections("admin-room")["ghosts"] == []
        assert client.kick(members["sam"]["connectionId"]) is True
        assert student.wait_closed()[0] == 1000
        assert teacher.receive_event("leave")["userId"] == "sam"
        with pytest.raises(AdminError) as refused:
            client.call("no-such-op")
        assert refused.value.code and str(refused.value).endswith(".")
    finally:
        teacher.close()
        student.close()


def test_the_sandbox_transport_says_what_is_wrong(sandbox):
    with pytest.raises(SandboxError, match="refused the console's admin key"):
        sandbox_client(sandbox, key="not-the-key").stats()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    gone = admin.AdminClient(admin.SandboxTransport(f"http://127.0.0.1:{closed}/_admin", "k"))
    with pytest.raises(SandboxError, match=f"not answering at http://127.0.0.1:{closed}/_admin"):
        gone.stats()
    assert ADMIN_KEY not in repr(admin.SandboxTransport(sandbox.admin_url, ADMIN_KEY))


def test_the_lambda_transport_invokes_the_stacks_admin_function(lambda_endpoint):
    endpoint, client = lambda_endpoint(lambda name, payload: (200, {}, {"ok": True, "rooms": 3}))
    assert client.stats() == {"ok": True, "rooms": 3}
    (request,) = endpoint.requests
    assert request["path"] == f"/2015-03-31/functions/{FUNCTION}/invocations"
    assert request["payload"] == {"op": "stats"}
    assert request["headers"].get("X-Amz-Invocation-Type") == "RequestResponse"
    assert "/eu-west-1/lambda/aws4_request" in request["headers"]["Authorization"]


@pytest.mark.parametrize(
    ("answer", "sentence"),
    [
        (
            service_error(
                403,
                "AccessDeniedException",
                "User: arn:aws:iam::123456789012:user/support is not authorized to perform: "
                f"lambda:InvokeFunction on resource: {FUNCTION}",
            ),
            f"may not invoke the admin function {FUNCTION}. Ask your AWS administrator for "
            f"lambda:InvokeFunction on {FUNCTION}",
        ),
        (
            service_error(404, "ResourceNotFoundException", f"Function not found: {FUNCTION}"),
            f"The admin function {FUNCTION} does not exist: the stack is not deployed here",
        ),
        (
            (
                200,
                {"X-Amz-Function-Error": "Unhandled"},
                {
                    "errorMessage": "Task timed out after 10.01 seconds",
                    "errorType": "Sandbox.Timedout",
                },
            ),
            f"The admin function {FUNCTION} timed out.",
        ),
        (
            (
                200,
                {"X-Amz-Function-Error": "Unhandled"},
                {
                    "errorMessage": "Error 111 connecting to redis:6379",
                    "errorType": "ConnectionError",
                    "stackTrace": ['  File "/var/task/backend/runtime.py", line 1'],
                },
            ),
            f"The admin function {FUNCTION} failed (ConnectionError: Error 111 connecting to "
            "redis:6379).",
        ),
        (
            (200, {}, {"ok": False, "error": "invalid", "message": "room is required"}),
            "room is required.",
        ),
    ],
)
def test_every_lambda_failure_is_a_sentence_without_a_traceback(lambda_endpoint, answer, sentence):
    _, client = lambda_endpoint(lambda name, payload: answer)
    with pytest.raises((AwsError, AdminError)) as refused:
        client.stats()
    assert sentence in str(refused.value)
    assert "File " not in str(refused.value) and "Traceback" not in str(refused.value)


def test_the_network_down_is_a_sentence(aws_environment):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    target = AwsTarget(region="eu-west-1", endpoint_url=f"http://127.0.0.1:{closed}")
    client = admin.AdminClient(admin.LambdaTransport(FUNCTION, target))
    with pytest.raises(AwsError, match=f"Could not reach AWS at http://127.0.0.1:{closed}"):
        client.stats()


def test_the_function_name_comes_from_the_stacks_outputs():
    assert admin.admin_function_name({"AdminFunctionName": FUNCTION}) == FUNCTION
    with pytest.raises(AwsError, match="has no admin function in its outputs"):
        admin.admin_function_name({})
