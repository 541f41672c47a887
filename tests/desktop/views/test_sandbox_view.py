"""The embedded sandbox: started and stopped from the console, off the GUI thread."""

from __future__ import annotations

import socket

from PySide6.QtWidgets import QMessageBox

from desktop.services.aws import AwsProfile
from desktop.services.environments import SANDBOX_NAME
from desktop.workers.sandbox import Phase

START_TIMEOUT = 30_000


def wait_phase(qtbot, window, phase: Phase) -> None:
    qtbot.waitUntil(lambda: window.supervisor.state.phase is phase, timeout=START_TIMEOUT)


def test_start_and_stop_from_the_environments_view(qtbot, open_window, config_dir) -> None:
    window = open_window()
    panel = window.environments_view.sandbox_panel
    assert window.environments_view.pages.currentWidget() is panel
    assert panel.start_button.isEnabled() and not panel.stop_button.isEnabled()
    assert panel.websocket_url.text() == ""

    panel.start_button.click()
    assert window.supervisor.state.phase is Phase.STARTING  # the GUI thread did not wait
    assert not panel.start_button.isEnabled()
    wait_phase(qtbot, window, Phase.RUNNING)

    state = window.supervisor.state
    url = panel.websocket_url.text()
    assert url == state.websocket_url
    assert url.startswith("ws://127.0.0.1:") and url.endswith("/local")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    assert port != 0
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert panel.management_url.text().endswith("/local/@connections")
    assert panel.admin_url.text().endswith("/_admin")
    assert panel.metrics_url.text().endswith("/_metrics")
    assert panel.redis.text() == state.redis_description and state.redis_description
    assert "never shown" in panel.token_secret.text()
    assert "sandbox-admin-key" in panel.admin_key.text()
    assert window.environments_view.model.state(SANDBOX_NAME) == "running"
    assert window.environment_label.state.endswith(f"{SANDBOX_NAME} · running · {url}")
    for placeholder in window.placeholders.values():
        assert url in placeholder.target.text()
    assert panel.stop_button.isEnabled() and window.stop_sandbox_action.isEnabled()

    # The secret and the admin key themselves are shown nowhere.
    running = window.supervisor._sandbox
    texts = [label.text() for label in window.findChildren(type(panel.redis))]
    for secret in (running.token_secret, running.admin_key):
        assert not any(secret in text for text in texts)

    window.stop_sandbox_action.trigger()  # no one is connected: no question
    assert window.environments_view.confirmation is None
    wait_phase(qtbot, window, Phase.STOPPED)
    assert panel.websocket_url.text() == ""
    assert window.environment_label.state.endswith(f"{SANDBOX_NAME} · stopped")
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        listening = True
    except OSError:
        listening = False
    assert not listening


def test_restart_brings_the_sandbox_back_with_a_fresh_redis(qtbot, open_window, config_dir) -> None:
    window = open_window()
    panel = window.environments_view.sandbox_panel
    assert not panel.restart_button.isEnabled()
    panel.start_button.click()
    wait_phase(qtbot, window, Phase.RUNNING)
    first_redis = window.supervisor.state.redis_description
    phases: list[Phase] = []
    window.supervisor.state_changed.connect(lambda state: phases.append(state.phase))

    panel.restart_button.click()
    assert window.supervisor.state.phase is Phase.STOPPING  # the GUI thread did not wait
    qtbot.waitUntil(lambda: phases[-1:] == [Phase.RUNNING], timeout=START_TIMEOUT)
    assert phases == [Phase.STOPPING, Phase.STOPPED, Phase.STARTING, Phase.RUNNING]
    assert window.supervisor.state.redis_description != first_redis  # its own, new redis-server
    assert panel.websocket_url.text().startswith("ws://127.0.0.1:")
    assert window.restart_sandbox_action.isEnabled()

    window.stop_sandbox_action.trigger()
    wait_phase(qtbot, window, Phase.STOPPED)


def test_a_first_run_without_profiles_starts_the_sandbox(qtbot, open_window) -> None:
    window = open_window(autostart_sandbox=True, list_profiles=lambda: [])
    wait_phase(qtbot, window, Phase.RUNNING)
    assert window.session.environment.name == SANDBOX_NAME
    assert "running · ws://127.0.0.1:" in window.environment_label.state
    with qtbot.waitSignal(window.supervisor.state_changed, timeout=START_TIMEOUT):
        window.close()
    wait_phase(qtbot, window, Phase.STOPPED)
    assert window.supervisor._sandbox is None


