"""Ports on 127.0.0.1: a free one for a server to take, and waiting until a server listens.

The sandbox picks its Redis port here; the tests and the benchmark start their servers the
same way.
"""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    """A port nothing listens on now (another process may still take it before we do)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Returns once something accepts connections on ``port``; ``RuntimeError`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout} s")
