"""Light and dark themes: Fusion with a palette, following the system unless the user chose.

Qt 6.5+ reports the system's colour scheme (``QStyleHints.colorScheme``) and signals when it
changes; the console repaints with the matching palette. Fusion looks the same on Windows and
macOS and takes a palette fully, so both themes are ours to get right.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

PREFERENCES = ("system", "light", "dark")

_installed: set[int] = set()
_preference = "system"


def preference() -> str:
    return _preference


def is_dark(choice: str | None = None) -> bool:
    choice = choice or _preference
    if choice == "system":
        return QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark
    return choice == "dark"


def apply(app: QApplication, choice: str = "system") -> None:
    """Use ``choice`` (``system``, ``light`` or ``dark``) now and follow the system if asked."""
    global _preference
    _preference = choice if choice in PREFERENCES else "system"
    if app.style().name().lower() != "fusion":
        app.setStyle("Fusion")
    app.setPalette(dark_palette() if is_dark() else light_palette())
    if id(app) not in _installed:
        _installed.add(id(app))
        app.styleHints().colorSchemeChanged.connect(lambda scheme: follow_system(app, scheme))


def follow_system(app: QApplication, scheme: Qt.ColorScheme) -> None:
    """The system switched between light and dark: follow it unless the user chose a theme."""
    if _preference == "system":
        app.setPalette(dark_palette() if scheme == Qt.ColorScheme.Dark else light_palette())


def light_palette() -> QPalette:
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#f6f7f9",
        QPalette.ColorRole.WindowText: "#1f2328",
        QPalette.ColorRole.Base: "#ffffff",
        QPalette.ColorRole.AlternateBase: "#f0f2f5",
        QPalette.ColorRole.ToolTipBase: "#ffffff",
        QPalette.ColorRole.ToolTipText: "#1f2328",
        QPalette.ColorRole.PlaceholderText: "#59636e",
        QPalette.ColorRole.Text: "#1f2328",
        QPalette.ColorRole.Button: "#eef0f3",
        QPalette.ColorRole.ButtonText: "#1f2328",
        QPalette.ColorRole.BrightText: "#ffffff",
        QPalette.ColorRole.Highlight: "#0969da",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#0969da",
        QPalette.ColorRole.Light: "#ffffff",
        QPalette.ColorRole.Midlight: "#e4e7eb",
        QPalette.ColorRole.Mid: "#c8ccd1",
        QPalette.ColorRole.Dark: "#a0a5ab",
        QPalette.ColorRole.Shadow: "#6e7781",
    }
    return _palette(palette, colours, disabled_text="#8c959f")


def dark_palette() -> QPalette:
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#1f2226",
        QPalette.ColorRole.WindowText: "#e6edf3",
        QPalette.ColorRole.Base: "#16181b",
        QPalette.ColorRole.AlternateBase: "#22262b",
        QPalette.ColorRole.ToolTipBase: "#2d333b",
        QPalette.ColorRole.ToolTipText: "#e6edf3",
        QPalette.ColorRole.PlaceholderText: "#9198a1",
        QPalette.ColorRole.Text: "#e6edf3",
        QPalette.ColorRole.Button: "#2b3036",
        QPalette.ColorRole.ButtonText: "#e6edf3",
        QPalette.ColorRole.BrightText: "#ffffff",
        QPalette.ColorRole.Highlight: "#2f81f7",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#58a6ff",
        QPalette.ColorRole.Light: "#3a4048",
        QPalette.ColorRole.Midlight: "#30363d",
        QPalette.ColorRole.Mid: "#262b31",
        QPalette.ColorRole.Dark: "#121416",
        QPalette.ColorRole.Shadow: "#000000",
    }
    return _palette(palette, colours, disabled_text="#6e7681")


def _palette(palette: QPalette, colours: dict, *, disabled_text: str) -> QPalette:
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    for role in (
        QPalette.ColorRole.WindowText,
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
    ):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(disabled_text))
    return palette
