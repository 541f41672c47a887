"""Ports on 127.0.0.1: a free one for a server to take, whether the gateway could listen on a
given one, and waiting until a server listens.

The sandbox picks its Redis port here; the tests and the benchmark start their servers the
same way.
"""

from __future__ import annotations

import os
import socket
import time


def free_port() -> int:
    """A port nothing listens on now (another process may still take it before we do)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reuse_address(sock: socket.socket) -> None:
    """A listener that binds past the TIME_WAIT sockets of clients it had (POSIX only: on
    Windows ``SO_REUSEADDR`` would share a port another program listens on)."""
    if os.name != "nt":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)


def can_listen(host: str, port: int) -> bool:
    """Whether the sandbox's gateway could listen on ``host:port`` now.

    The probe binds as the gateway binds its listener (``Sandbox._bind``): with ``SO_REUSEADDR``
    on POSIX, so the TIME_WAIT sockets a stopped sandbox leaves behind its clients do not count
    as the port being in use, and plainly on Windows, where ``SO_REUSEADDR`` would share a port
    another program listens on. Another process may still take the port before the gateway does.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror:
        return False
    with socket.socket(family, kind, proto) as probe:
        try:
            reuse_address(probe)
            probe.bind(address)
        except OSError:
            return False
    return True


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
