"""Backend fixtures: API Gateway event fixtures, a Lambda context, and a real management API.

The management API here is a real HTTP server on loopback that records what is posted and
answers 410 for connections a test marks gone: moto's version always answers 200 and cannot
model a stale connection. The sandbox gateway replaces it in the end-to-end tests.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from backend import runtime, tokens

EVENTS = Path(__file__).resolve().parent.parent / "events"
SECRET = "test-secret-long-enough-for-every-hmac-algorithm-0123456789abcdef"
STAGE = "prod"


def load_event(name: str, **overrides) -> dict:
    """An API Gateway event from tests/events, with requestContext fields overridden."""
    event = copy.deepcopy(json.loads((EVENTS / f"{name}.json").read_text()))
    context = event.get("requestContext", {})
    for key, value in overrides.items():
        if key == "body":
            event["body"] = value
        elif key == "authorizer":
            context["authorizer"] = value
        else:
            context[key] = value
    return event


@dataclass
class LambdaContext:
    function_name: str = "classroom-messages"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:classroom-messages"
    aws_request_id: str = "3f7f1f3e-5b8e-4c1e-9d1a-2b8f0f6e7a11"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


class ManagementApi:
    """Records posts per connection; answers 410 for gone ids and 429 for throttled ones."""

    def __init__(self) -> None:
        self.posts: dict[str, list[bytes]] = defaultdict(list)
        self.deleted: list[str] = []
        self.gone: set[str] = set()
        self.throttle: dict[str, int] = {}
        self.fail: set[str] = set()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{STAGE}"

    def frames(self, connection_id: str) -> list[dict]:
        with self.lock:
            return [json.loads(body) for body in self.posts.get(connection_id, [])]

    def reset(self) -> None:
        with self.lock:
            self.posts.clear()
            self.deleted.clear()
            self.gone.clear()
            self.throttle.clear()
            self.fail.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _connection_id(self) -> str | None:
                prefix = f"/{STAGE}/@connections/"
                path = unquote(self.path)
                return path[len(prefix) :] if path.startswith(prefix) else None

            def _answer(
                self, status: int, body: bytes = b"", error_type: str | None = None
            ) -> None:
                self.send_response(status)
                if error_type:
                    self.send_header("x-amzn-ErrorType", error_type)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _route(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                connection_id = self._connection_id()
                if connection_id is None or "authorization" not in {
                    k.lower() for k in self.headers
                }:
                    return self._answer(403, b'{"message":"Forbidden"}', "ForbiddenException")
                with api.lock:
                    if connection_id in api.gone:
                        return self._answer(410, b'{"message":"Gone"}', "GoneException")
                    if api.throttle.get(connection_id, 0) > 0:
                        api.throttle[connection_id] -= 1
                        return self._answer(
                            429, b'{"message":"Rate exceeded"}', "LimitExceededException"
                        )
                    if connection_id in api.fail:
                        return self._answer(500, b'{"message":"Internal"}', "InternalServerError")
                    if method == "POST":
                        api.posts[connection_id].append(body)
                    elif method == "DELETE":
                        api.deleted.append(connection_id)
                        api.gone.add(connection_id)
                if method == "GET":
                    # GetConnection's wire format, as API Gateway sends it.
                    info = {
                        "connectedAt": "2026-11-29T21:05:18.000Z",
                        "identity": {"sourceIp": "203.0.113.7", "userAgent": "test"},
                        "lastActiveAt": "2026-11-29T21:05:19.000Z",
                    }
                    return self._answer(200, json.dumps(info).encode())
                return self._answer(204 if method == "DELETE" else 200)

            def do_POST(self) -> None:
                self._route("POST")

            def do_DELETE(self) -> None:
                self._route("DELETE")

            def do_GET(self) -> None:
                self._route("GET")

        return Handler


@pytest.fixture(scope="session")
def management_server():
    api = ManagementApi()
    yield api
    api.close()


@pytest.fixture
def management(management_server: ManagementApi) -> ManagementApi:
    management_server.reset()
    return management_server


@pytest.fixture
def backend_env(monkeypatch, redis_client, management, aws_environment, redis_server):
    """Handlers configured as in Lambda, on the test Redis and the recording management API."""
    monkeypatch.setenv("REDIS_URL", redis_server)
    monkeypatch.setenv("TOKEN_SECRET", SECRET)
    monkeypatch.setenv("MANAGEMENT_ENDPOINT_URL", management.url)
    runtime.reset()
    yield
    runtime.reset()


def token(sub: str = "student-1", role: str = "student", rooms=("physics-101",), **claims) -> str:
    return tokens.mint(SECRET, sub=sub, role=role, rooms=list(rooms), **claims)
