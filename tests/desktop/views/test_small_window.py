"""The console at 800 × 600 (and at its minimum size): nothing clipped, the sections' bar a rail
of icons, long values elided with the whole text at hand, short pages scrolling."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QFocusEvent, QHelpEvent
from PySide6.QtWidgets import QAbstractButton, QApplication, QLabel, QToolButton, QToolTip

from desktop.services.deploy import StackEvent, StackStatus
from desktop.services.environments import Environment
from desktop.views import section_bar
from desktop.views.main_window import MINIMUM_SIZE
from desktop.workers.sandbox import Phase

SMALL = QSize(800, 600)
LONG_URL = "wss://k3x9q2abcd.execute-api.eu-west-1.amazonaws.com/production"
OUTPUTS = {
    "WebSocketUrl": LONG_URL,
    "ManagementApiUrl": f"{LONG_URL.replace('wss:', 'https:')}/@connections",
}


class StackOfOutputs:
    """An engine whose stack is deployed with long outputs (no AWS call)."""

    def status(self) -> StackStatus:
        return StackStatus(
            "classroom-production", "UPDATE_COMPLETE", None, OUTPUTS, [], datetime.now(UTC), None
        )


def clipped(window) -> list[tuple[str, int, int]]:
    """Visible buttons narrower than their text and padding need."""
    return [
        (button.text(), button.width(), button.minimumSizeHint().width())
        for button in window.findChildren(QAbstractButton)
        if button.isVisible() and button.width() < button.minimumSizeHint().width()
    ]


def tooltip_over(qtbot, bar, row: int) -> str:
    """The tooltip the sections' bar shows when the pointer rests on ``row``."""
    QToolTip.hideText()
    qtbot.waitUntil(lambda: not QToolTip.isVisible())
    centre = bar.visualItemRect(bar.item(row)).center()
    event = QHelpEvent(QEvent.Type.ToolTip, centre, bar.viewport().mapToGlobal(centre))
    QApplication.sendEvent(bar.viewport(), event)
    return QToolTip.text() if QToolTip.isVisible() else ""


def sized(qtbot, window, size: QSize):
    window.resize(size)
    qtbot.waitUntil(lambda: window.size() == size)
    qtbot.wait(50)  # the layouts' requests are handled
    return window


def test_the_window_can_be_smaller_than_800_by_600_and_its_layout_fits_that(
    qtbot, open_window
) -> None:
    window = open_window()
    assert window.minimumSize().width() <= SMALL.width()
    assert window.minimumSize().height() <= SMALL.height()
    # At either form of the sections' bar, the layouts need no more than the window has, so Qt
    # never squeezes a widget below its own minimum: at the minimum size with the rail...
    sized(qtbot, window, window.minimumSize())
    assert window.sidebar.compact
    hint = window.minimumSizeHint()
    assert hint.width() <= MINIMUM_SIZE.width(), hint
    assert hint.height() <= MINIMUM_SIZE.height(), hint
    # ...and just wide enough for the full bar.
    sized(qtbot, window, QSize(section_bar.COMPACT_BELOW, MINIMUM_SIZE.height()))
    assert not window.sidebar.compact
    assert window.minimumSizeHint().width() <= section_bar.COMPACT_BELOW


@pytest.mark.parametrize("size", [SMALL, MINIMUM_SIZE], ids=["800x600", "minimum"])
def test_the_running_sandbox_page_is_whole_at_a_small_size(qtbot, open_window, size: QSize) -> None:
    window = sized(qtbot, open_window(), size)
    panel = window.environments_view.sandbox_panel
    panel.start_button.click()
    qtbot.waitUntil(lambda: window.supervisor.state.phase is Phase.RUNNING, timeout=30_000)
    qtbot.wait(50)

    assert window.sidebar.compact and window.sidebar.width() == section_bar.COMPACT_WIDTH
    assert clipped(window) == []
    # The page never scrolls sideways: its content is as wide as the room it has...
    page = panel.page
    assert page.content.width() <= page.viewport().width()
    assert page.content.minimumSizeHint().width() <= page.content.width()
    # ...and when it is taller than the window it scrolls up and down instead of squeezing.
    assert page.content.height() >= page.content.heightForWidth(page.content.width())
    if size.height() < 600:
        assert page.verticalScrollBar().maximum() > 0
    for label in panel.findChildren(QLabel):
        if label.isVisible() and label.wordWrap():
            assert label.height() >= label.heightForWidth(label.width()), label.text()
    # Every URL is whole where it can be copied from.
    state = window.supervisor.state
    assert panel.management_url.text() == state.management_url
    assert panel.management_url.edit.toolTip() == state.management_url


