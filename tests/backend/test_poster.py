"""Both posters behave as boto3's management API client does, against a real HTTP endpoint."""

from __future__ import annotations

import datetime

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from backend.fanout import deliver
from backend.poster import (
    Boto3Poster,
    Gone,
    LeanPoster,
    PostFailed,
    SigV4Signer,
    Throttled,
    endpoint_for,
)
from tests.backend.conftest import load_event


@pytest.mark.parametrize("token", [None, "session-token"])
@pytest.mark.parametrize("connection_id", ["L0SM9cOFvHcCIhw=", "abc~_-", "a/b+c="])
def test_lean_signature_matches_botocore(token, connection_id):
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    poster = LeanPoster(
        "https://abcdef1234.execute-api.eu-west-1.amazonaws.com/prod",
        "eu-west-1",
        credentials=credentials,
    )
    url = poster._url(connection_id)
    body = b'{"event":"pong","ts":1}'
    request = AWSRequest(method="POST", url=url, data=body)
    SigV4Auth(credentials, "execute-api", "eu-west-1").add_auth(request)
    when = datetime.datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.UTC
    )
    ours = poster.signer.headers("POST", url, body, now=when)
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]
    assert ours.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")


def test_signing_key_is_cached_per_day():
    signer = SigV4Signer("us-east-1", credentials=Credentials("AK", "SK"))
    day = datetime.datetime(2026, 11, 29, tzinfo=datetime.UTC)
    signer.headers("POST", "https://h/prod/@connections/x", b"", now=day)
    key = signer._key
    signer.headers(
        "POST", "https://h/prod/@connections/y", b"", now=day + datetime.timedelta(hours=3)
    )
    assert signer._key is key
    signer.headers(
        "POST", "https://h/prod/@connections/y", b"", now=day + datetime.timedelta(days=1)
    )
    assert signer._key is not key


def test_endpoint_comes_from_the_event_unless_overridden():
    event = load_event("message")
    assert endpoint_for(event) == "https://abcdef1234.execute-api.us-east-1.amazonaws.com/prod"
    assert endpoint_for(event, "http://127.0.0.1:9/local/") == "http://127.0.0.1:9/local"


@pytest.fixture(params=["lean", "boto3"])
def poster(request, management, aws_environment):
    kind = LeanPoster if request.param == "lean" else Boto3Poster
    return kind(management.url, "us-east-1", concurrency=8)


def test_post_delivers_the_bytes(poster, management):
    poster.post("L0SM9cOFvHcCIhw=", b'{"event":"pong","ts":5}')
    assert management.frames("L0SM9cOFvHcCIhw=") == [{"event": "pong", "ts": 5}]


def test_gone_connection_raises_gone(poster, management):
    management.gone.add("C1")
    with pytest.raises(Gone):
        poster.post("C1", b"{}")


def test_throttling_raises_throttled(poster, management):
    management.throttle["C1"] = 1
    with pytest.raises(Throttled):
        poster.post("C1", b"{}")


def test_server_error_raises_post_failed(poster, management):
    management.fail.add("C1")
    with pytest.raises(PostFailed):
        poster.post("C1", b"{}")


def test_unreachable_endpoint_raises_post_failed(aws_environment):
    for kind in (LeanPoster, Boto3Poster):
        with pytest.raises(PostFailed):
            kind("http://127.0.0.1:1/prod", "us-east-1").post("C1", b"{}")


def test_delete_and_get(poster, management):
    found = poster.get("C2")
    assert found["Identity"] == {"SourceIp": "203.0.113.7", "UserAgent": "test"}
    assert found["ConnectedAt"] == datetime.datetime(2026, 11, 29, 21, 5, 18, tzinfo=datetime.UTC)
    assert found["LastActiveAt"].second == 19
    poster.delete("C2")
    assert management.deleted == ["C2"]
    with pytest.raises(Gone):
        poster.get("C2")


def test_fan_out_reports_each_outcome(poster, management):
    management.gone.add("gone-1")
    management.fail.add("broken-1")
    management.throttle["slow-1"] = 2
    targets = [f"ok-{n}" for n in range(20)] + ["gone-1", "broken-1", "slow-1"]
    result = deliver(poster, targets, '{"event":"x"}', concurrency=8)
    assert result.delivered == 21
    assert result.gone == ["gone-1"]
    assert list(result.failed) == ["broken-1"]
    assert result.throttled_retries == 2
    assert all(management.frames(t) == [{"event": "x"}] for t in targets if t.startswith("ok-"))
