"""The sandbox's console endpoints: ``POST /_admin`` runs the admin handler, ``GET /_metrics``
serves per-minute metrics; both behind the guard of ``desktop.sandbox.guard`` (the admin key, no
Origin, a Host that names the sandbox, JSON)."""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from desktop.sandbox import guard, metrics
from desktop.sandbox.invocations import Invoker

if TYPE_CHECKING:
    from desktop.sandbox.gateway import SandboxConfig

log = logging.getLogger("desktop.sandbox")


class ConsoleEndpoints:
    """``/_admin`` and ``/_metrics`` of one sandbox; ``admin_key`` and ``port`` are read from it
    when a request comes."""

    def __init__(
        self,
        config: SandboxConfig,
        invoker: Invoker,
        board: metrics.MetricsBoard,
        admin_key: Callable[[], str | None],
        port: Callable[[], int | None],
    ) -> None:
        self.config = config
        self.invoker = invoker
        self.board = board
        self.admin_key = admin_key
        self.port = port

    def refused(self, request: web.BaseRequest) -> web.Response | None:
        """The console endpoints' guard (``desktop.sandbox.guard``), as an answer or None."""
        refusal = guard.check(
            method=request.method,
            host=request.headers.get("Host"),
            origin=request.headers.get("Origin"),
            content_type=request.headers.get("Content-Type"),
            remote=request.remote,
            authorization=request.headers.get("Authorization"),
            admin_key=self.admin_key() or "",
            port=self.port() or 0,
            bound_host=self.config.host,
        )
        if refusal is None:
            return None
        error = "unauthorized" if refusal.status == 401 else "forbidden"
        return web.json_response(
            {"ok": False, "error": error, "message": refusal.reason},
            status=refusal.status,
            headers=refusal.headers,
        )

    async def admin(self, request: web.BaseRequest) -> web.Response:
        refused = self.refused(request)
        if refused is not None:
            return refused
        try:
            async with asyncio.timeout(self.config.header_timeout):
                body = await request.json()
        except (ValueError, RecursionError):
            return web.json_response(
                {"ok": False, "error": "bad_json", "message": "the body is not JSON"}, status=400
            )
        if isinstance(body, dict):
            # The audit log names who runs the sandbox, whatever the caller says it is.
            body["staff"] = operator()
        outcome = await self.invoker.invoke("admin", body)
        if outcome.throttled:
            return web.json_response(
                {"ok": False, "error": "unavailable", "message": "the sandbox is overloaded"},
                status=429,
            )
        if outcome.timed_out:
            return web.json_response(
                {"ok": False, "error": "unavailable", "message": "the admin handler timed out"},
                status=504,
            )
        if outcome.error is not None or not isinstance(outcome.result, dict):
            log.error("admin handler failed: %s", outcome.error)
            what = outcome.error or TypeError("the admin handler did not return an object")
            return web.json_response(
                {"ok": False, "error": "internal", "message": f"{type(what).__name__}: {what}"},
                status=500,
            )
        return web.json_response(outcome.result, dumps=lambda v: json.dumps(v, default=str))

    async def metrics(self, request: web.BaseRequest) -> web.Response:
        refused = self.refused(request)
        if refused is not None:
            return refused
        return web.json_response(self.board.snapshot())


def operator() -> str:
    """The sandbox's own identity for audit logs: the user running it, on this sandbox."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment
        user = "someone"
    return f"{user}@sandbox"
