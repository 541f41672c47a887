"""The console window: title, sections, menus and shortcuts, status bar, remembered settings."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from desktop.services.environments import SANDBOX_NAME
from desktop.views.main_window import SECTION_TITLES, TITLE
from desktop.views.placeholders import PlaceholderView


def test_window_opens_with_its_title_and_sections(open_window) -> None:
    window = open_window()
    assert window.windowTitle() == TITLE == "Classroom Console"
    titles = [window.sidebar.item(row).text() for row in range(window.sidebar.count())]
    assert (
        titles
        == list(SECTION_TITLES)
        == [
            "Environments & Deploy",
            "Classrooms",
            "Metrics",
            "Inspector",
        ]
    )
    assert window.sections.currentWidget() is window.environments_view
    assert window.sections.widget(1) is window.classrooms_view
    assert window.sections.widget(3) is window.inspector_view
    for row in (2,):
        page = window.sections.widget(row)
        assert isinstance(page, PlaceholderView)
        assert page.purpose.text().startswith("This section will")
        assert page.purpose.text().endswith(".")
    menus = [action.text() for action in window.menuBar().actions()]
    assert menus == ["&File", "&Environment", "&View", "&Help"]
    toolbar = [action.text() for action in window.toolbar.actions() if action.text()]
    assert toolbar == ["Start sandbox", "Stop sandbox", "Deploy", "Refresh", "Allow Changes"]
    # The console starts read-only, and says so.
    assert not window.allow_changes_action.isChecked()
    assert window.mode_label.state == "Read-only"


def test_shortcuts_switch_sections_refresh_and_quit(open_window) -> None:
    window = open_window()
    shortcuts = [action.shortcut() for action in window.section_actions]
    assert shortcuts == [QKeySequence(f"Ctrl+{n}") for n in (1, 2, 3, 4)]
    assert window.refresh_action.shortcut() == QKeySequence("Ctrl+R")
    assert window.quit_action.shortcut() == QKeySequence("Ctrl+Q")
    window.section_actions[2].trigger()
    assert window.sections.currentWidget() is window.placeholders["metrics"]
    assert window.section_actions[2].isChecked()
    window.sidebar.setCurrentRow(3)
    assert window.sections.currentWidget() is window.inspector_view
    assert window.section_actions[3].isChecked()
    window.quit_action.trigger()
    assert not window.isVisible()


def test_status_bar_shows_the_current_environment(open_window) -> None:
    window = open_window()
    assert window.session.environment.name == SANDBOX_NAME
    assert window.environment_label.state.endswith(f"{SANDBOX_NAME} · stopped")
    assert not window.deploy_action.isEnabled()
    assert window.start_sandbox_action.isEnabled()
    assert not window.stop_sandbox_action.isEnabled()


def test_geometry_and_section_are_remembered(open_window) -> None:
    window = open_window()
    window.resize(990, 654)  # the offscreen screen is 800 × 800: fit its height
    window.show_section(2)
    window.close()
    again = open_window()
    assert again.size().height() == 654  # the width is clamped to the small screen
    assert again.sections.currentIndex() == 2


def test_theme_can_be_chosen_and_is_remembered(open_window, qapp) -> None:
    window = open_window()
    light = qapp.palette().window().color().lightness()
    window.set_theme("dark")
    assert qapp.palette().window().color().lightness() < 128 <= light
    window.close()
    again = open_window()
    assert again.theme_actions["dark"].isChecked()
    again.set_theme("system")
    assert again.theme_actions["system"].isChecked()


def test_the_system_theme_is_followed_unless_one_was_chosen(open_window, qapp) -> None:
    window = open_window()
    window.set_theme("system")
    hints = qapp.styleHints()
    hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert qapp.palette().window().color().lightness() < 128
    hints.colorSchemeChanged.emit(Qt.ColorScheme.Light)
    assert qapp.palette().window().color().lightness() >= 128
    window.set_theme("light")
    hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert qapp.palette().window().color().lightness() >= 128
    window.set_theme("system")