@pytest.mark.qt_log_ignore("This plugin does not support raise")  # a tooltip, offscreen
def test_the_sections_bar_is_a_rail_of_icons_below_its_threshold(qtbot, open_window) -> None:
    window = open_window()
    bar = window.sidebar
    sized(qtbot, window, QSize(section_bar.COMPACT_BELOW + 100, 700))
    assert not bar.compact and bar.width() == section_bar.FULL_WIDTH
    assert clipped(window) == []

    sized(qtbot, window, SMALL)
    assert bar.compact and bar.width() == section_bar.COMPACT_WIDTH
    rows = [bar.visualItemRect(bar.item(row)) for row in range(bar.count())]
    assert all(rect.width() <= bar.viewport().width() for rect in rows)
    assert [bar.item(row).toolTip() for row in range(bar.count())] == [
        "Environments & Deploy (Ctrl+1)",
        "Classrooms (Ctrl+2)",
        "Metrics (Ctrl+3)",
        "Inspector (Ctrl+4)",
    ]
    shown = tooltip_over(qtbot, bar, 1)
    assert shown == "Classrooms (Ctrl+2)"
    # The rail keeps the sections' behaviour: a click, or a shortcut, switches.
    bar.setCurrentRow(2)
    assert window.sections.currentWidget() is window.placeholders["metrics"]
    window.section_actions[0].trigger()
    assert window.sections.currentWidget() is window.environments_view
    assert bar.currentRow() == 0

    sized(qtbot, window, QSize(section_bar.COMPACT_BELOW, 700))
    assert not bar.compact
    assert tooltip_over(qtbot, bar, 1) == ""  # the name is on screen already


def test_the_toolbar_fits_at_800_by_600(qtbot, open_window) -> None:
    window = sized(qtbot, open_window(), SMALL)
    extension = window.toolbar.findChild(QToolButton, "qt_toolbar_ext_button")
    assert extension is None or not extension.isVisible()
    for action in (
        window.start_sandbox_action,
        window.stop_sandbox_action,
        window.deploy_action,
        window.refresh_action,
    ):
        button = window.toolbar.widgetForAction(action)
        assert button.isVisible() and button.width() >= button.sizeHint().width()


def test_an_aws_page_with_long_names_and_urls_is_whole_at_800_by_600(
    qtbot, open_window, settings_path
) -> None:
    window = open_window(engine_factory=lambda _environment: StackOfOutputs())
    environment = window.store.add(
        Environment(
            kind="aws",
            name="school-production-eu-west-1-blue",
            profile="school-admin",
            region="eu-west-1",
            stack_name="classroom-production",
        )
    )
    window.environments_view._reload()
    window.environments_view.select(environment.name)
    view = window.deploy_view
    qtbot.waitUntil(lambda: view.websocket_field.text() == LONG_URL)
    sized(qtbot, window, SMALL)

    assert clipped(window) == []
    assert window.minimumSizeHint().width() <= MINIMUM_SIZE.width()
    # The URL is elided on screen, whole in the tooltip, the Copy button and the field's focus.
    edit = view.websocket_field.edit
    assert "…" in edit.text() and edit.text() != LONG_URL
    assert edit.toolTip() == LONG_URL
    edit.focusInEvent(QFocusEvent(QEvent.Type.FocusIn, Qt.FocusReason.MouseFocusReason))
    assert edit.text() == LONG_URL
    edit.focusOutEvent(QFocusEvent(QEvent.Type.FocusOut, Qt.FocusReason.MouseFocusReason))
    assert "…" in edit.text()
    # The long name wraps rather than widening the page; the status bar's state is elided.
    assert view.title.height() > view.title.fontMetrics().height() * 1.5
    label = window.environment_label
    assert LONG_URL in label.state and LONG_URL not in label.text()
    assert label.toolTip() == label.state

    # A deploy's events: the reason keeps a readable width; the table scrolls sideways.
    view.progress_group.show()
    view.events_model.append_rows(
        [
            StackEvent(
                datetime.now(UTC),
                "Connections",
                "AWS::DynamoDB::Table",
                "CREATE_IN_PROGRESS",
                "Resource creation Initiated",
            )
        ]
    )
    qtbot.wait(50)
    reason = view.events_table.horizontalHeader().sectionSize(
        view.events_table.model().columnCount() - 1
    )
    assert reason >= view.events_table.fontMetrics().horizontalAdvance(
        "Resource creation Initiated"
    )
    assert clipped(window) == []


def test_a_tall_window_gives_the_tables_the_height_without_scrolling_the_page(
    qtbot, open_window
) -> None:
    window = open_window(engine_factory=lambda _environment: StackOfOutputs())
    environment = window.store.add(
        Environment(kind="aws", name="prod", region="eu-west-1", stack_name="classroom-prod")
    )
    window.environments_view._reload()
    window.environments_view.select(environment.name)
    view = window.deploy_view
    qtbot.waitUntil(lambda: view.websocket_field.text() == LONG_URL)
    sized(qtbot, window, QSize(1100, 800))
    view.progress_group.show()
    view.events_model.append_rows(
        [
            StackEvent(
                datetime.now(UTC), f"Function{n}", "AWS::Lambda::Function", "CREATE_COMPLETE"
            )
            for n in range(40)
        ]
    )
    qtbot.wait(50)
    # The page fits: the events table shrank and scrolls, the outputs kept their rows.
    assert view.page.verticalScrollBar().maximum() == 0
    assert view.events_table.verticalScrollBar().maximum() > 0
    assert view.outputs_table.height() >= view.outputs_table.sizeHint().height()
