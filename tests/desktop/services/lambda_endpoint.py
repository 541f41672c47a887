"""A local endpoint that speaks Lambda's Invoke API, for the admin client's Lambda transport.

moto cannot run a function's code here (it needs Docker), so this answers ``POST
/2015-03-31/functions/{name}/invocations`` itself, as Lambda does: the function's answer, a
function error (``X-Amz-Function-Error`` and its JSON), or a service error (``x-amzn-ErrorType``).
It records each request, so a test sees the request's shape as boto3 sends it.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


class LambdaEndpoint:
    """``answer(name, payload) -> (status, headers, body)`` decides every invocation."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.requests: list[dict] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.split("?")[0].split("/")
                name = unquote(parts[3]) if len(parts) > 4 else ""
                endpoint.requests.append(
                    {
                        "path": self.path,
                        "function": name,
                        "payload": json.loads(body or b"null"),
                        "headers": dict(self.headers.items()),
                    }
                )
                status, headers, answer = endpoint.answer(name, json.loads(body or b"null"))
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def service_error(status: int, code: str, message: str) -> tuple[int, dict, dict]:
    return status, {"x-amzn-ErrorType": code}, {"Type": "User", "message": message}