def test_with_aws_profiles_the_sandbox_waits_to_be_asked(qtbot, open_window) -> None:
    window = open_window(
        autostart_sandbox=True, list_profiles=lambda: [AwsProfile("default", "us-east-1", False)]
    )
    qtbot.waitUntil(lambda: len(window.environments_view.profiles) == 1)
    assert window.supervisor.state.phase is Phase.STOPPED


def test_a_sandbox_that_cannot_start_says_why(qtbot, open_window, posted, redis_server) -> None:
    with socket.socket() as probe:  # a port where no Redis answers
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    window = open_window(redis_url=f"redis://127.0.0.1:{dead}/0")
    window.start_sandbox_action.trigger()
    wait_phase(qtbot, window, Phase.FAILED)
    panel = window.environments_view.sandbox_panel
    assert panel.banner.kind == "error"
    assert f"127.0.0.1:{dead}" in panel.banner.label.text()
    assert window.environments_view.model.state(SANDBOX_NAME) == "could not start"
    assert panel.start_button.isEnabled()
    assert any(f"127.0.0.1:{dead}" in m.text for m in posted)
    # It can be started again once the cause is gone.
    window.supervisor.redis_url = redis_server
    panel.start_button.click()
    wait_phase(qtbot, window, Phase.RUNNING)
    assert panel.banner.isHidden()


def test_a_taken_port_moves_the_sandbox_to_a_free_one(qtbot, open_window, posted) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        window = open_window(sandbox_port=port)
        window.start_sandbox_action.trigger()
        wait_phase(qtbot, window, Phase.RUNNING)
    assert f":{port}/" not in window.supervisor.state.websocket_url
    assert any(f"Port {port} is in use" in m.text for m in posted)


def answer(qtbot, window, button: str) -> None:
    """Clicks ``button`` in the question the environments view is asking."""
    box = window.environments_view.confirmation
    with qtbot.waitSignal(box.finished):
        next(b for b in box.buttons() if b.text() == button).click()
    assert window.environments_view.confirmation is None


def test_stop_under_connected_members_asks_first(qtbot, open_window, redis_server, join) -> None:
    window = open_window(redis_url=redis_server)
    panel = window.environments_view.sandbox_panel
    panel.start_button.click()
    wait_phase(qtbot, window, Phase.RUNNING)
    members = [join(window.supervisor, "room-stop", sub) for sub in ("teacher", "alice", "bob")]
    qtbot.waitUntil(lambda: window.supervisor.connection_count == 3)

    panel.stop_button.click()
    box = window.environments_view.confirmation
    assert box.isVisible()
    assert "Stop the local sandbox?" in box.text()
    assert "3 connected members will be disconnected." in box.text()
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)
    assert sorted(b.text() for b in box.buttons()) == ["Cancel", "Stop sandbox"]
    answer(qtbot, window, "Cancel")
    assert window.supervisor.state.phase is Phase.RUNNING
    assert all(member.ping()["ts"] > 0 for member in members)  # still connected

    # The toolbar asks the same question; Stop goes ahead and every member is told.
    members[0].close()
    qtbot.waitUntil(lambda: window.supervisor.connection_count == 2)
    window.stop_sandbox_action.trigger()
    box = window.environments_view.confirmation
    assert "2 connected members will be disconnected." in box.text()
    answer(qtbot, window, "Stop sandbox")
    assert window.supervisor.state.phase is Phase.STOPPING
    assert [member.wait_closed()[0] for member in members[1:]] == [1001, 1001]
    wait_phase(qtbot, window, Phase.STOPPED)


def test_restart_under_a_connected_member_asks_first(
    qtbot, open_window, redis_server, join
) -> None:
    window = open_window(redis_url=redis_server)
    panel = window.environments_view.sandbox_panel
    panel.start_button.click()
    wait_phase(qtbot, window, Phase.RUNNING)
    member = join(window.supervisor, "room-restart", "alice")
    qtbot.waitUntil(lambda: window.supervisor.connection_count == 1)

    window.restart_sandbox_action.trigger()
    box = window.environments_view.confirmation
    assert "Restart the local sandbox?" in box.text()
    assert "1 connected member will be disconnected." in box.text()
    answer(qtbot, window, "Cancel")
    assert window.supervisor.state.phase is Phase.RUNNING

    phases: list[Phase] = []
    window.supervisor.state_changed.connect(lambda state: phases.append(state.phase))
    panel.restart_button.click()
    answer(qtbot, window, "Restart sandbox")
    assert member.wait_closed()[0] == 1001
    qtbot.waitUntil(lambda: phases[-1:] == [Phase.RUNNING], timeout=START_TIMEOUT)
    assert phases == [Phase.STOPPING, Phase.STOPPED, Phase.STARTING, Phase.RUNNING]
    assert window.supervisor.connection_count == 0
