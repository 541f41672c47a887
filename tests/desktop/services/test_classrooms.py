"""The Classrooms service: over the sandbox, a refresh that reads again only what changed;
over an AWS environment: the stack's admin function through Lambda
Invoke (a local endpoint speaking Lambda's API; moto cannot run the function without Docker),
every change signed with the caller's IAM identity from STS (moto's server)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from desktop.sandbox.gateway import Sandbox, SandboxConfig
from desktop.services import aws, classrooms
from desktop.services.admin import AdminClient, SandboxTransport
from desktop.services.aws import AwsTarget
from tests.desktop.services.conftest import FUNCTION
from tests.sandbox.conftest import ADMIN_KEY, SECRET, ClassroomSocket


def test_an_aws_environment_audits_changes_under_the_callers_iam_identity(
    lambda_endpoint,
    moto_endpoint,
):
    def answer(name, payload):
        if payload["op"] == "kick":
            return 200, {}, {"ok": True, "connectionId": payload["connectionId"], "kicked": True}
        return 200, {}, {"ok": True, "room": payload["room"], "closed": 2}

    endpoint, _ = lambda_endpoint(answer)
    identity = aws.caller_identity(AwsTarget(region="eu-west-1", endpoint_url=moto_endpoint))
    asked = []
    deployment = SimpleNamespace(  # a DeployEngine's outputs, identity and target
        target=AwsTarget(region="eu-west-1", endpoint_url=endpoint.url),
        outputs=lambda: asked.append("outputs") or {"AdminFunctionName": FUNCTION},
        identity=identity,
    )
    service = classrooms.for_deployment(deployment)
    assert asked == []  # nothing is asked of AWS until the first call (off the GUI thread)
    assert service.disconnect("C1") is True
    assert service.close("physics-101") == 2
    assert asked == ["outputs"]
    kick, close = (request["payload"] for request in endpoint.requests)
    assert kick == {"op": "kick", "connectionId": "C1", "staff": identity.arn}
    assert close == {"op": "close_room", "room": "physics-101", "staff": identity.arn}
    assert {request["function"] for request in endpoint.requests} == {FUNCTION}


def test_check_all_is_paced_and_stops_when_asked(lambda_endpoint):
    def answer(name, payload):
        return (
            200,
            {},
            {
                "ok": True,
                "room": payload["room"],
                "members": 1,
                "checked": 1,
                "ghosts": [],
                "failures": [],
            },
        )

    endpoint, client = lambda_endpoint(answer)
    service = classrooms.Classrooms(client)
    now = [0.0]
    abort = threading.Event()
    waits = []
    abort.wait = lambda seconds: waits.append(round(seconds, 3)) or False  # the pace, unslept
    results = list(
        service.check_all(["a", "b", "c"], abort=abort, per_second=4, clock=lambda: now[0])
    )
    assert [r.room for r in results] == ["a", "b", "c"]
    assert waits == [0.25, 0.25, 0.25]
    abort.set()
    assert list(service.check_all(["a", "b"], abort=abort)) == []
    assert len(endpoint.requests) == 3


class Recorded:
    """The sandbox's real transport, keeping each request and answer for the test to read."""

    def __init__(self, transport) -> None:
        self.transport = transport
        self.exchanges: list[tuple[dict, dict]] = []

    def call(self, request: dict) -> dict:
        answer = self.transport.call(request)
        self.exchanges.append((request, answer))
        return answer


def test_a_refresh_reads_again_only_the_classrooms_that_changed():
    sandbox = Sandbox(SandboxConfig(port=0, token_secret=SECRET, admin_key=ADMIN_KEY))
    sandbox.start()
    members = []
    try:
        members = [ClassroomSocket(sandbox, f"walk-{n}", f"student-{n}") for n in range(5)]
        recorded = Recorded(SandboxTransport(sandbox.admin_url, ADMIN_KEY))
        service = classrooms.Classrooms(AdminClient(recorded), first_page=2, page=2)
        first = [row for page in service.walk() for row in page.classrooms]
        assert sorted(row.room for row in first) == [f"walk-{n}" for n in range(5)]
        assert all("known" not in request for request, _ in recorded.exchanges)

        members.append(ClassroomSocket(sandbox, "walk-3", "late-student"))
        members[-1].ping()
        recorded.exchanges.clear()
        again = {
            row.room: row
            for page in service.walk(known={r.room: r for r in first})
            for row in page.classrooms
        }
        unchanged = {
            entry["room"]
            for _, answer in recorded.exchanges
            for entry in answer["rooms"]
            if entry.get("unchanged")
        }
        assert unchanged == {f"walk-{n}" for n in (0, 1, 2, 4)}
        # Each page sends the versions of the rooms its cursor listed last time, once each.
        sent = [room for request, _ in recorded.exchanges for room in request.get("known", {})]
        assert sorted(sent) == [f"walk-{n}" for n in range(5)]
        # Unchanged rooms keep the counts the console had; the changed one is read again.
        assert [again[f"walk-{n}"].students for n in range(5)] == [1, 1, 1, 2, 1]
    finally:
        for member in members:
            member.close()
        sandbox.stop()
