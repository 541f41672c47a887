"""The embedded local sandbox, started and stopped off the GUI thread.

``Sandbox.start()`` blocks until the gateway listens and ``stop()`` waits for it to close, so the
console drives them through workers and follows the sandbox's life as ``SandboxState`` values.
Only a sandbox this supervisor started is ever stopped by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from PySide6.QtCore import QObject, Signal

from desktop import messages
from desktop.sandbox.loopback import can_listen
from desktop.services.errors import ConsoleError
from desktop.workers.worker import FunctionWorker, start


class Phase(Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    FAILED = "failed"


@dataclass(frozen=True)
class SandboxState:
    """What the views show about the sandbox; URLs are set while it runs."""

    phase: Phase = Phase.STOPPED
    websocket_url: str | None = None
    management_url: str | None = None
    admin_url: str | None = None
    metrics_url: str | None = None
    redis_description: str | None = None
    token_secret_location: str | None = None
    admin_key_location: str | None = None
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.phase is Phase.RUNNING

    @property
    def busy(self) -> bool:
        return self.phase in (Phase.STARTING, Phase.STOPPING)

    @property
    def health(self) -> str:
        """The phrase for the status bar and the environments list."""
        if self.phase is Phase.FAILED:
            return "could not start"
        return self.phase.value


@dataclass(frozen=True)
class StopQuestion:
    """What to ask before stopping (or restarting) the sandbox under connected members."""

    title: str  # the dialog's window title
    text: str  # the question
    detail: str  # who is affected
    confirm: str  # the button that goes ahead; the other one is Cancel


def stop_question(members: int, *, restart: bool = False) -> StopQuestion | None:
    """The question for stopping with ``members`` connected; None: no one is dropped, just stop.

    Stopping closes every member's connection (1001, "Going away") in the middle of a lesson, so
    whoever presses Stop should know how many people that is before it happens.
    """
    if members <= 0:
        return None
    who = "1 connected member" if members == 1 else f"{members} connected members"
    if restart:
        return StopQuestion(
            "Restart sandbox",
            "Restart the local sandbox?",
            f"{who} will be disconnected. They can join again once it is back.",
            "Restart sandbox",
        )
    return StopQuestion(
        "Stop sandbox",
        "Stop the local sandbox?",
        f"{who} will be disconnected.",
        "Stop sandbox",
    )


def _start_sandbox(host: str, port: int, stage: str, redis_url: str | None):
    """Start a sandbox; if its usual port is taken (another console?), on a free one instead."""
    from desktop.sandbox.gateway import Sandbox, SandboxConfig

    if port and not can_listen(host, port):
        messages.info(
            f"Port {port} is in use, so the local sandbox listens on a free port instead."
        )
        port = 0
    sandbox = Sandbox(SandboxConfig(host=host, port=port, stage=stage, redis_url=redis_url))
    sandbox.start()
    try:
        state = SandboxState(
            phase=Phase.RUNNING,
            websocket_url=sandbox.websocket_url,
            management_url=sandbox.management_url,
            admin_url=sandbox.admin_url,
            metrics_url=sandbox.metrics_url,
            redis_description=sandbox.redis_description,
            token_secret_location=str(sandbox.token_secret_location),
            admin_key_location=str(sandbox.admin_key_location),
        )
    except BaseException:
        sandbox.stop()
        raise
    return sandbox, state


class SandboxSupervisor(QObject):
    """Starts and stops the one embedded sandbox; ``state_changed`` follows every step."""

    state_changed = Signal(object)  # SandboxState

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        stage: str = "local",
        redis_url: str | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.host = host
        self.port = port
        self.stage = stage
        self.redis_url = redis_url
        self._sandbox = None
        self._state = SandboxState()
        self._stop_requested = False
        self._restart_requested = False

    @property
    def state(self) -> SandboxState:
        return self._state

    @property
    def connection_count(self) -> int:
        """Members connected to the running sandbox now; 0 when it does not run.

        A cheap read of the gateway's own count, safe on the GUI thread.
        """
        sandbox = self._sandbox
        return sandbox.connection_count if sandbox is not None and self._state.running else 0

    @property
    def admin_key(self) -> str | None:
        """The running sandbox's admin key (for its ``/_admin``); never shown or logged."""
        sandbox = self._sandbox
        return sandbox.admin_key if sandbox is not None and self._state.running else None

    def stop_question(self, *, restart: bool = False) -> StopQuestion | None:
        """What to ask before ``stop()`` (or ``restart()``) now; None to go ahead without asking."""
        return stop_question(self.connection_count, restart=restart)

    def start(self) -> None:
        """Start the sandbox unless it runs or is on its way; the result arrives as a state."""
        if self._state.phase in (Phase.STARTING, Phase.RUNNING, Phase.STOPPING):
            return
        self._stop_requested = False
        self._set_state(SandboxState(phase=Phase.STARTING))
        worker = FunctionWorker(_start_sandbox, self.host, self.port, self.stage, self.redis_url)
        worker.signals.returned.connect(self._started)
        worker.signals.errored.connect(self._start_failed)
        start(worker, report_errors=False)

    def stop(self) -> None:
        """Stop the sandbox this supervisor started (also when it is still starting)."""
        if self._state.phase is Phase.STARTING:
            self._stop_requested = True
            return
        if self._state.phase is not Phase.RUNNING or self._sandbox is None:
            return
        sandbox, self._sandbox = self._sandbox, None
        self._set_state(SandboxState(phase=Phase.STOPPING))
        worker = FunctionWorker(sandbox.stop)
        worker.signals.finished.connect(self._stopped)
        start(worker)

    def restart(self) -> None:
        """Stop the sandbox and start it again: a fresh Redis, fresh handlers, no connections."""
        if self._state.phase is Phase.RUNNING:
            self._restart_requested = True
            self.stop()
        elif self._state.phase in (Phase.STOPPED, Phase.FAILED):
            self.start()

    def _started(self, result) -> None:
        self._sandbox, state = result
        self._set_state(state)
        if self._stop_requested:
            self.stop()

    def _start_failed(self, error: BaseException) -> None:
        context = None if isinstance(error, ConsoleError) else "The local sandbox could not start"
        message = messages.report_error(error, context=context)
        self._set_state(SandboxState(phase=Phase.FAILED, error=message.text))

    def _stopped(self) -> None:
        self._set_state(SandboxState(phase=Phase.STOPPED))
        if self._restart_requested:
            self._restart_requested = False
            self.start()

    def _set_state(self, state: SandboxState) -> None:
        self._state = state
        self.state_changed.emit(state)
