"""SigV4 verification against what real signers send: boto3's management client and the
backend's ``LeanPoster``, captured by a recording HTTP server, then verified or tampered with."""

from __future__ import annotations

import dataclasses
import datetime
import http.server
import json
import threading
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.credentials import Credentials

from backend.poster import LeanPoster
from desktop.sandbox import iam

KEYS = Credentials("AKIDSANDBOX", "sandbox-secret-key")
REGION = "eu-west-1"
# API Gateway's ids are base64: they end in '=' and may hold '+' and '/'.
CONNECTION_IDS = ["Lk3FjP0aIAMCJgw=", "ab+/Cd-_eF12gh3=", "plain"]


@dataclasses.dataclass
class Received:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def url(self) -> str:
        return f"http://{dict((k.lower(), v) for k, v in self.headers)['host']}{self.target}"


class Recorder(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Record)
        self.received: list[Received] = []


class _Record(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.received.append(
            Received(self.command, self.path, list(self.headers.items()), body)
        )
        reply = b"{}" if self.command != "GET" else json.dumps({"identity": {}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def endpoint(recorder: Recorder) -> str:
    recorder.received.clear()
    return f"http://127.0.0.1:{recorder.server_address[1]}/local"


def boto3_client(endpoint: str, keys: Credentials = KEYS, region: str = REGION):
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=keys.access_key,
        aws_secret_access_key=keys.secret_key,
        aws_session_token=keys.token,
        config=Config(retries={"total_max_attempts": 1}),
    )


def sent_by_boto3(recorder, endpoint, connection_id="Lk3FjP0aIAMCJgw=", **client) -> Received:
    boto3_client(endpoint, **client).post_to_connection(ConnectionId=connection_id, Data=b"hi")
    return recorder.received[-1]


def check(received: Received, keys: Credentials = KEYS, region: str = REGION, **options) -> None:
    iam.verify(
        received.method, received.url(), received.headers, received.body, keys, region, **options
    )


def refused(received: Received, error_type: str, **options) -> iam.Forbidden:
    with pytest.raises(iam.Forbidden) as caught:
        check(received, **options)
    assert caught.value.error_type == error_type
    return caught.value


@pytest.mark.parametrize("connection_id", CONNECTION_IDS)
def test_boto3_requests_verify(recorder, endpoint, connection_id):
    client = boto3_client(endpoint)
    client.post_to_connection(ConnectionId=connection_id, Data=b'{"a": 1}')
    client.get_connection(ConnectionId=connection_id)
    client.delete_connection(ConnectionId=connection_id)
    assert [r.method for r in recorder.received] == ["POST", "GET", "DELETE"]
    if connection_id.endswith("="):
        assert recorder.received[0].target.endswith("%3D")  # the encoded path is what is signed
    for received in recorder.received:
        check(received)


def test_boto3_with_a_session_token_verifies(recorder, endpoint):
    keys = Credentials("ASIATEMP", "temporary-secret", "session-token-value")
    received = sent_by_boto3(recorder, endpoint, keys=keys)
    check(received, keys=keys)
    refused(received, "UnrecognizedClientException", keys=Credentials("ASIATEMP", "x", "other"))


@pytest.mark.parametrize("connection_id", CONNECTION_IDS)
def test_lean_poster_requests_verify(recorder, endpoint, connection_id):
    poster = LeanPoster(endpoint, REGION, credentials=KEYS)
    try:
        poster.post(connection_id, b"frame")
        poster.get(connection_id)
        poster.delete(connection_id)
        assert (
            poster.post_many([(connection_id, b"x"), (connection_id + "b", b"x")], 2) == [None] * 2
        )
    finally:
        poster.close()
    assert len(recorder.received) == 5
    for received in recorder.received:
        check(received)


def test_unsigned_request_is_refused(recorder, endpoint):
    received = sent_by_boto3(recorder, endpoint)
    received.headers = [(k, v) for k, v in received.headers if k.lower() != "authorization"]
    assert refused(received, "MissingAuthenticationTokenException").message == (
        "Missing Authentication Token"
    )


def test_other_keys_are_refused(recorder, endpoint):
    received = sent_by_boto3(recorder, endpoint, keys=Credentials(KEYS.access_key, "guessed"))
    refused(received, "InvalidSignatureException")
    received = sent_by_boto3(recorder, endpoint, keys=Credentials("AKIDOTHER", KEYS.secret_key))
    refused(received, "UnrecognizedClientException")


def test_tampered_body_path_or_header_is_refused(recorder, endpoint):
    received = sent_by_boto3(recorder, endpoint)
    refused(dataclasses.replace(received, body=b"ho"), "InvalidSignatureException")
    other = received.target.replace("Lk3F", "Lk3G")
    refused(dataclasses.replace(received, target=other), "InvalidSignatureException")
    refused(dataclasses.replace(received, method="DELETE"), "InvalidSignatureException")
    moved = [(k, "127.0.0.1:1" if k.lower() == "host" else v) for k, v in received.headers]
    refused(dataclasses.replace(received, headers=moved), "InvalidSignatureException")


def test_wrong_region_or_service_is_refused(recorder, endpoint):
    received = sent_by_boto3(recorder, endpoint, region="us-east-1")
    assert "region" in refused(received, "InvalidSignatureException").message
    received = sent_by_boto3(recorder, endpoint)
    assert "service" in refused(received, "InvalidSignatureException", service="s3").message


def test_dates_beyond_five_minutes_are_refused(recorder, endpoint):
    received = sent_by_boto3(recorder, endpoint)
    stamp = dict((k.lower(), v) for k, v in received.headers)["x-amz-date"]
    signed_at = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    check(received, now=signed_at + datetime.timedelta(minutes=4, seconds=59))
    check(received, now=signed_at - datetime.timedelta(minutes=4, seconds=59))
    for minutes in (6, -6):
        later = signed_at + datetime.timedelta(minutes=minutes)
        assert "5 min" in refused(received, "InvalidSignatureException", now=later).message


def test_malformed_or_ambiguous_headers_are_refused(recorder, endpoint):
    received = sent_by_boto3(recorder, endpoint)
    authorization = dict((k.lower(), v) for k, v in received.headers)["authorization"]
    twice = [*received.headers, ("Authorization", authorization)]
    refused(dataclasses.replace(received, headers=twice), "IncompleteSignatureException")
    garbled = [
        (k, "AWS4-HMAC-SHA256 Signature=00" if k.lower() == "authorization" else v)
        for k, v in received.headers
    ]
    refused(dataclasses.replace(received, headers=garbled), "IncompleteSignatureException")
    unsigned_payload = [*received.headers, ("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD")]
    refused(dataclasses.replace(received, headers=unsigned_payload), "InvalidSignatureException")
    # A header added after signing, and claimed as signed, changes the signature.
    claimed = [
        (k, v.replace("SignedHeaders=", "SignedHeaders=a;") if k.lower() == "authorization" else v)
        for k, v in received.headers
    ]
    refused(
        dataclasses.replace(received, headers=[*claimed, ("a", "1")]), "InvalidSignatureException"
    )


def test_aiohttp_style_multidict_headers_verify(recorder, endpoint):
    from multidict import CIMultiDict

    received = sent_by_boto3(recorder, endpoint)
    headers = CIMultiDict(received.headers)
    iam.verify("POST", received.url(), headers, received.body, KEYS, REGION)


@pytest.mark.parametrize(
    "stamp",
    [
        "",
        "20241301T000000Z",
        "2024-01-01T00:00:00Z",
        "20240131T235959Z\n",
        "\uff12\uff10\uff12\uff14\uff10\uff11\uff13\uff11T235959Z",  # fullwidth digits
    ],
)
def test_unreadable_dates_are_refused(recorder, endpoint, stamp):
    received = sent_by_boto3(recorder, endpoint)
    dated = [(k, stamp if k.lower() == "x-amz-date" else v) for k, v in received.headers]
    refused(dataclasses.replace(received, headers=dated), "IncompleteSignatureException")


def test_undecodable_header_bytes_are_refused_not_an_error(recorder, endpoint):
    received = sent_by_boto3(recorder, endpoint)
    odd = [
        (k, v.replace("AKIDSANDBOX", "AKID\udcffX") if k.lower() == "authorization" else v)
        for k, v in received.headers
    ]
    refused(dataclasses.replace(received, headers=odd), "UnrecognizedClientException")
    odd = [*received.headers, ("X-Amz-Security-Token", "\udcff")]
    refused(dataclasses.replace(received, headers=odd), "UnrecognizedClientException")
