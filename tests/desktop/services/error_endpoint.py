"""A local HTTP endpoint that answers every AWS request with one error, like AWS would.

boto3 is pointed at it with ``endpoint_url`` to see how the console reports AccessDenied,
ExpiredToken or Throttling without an AWS account; it counts requests so retries show.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

ACCESS_DENIED = (
    403,
    "AccessDenied",
    "User: arn:aws:iam::123456789012:user/support is not authorized to perform: "
    "cloudformation:DescribeStacks on resource: arn:aws:cloudformation:us-east-1:123456789012:"
    "stack/classroom/* because no identity-based policy allows the cloudformation:DescribeStacks "
    "action",
)
EXPIRED_TOKEN = (400, "ExpiredToken", "The security token included in the request is expired")
THROTTLING = (400, "Throttling", "Rate exceeded")
PROXY_ERROR_PAGE = (
    b"<!doctype html><title>500 Internal Server Error</title><h1>Internal Server Error</h1>"
)


class ErrorEndpoint:
    """Answers every request with ``status`` and a query-protocol XML error ``code``/``message``."""

    def __init__(self, status: int, code: str, message: str, page: bytes | None = None) -> None:
        """``page``, when given, is sent as it is instead of an AWS error (a proxy's page)."""
        self.status, self.code, self.message, self.page = status, code, message, page
        self.requests = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                endpoint.requests += 1
                body = (
                    '<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/">'
                    f"<Error><Type>Sender</Type><Code>{escape(endpoint.code)}</Code>"
                    f"<Message>{escape(endpoint.message)}</Message></Error>"
                    "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
                ).encode()
                if endpoint.page is not None:
                    body = endpoint.page
                self.send_response(endpoint.status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> ErrorEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
