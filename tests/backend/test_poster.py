"""Both posters behave as boto3's management API client does, against a real HTTP endpoint."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from backend.fanout import deliver
from backend.poster import (
    BadAnswer,
    Boto3Poster,
    ConnectionFailed,
    Gone,
    LeanPoster,
    PostFailed,
    SigV4Signer,
    Throttled,
    Timeout,
    endpoint_for,
    sigv4,
)
from tests.backend.conftest import load_event
from tests.waiting import eventually


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


@pytest.mark.parametrize(
    "url", ["127.0.0.1:9/prod", "ftp://h/prod", "http:///prod", "http://h:port/prod"]
)
def test_a_malformed_endpoint_fails_each_post_not_the_handler(url):
    poster = LeanPoster(url, "us-east-1", credentials=Credentials("AK", "SK"))
    with pytest.raises(PostFailed, match="not an http"):
        poster.post("C1", b"{}")


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


def test_unreachable_endpoint_raises_connection_failed(aws_environment):
    for kind in (LeanPoster, Boto3Poster):
        with pytest.raises(ConnectionFailed):
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


# ----- the lean poster's HTTP/1.1 client, against a server whose every byte a test scripts ------

CLOSE = "close without answering"
RESET = "reset without answering"
HANG = "never answer"
IDLE = "closed for idleness"


def http(
    status: int = 200, body: bytes = b"", headers: tuple = (), *, length: bool = True
) -> bytes:
    """A raw HTTP/1.1 answer."""
    lines = [f"HTTP/1.1 {status} X", "x-amzn-RequestId: test", *headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


OK = http(200, headers=("Content-Type: application/json",))
GET_CONNECTION = (
    b'{"connectedAt":"2026-11-29T21:05:18.000Z","identity":{"sourceIp":"203.0.113.7",'
    b'"userAgent":"test"},"lastActiveAt":"2026-11-29T21:05:19.000Z"}'
)


@dataclass
class Request:
    connection: int  # the server's count of connections when this one was accepted
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class RawServer:
    """HTTP/1.1 on raw sockets, one thread per connection; ``answer(request)`` returns the bytes
    to send (then keep the connection), a ``(bytes, "close" or "reset")`` pair (send, then close
    or reset without a ``Connection: close`` header, as a server ending keep-alive does), or
    CLOSE, RESET (without answering) or HANG. ``idle_close`` closes a connection idle for that
    many seconds (``idle_closed`` counts them once closed); ``pieces`` sends answers that many
    bytes at a time."""

    def __init__(
        self, answer=None, tls: ssl.SSLContext | None = None, idle_close=None, pieces=0
    ) -> None:
        self.answer = answer or (lambda request: OK)
        self.pieces = pieces
        self.tls = tls
        self.idle_close = idle_close
        self.requests: list[Request] = []
        self.connections = 0
        self.idle_closed = 0
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.listener.getsockname()[1]}/prod"

    def posted(self) -> list[bytes]:
        with self.lock:
            return [r.body for r in self.requests if r.method == "POST"]

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._serve_safely, args=(sock, number), daemon=True).start()

    def _serve_safely(self, sock: socket.socket, number: int) -> None:
        idle = False
        try:
            if self.tls:
                sock = self.tls.wrap_socket(sock, server_side=True)
            idle = self._serve(sock, number) == IDLE
        except OSError:
            pass
        finally:
            sock.close()
        if idle:  # counted once closed, so a test waiting for it knows the FIN has been sent
            with self.lock:
                self.idle_closed += 1

    def _serve(self, sock: socket.socket, number: int) -> str | None:
        """Answers requests until the connection ends; IDLE when it ended it for idleness."""
        buffer = b""
        while True:
            sock.settimeout(self.idle_close)
            while b"\r\n\r\n" not in buffer:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    return IDLE  # idle too long: close, as a load balancer does
                if not chunk:
                    return
                buffer += chunk
            sock.settimeout(None)
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", 0))
            while len(buffer) < length:
                buffer += sock.recv(65536)
            request = Request(number, method, path, headers, buffer[:length])
            buffer = buffer[length:]
            with self.lock:
                self.requests.append(request)
            reply = self.answer(request)
            if reply == CLOSE:
                return
            if reply == RESET:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            if reply == HANG:
                self.stopped.wait(10)
                return
            data, then = reply if isinstance(reply, tuple) else (reply, "keep")
            if self.pieces:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for start in range(0, len(data), self.pieces):
                    sock.sendall(data[start : start + self.pieces])
                    time.sleep(0.001)  # the scenario: each piece arrives in a read of its own
            else:
                sock.sendall(data)
            if then == "reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if then in ("close", "reset"):
                return


@pytest.fixture
def raw_server():
    servers = []

    def start(answer=None, **options) -> RawServer:
        server = RawServer(answer, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token")


def lean(server: RawServer, **options) -> LeanPoster:
    return LeanPoster(server.url, "us-east-1", concurrency=8, credentials=CREDENTIALS, **options)


def test_requests_on_the_wire_are_what_boto3_sends_and_botocore_signs(raw_server, monkeypatch):
    server = raw_server(lambda r: http(200, GET_CONNECTION) if r.method == "GET" else OK)
    poster = lean(server)
    poster.post("a/b+c=", b'{"event":"pong"}')
    poster.get("L0SM9cOFvHcCIhw=")
    poster.delete("abc~_-")
    port = server.listener.getsockname()[1]
    for request in server.requests:
        assert request.headers["host"] == f"127.0.0.1:{port}"
        assert "content-type" not in request.headers
        when = datetime.datetime.strptime(request.headers["x-amz-date"], "%Y%m%dT%H%M%SZ")
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda when=when: when)
        expected = AWSRequest(
            method=request.method, url=server.url.replace("/prod", request.path), data=request.body
        )
        SigV4Auth(CREDENTIALS, "execute-api", "us-east-1").add_auth(expected)
        assert request.headers["authorization"] == expected.headers["Authorization"]
        assert request.headers["x-amz-security-token"] == "token"
    post, get, delete = server.requests
    assert (post.method, post.path, post.body) == (
        "POST",
        "/prod/@connections/a%2Fb%2Bc%3D",
        b'{"event":"pong"}',
    )
    assert post.headers["content-length"] == "16"
    assert "content-length" not in get.headers  # as boto3: none on a GET
    assert delete.headers["content-length"] == "0"


@pytest.mark.parametrize(
    "url",
    [
        "https://abcdef1234.execute-api.eu-west-1.amazonaws.com/prod",
        "https://ABCDEF1234.execute-api.eu-west-1.amazonaws.com:443/prod",
        "http://127.0.0.1:80/prod",
        "http://localhost:4510/local",
        "http://[::1]:8080/prod",
    ],
)
def test_signed_host_is_botocores(url):
    assert sigv4.host_from_url(urlsplit(url)) == botocore.auth._host_from_url(url)


@pytest.mark.parametrize(
    "path", ["/prod/@connections/a%2Fb", "/prod//@connections/x", "/a/./b/../c/", "", "/"]
)
def test_canonical_path_is_botocores(path):
    auth = SigV4Auth(CREDENTIALS, "execute-api", "us-east-1")
    assert sigv4.canonical_path(path) == auth._normalize_url_path(path)


def test_keep_alive_reuses_one_connection(raw_server):
    server = raw_server()
    poster = lean(server)
    for n in range(5):
        poster.post("C1", b'{"n":%d}' % n)
    assert server.connections == 1
    assert len(server.posted()) == 5
    assert len(poster.pool._idle) == 1


def test_connections_are_reused_across_threads_up_to_the_concurrency(raw_server):
    server = raw_server()
    poster = lean(server)
    targets = [f"ok-{n}" for n in range(200)]
    for _ in range(3):
        result = deliver(poster, targets, '{"event":"x"}', concurrency=8)
        assert result.delivered == 200
    assert server.connections <= 8 * 2  # a thread may open one while another returns one
    assert len(poster.pool._idle) <= 8
    assert len(server.posted()) == 600


def test_a_connection_the_server_closed_while_idle_is_replaced_transparently(raw_server):
    server = raw_server(idle_close=0.1)
    poster = lean(server)
    poster.post("C1", b"1")
    eventually(lambda: server.idle_closed == 1, message="the server to close the pooled connection")
    poster.post("C1", b"2")
    assert server.posted() == [b"1", b"2"]  # each once
    assert server.connections == 2


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_stale_connection_is_retried_once_on_a_new_one(raw_server, how):
    # The server answers, then drops the connection (FIN, or RST) without "Connection: close",
    # as one that ends keep-alive after some requests: the next request meets a dead socket.
    server = raw_server(lambda request: (OK, how))
    poster = lean(server)
    for n in range(3):
        poster.post("C1", b"%d" % n)
    assert server.posted() == [b"0", b"1", b"2"]  # each once
    assert server.connections == 3


@pytest.mark.parametrize("how", [CLOSE, RESET])
def test_a_server_that_drops_requests_unanswered_is_post_failed_after_one_retry(raw_server, how):
    server = raw_server(lambda request: OK if request.body == b"first" else how)
    poster = lean(server)
    poster.post("C1", b"first")
    with pytest.raises(ConnectionFailed, match="closed the connection without answering"):
        poster.post("C1", b"second")  # sent on the kept connection, then on a new one: no more
    assert server.posted() == [b"first", b"second", b"second"]
    with pytest.raises(PostFailed, match="closed the connection without answering"):
        poster.post("C1", b"third")  # on a new connection: not retried
    assert server.posted().count(b"third") == 1


def test_many_threads_over_connections_the_server_keeps_dropping(raw_server):
    # Every connection serves three requests then closes after answering: delivered exactly once.
    served: dict[int, int] = {}
    lock = threading.Lock()

    def answer(request):
        with lock:
            served[request.connection] = served.get(request.connection, 0) + 1
            last = served[request.connection] == 3
        return (OK, "close") if last else OK

    server = raw_server(answer)
    poster = lean(server)
    targets = [f"c-{n}" for n in range(300)]
    result = deliver(poster, targets, b"x", concurrency=16)
    assert result.delivered == 300, result.failed
    assert sorted(r.path for r in server.requests) == sorted(
        f"/prod/@connections/{t}" for t in targets
    )


def test_connection_close_is_honoured(raw_server):
    server = raw_server(lambda r: (http(200, headers=("Connection: close",)), "close"))
    poster = lean(server)
    poster.post("C1", b"1")
    assert len(poster.pool._idle) == 0
    poster.post("C1", b"2")
    assert server.connections == 2


def test_an_http_1_0_answer_is_not_kept(raw_server):
    server = raw_server(lambda r: (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", "close"))
    poster = lean(server)
    poster.post("C1", b"1")
    assert len(poster.pool._idle) == 0


@pytest.mark.parametrize(
    "answer",
    [
        http(
            200,
            b"4e\r\n"
            + GET_CONNECTION[:78]
            + b"\r\n"
            + b"%x;ext=1\r\n" % (len(GET_CONNECTION) - 78)
            # a chunk extension and a trailer
            + GET_CONNECTION[78:]
            + b"\r\n0\r\nx-trailer: 1\r\n\r\n",
            ("Transfer-Encoding: chunked",),
            length=False,
        ),
        (http(200, GET_CONNECTION, length=False), "close"),  # a body up to the end of stream
        b"HTTP/1.1 100 Continue\r\n\r\n" + http(200, GET_CONNECTION),  # an interim answer first
    ],
    ids=["chunked", "until-close", "100-continue"],
)
def test_answers_chunked_or_delimited_by_close(raw_server, answer):
    server = raw_server(lambda request: answer)
    poster = lean(server)
    found = poster.get("C2")
    assert found["Identity"] == {"SourceIp": "203.0.113.7", "UserAgent": "test"}
    assert found["LastActiveAt"].second == 19
    found = poster.get("C2")  # the connection after a chunked answer is still in step
    assert found["ConnectedAt"].minute == 5


@pytest.mark.parametrize("chunked", [False, True])
def test_answers_that_arrive_in_pieces(raw_server, chunked):
    if chunked:
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(GET_CONNECTION), GET_CONNECTION)
        answer = http(200, body, ("Transfer-Encoding: chunked",), length=False)
    else:
        answer = http(200, GET_CONNECTION)
    server = raw_server(lambda request: answer, pieces=5)
    poster = lean(server)
    assert poster.get("C2")["Identity"]["UserAgent"] == "test"
    assert poster.get("C2")["Identity"]["SourceIp"] == "203.0.113.7"
    assert server.connections == 1


@pytest.mark.parametrize(
    ("answer", "raised"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", BadAnswer),
        ((b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "close"), BadAnswer),
        ((b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "close"), BadAnswer),
        (HANG, Timeout),
    ],
    ids=["not-http", "short-body", "bad-chunk", "no-answer"],
)
def test_broken_answers_raise_typed_post_failures_and_drop_the_connection(
    raw_server, answer, raised
):
    server = raw_server(lambda request: answer)
    poster = lean(server, read_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(raised) as failure:
        poster.post("C1", b"{}")
    assert isinstance(failure.value, PostFailed)
    assert time.monotonic() - started < 3
    assert len(poster.pool._idle) == 0


# What boto3's client raises for an answer, the lean poster raises too.
ANSWERS = [
    (http(200), None),
    (http(204), None),
    (http(410, b'{"message":"Gone"}', ("x-amzn-ErrorType: GoneException",)), Gone),
    (http(400, b'{"message":"x"}', ("x-amzn-ErrorType: GoneException:http://x/",)), Gone),
    (http(429, b'{"message":"Rate"}', ("x-amzn-ErrorType: LimitExceededException",)), Throttled),
    (http(400, b"{}", ("x-amzn-ErrorType: LimitExceededException",)), Throttled),
    (http(403, b'{"message":"Forbidden"}', ("x-amzn-ErrorType: ForbiddenException",)), PostFailed),
    (http(413, b'{"message":"big"}', ("x-amzn-ErrorType: PayloadTooLargeException",)), PostFailed),
    (http(500, b'{"message":"Internal"}'), PostFailed),
    (http(502, b"<html>Bad Gateway</html>", ("Content-Type: text/html",)), PostFailed),
    (http(301, b"", ("Location: https://elsewhere/",)), PostFailed),
]


@pytest.mark.parametrize(("answer", "raised"), ANSWERS)
@pytest.mark.parametrize("kind", [LeanPoster, Boto3Poster])
def test_same_answer_same_outcome_as_boto3(raw_server, aws_environment, kind, answer, raised):
    server = raw_server(lambda request: answer)
    poster = kind(server.url, "us-east-1", concurrency=2)
    if raised is None:
        poster.post("C1", b"{}")
    else:
        with pytest.raises(raised):
            poster.post("C1", b"{}")


@pytest.mark.parametrize("encoding", ["length", "chunked"])
def test_get_has_boto3s_shape(raw_server, aws_environment, encoding):
    if encoding == "chunked":
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(GET_CONNECTION), GET_CONNECTION)
        answer = http(200, body, ("Transfer-Encoding: chunked",), length=False)
    else:
        answer = http(200, GET_CONNECTION, ("Content-Type: application/json",))
    server = raw_server(lambda request: answer)
    found = {kind: kind(server.url, "us-east-1").get("C2") for kind in (LeanPoster, Boto3Poster)}
    assert found[LeanPoster] == found[Boto3Poster]


# ----- HTTPS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert file, key file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "classroom test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


@pytest.fixture
def tls_server(raw_server, certificate):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return raw_server(lambda r: http(200, GET_CONNECTION) if r.method == "GET" else OK, tls=context)


def test_https_with_a_verified_certificate_and_keep_alive(tls_server, certificate):
    poster = lean(tls_server, ssl_context=ssl.create_default_context(cafile=certificate[0]))
    for n in range(3):
        poster.post("C1", b"%d" % n)
    assert poster.get("C2")["Identity"]["SourceIp"] == "203.0.113.7"
    assert tls_server.posted() == [b"0", b"1", b"2"]
    assert tls_server.connections == 1


def test_https_reconnects_after_the_server_closed_an_idle_connection(raw_server, certificate):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = raw_server(tls=context, idle_close=0.1)
    poster = lean(server, ssl_context=ssl.create_default_context(cafile=certificate[0]))
    poster.post("C1", b"1")
    eventually(lambda: server.idle_closed == 1, message="the server to close the idle connection")
    poster.post("C1", b"2")
    assert server.posted() == [b"1", b"2"]
    assert server.connections == 2


def test_https_verifies_the_certificate_by_default(tls_server):
    with pytest.raises(PostFailed, match="could not connect"):
        lean(tls_server).post("C1", b"{}")  # self-signed: not in the default trust store
    assert tls_server.requests == []
