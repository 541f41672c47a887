"""``classroom-console sandbox``: the local sandbox in the foreground, for terminals and CI.

It prints where to reach the sandbox and how to get a token, then one log line per connection
event (never a token) until Ctrl-C or SIGTERM, when it closes every connection, stops its own
Redis and exits 0.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
import threading

from desktop.sandbox.gateway import Sandbox, SandboxConfig
from desktop.sandbox.guard import exposed

EXIT_OK = 0
EXIT_FAILED = 1


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be from 0 (any free port) to 65535")
    return value


def _count(text: str, least: int = 0) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be {least} or more")
    return value


def _positive(text: str) -> int:
    return _count(text, least=1)


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = SandboxConfig()
    parser = subparsers.add_parser(
        "sandbox",
        help="run the backend's handlers locally behind an API Gateway-like WebSocket gateway",
        description=(
            "Run the classroom backend's own Lambda handlers behind a local gateway with API "
            "Gateway's WebSocket semantics, on a real Redis. Stops on Ctrl-C or SIGTERM."
        ),
    )
    parser.add_argument("--host", default=defaults.host, help="address to listen on")
    parser.add_argument(
        "--port", type=_port, default=defaults.port, help="port to listen on (0: any free port)"
    )
    parser.add_argument("--stage", default=defaults.stage, help="the stage in URLs")
    parser.add_argument(
        "--redis-url",
        metavar="URL",
        help="use this Redis (default: start redis-server, else an embedded fakeredis)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=defaults.idle_timeout,
        metavar="S",
        help="close connections silent for this long (default 600, as API Gateway)",
    )
    parser.add_argument(
        "--max-lifetime",
        type=_seconds,
        default=defaults.max_lifetime,
        metavar="S",
        help="close connections open this long (default 7200, as API Gateway)",
    )
    parser.add_argument(
        "--worker-processes",
        type=_positive,
        default=defaults.worker_processes,
        metavar="N",
        help=f"run the handlers in N worker processes (default {defaults.worker_processes})",
    )
    parser.add_argument(
        "--rate-limit",
        type=_count,
        default=defaults.rate_limit_per_second,
        metavar="N",
        help=(
            f"sends a second one connection may make (default {defaults.rate_limit_per_second}, "
            "as the template's RateLimitPerSecond; 0: no limit)"
        ),
    )
    parser.add_argument(
        "--expose",
        action="store_true",
        help=(
            "allow a --host beyond this computer: anyone who can reach it can connect with a "
            "token, and the admin endpoint answers anyone holding the admin key"
        ),
    )
    parser.set_defaults(func=run)


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log = logging.getLogger("desktop.sandbox")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def run(args: argparse.Namespace) -> int:
    _configure_logging()
    sandbox = Sandbox(
        SandboxConfig(
            host=args.host,
            port=args.port,
            stage=args.stage,
            redis_url=args.redis_url,
            idle_timeout=args.idle_timeout,
            max_lifetime=args.max_lifetime,
            worker_processes=args.worker_processes,
            rate_limit_per_second=args.rate_limit,
            expose=args.expose,
        )
    )
    stop = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stop.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        sandbox.start()
        print(
            f"Classroom sandbox running.\n"
            f"  WebSocket URL:   {sandbox.websocket_url}?room=ROOM&token=TOKEN\n"
            f"  Management API:  {sandbox.management_url}/{{connectionId}}\n"
            f"  Admin:           POST {sandbox.admin_url}\n"
            f"  Metrics:         GET {sandbox.metrics_url}\n"
            f"  Redis:           {sandbox.redis_description}\n"
            f"  Token secret:    {sandbox.token_secret_location}\n"
            f"  Admin key:       {sandbox.admin_key_location} "
            f"(Authorization: Bearer <key> for /_admin and /_metrics)\n"
            f"Get a token with: classroom-console token --sub alice --role student --room demo\n"
            f"Ctrl-C stops the sandbox.",
            flush=True,
        )
        if exposed(args.host):
            print(
                f"Warning: the sandbox listens on {args.host}:{sandbox.port}, reachable from other "
                "computers, without TLS: the WebSocket endpoint (anyone with a token), the "
                "management API (anyone with the sandbox's management keys), and /_admin and "
                "/_metrics (anyone with its admin key).",
                file=sys.stderr,
                flush=True,
            )
        # Everything loaded so far lives as long as the sandbox: full collections skip it.
        gc.collect()
        gc.freeze()
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(0.5):
            if not sandbox.running:
                print("classroom-console: the sandbox stopped unexpectedly.", file=sys.stderr)
                return EXIT_FAILED
        print("Stopping the sandbox: closing connections.", file=sys.stderr, flush=True)
        return EXIT_OK
    finally:
        sandbox.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
