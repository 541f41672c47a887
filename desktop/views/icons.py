"""The console's few icons, drawn in the palette's text colour so they read in both themes.

Style icons are bitmaps in one colour (and some have opaque backgrounds); these are paths.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QWidget

NAMES = (
    "environments",
    "classrooms",
    "metrics",
    "inspector",
    "start",
    "stop",
    "deploy",
    "refresh",
    "lock",
)


def _draw(painter: QPainter, name: str, s: float) -> None:
    pen = QPen(painter.pen())
    pen.setWidthF(s / 11)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    painter.setPen(pen)
    colour = pen.color()
    if name == "environments":  # a stack of servers
        for row in range(3):
            rect = QRectF(s * 0.12, s * (0.12 + 0.27 * row), s * 0.76, s * 0.2)
            painter.drawRoundedRect(rect, s * 0.05, s * 0.05)
            painter.drawPoint(QPointF(s * 0.24, rect.center().y()))
    elif name == "classrooms":  # people
        for x, y, r in ((0.32, 0.34, 0.12), (0.68, 0.34, 0.12)):
            painter.drawEllipse(QPointF(s * x, s * y), s * r, s * r)
        for x in (0.32, 0.68):
            path = QPainterPath()
            path.moveTo(s * (x - 0.2), s * 0.86)
            path.quadTo(s * x, s * 0.44, s * (x + 0.2), s * 0.86)
            painter.drawPath(path)
    elif name == "metrics":  # a bar chart
        painter.drawLine(QPointF(s * 0.12, s * 0.88), QPointF(s * 0.88, s * 0.88))
        for x, top in ((0.25, 0.55), (0.5, 0.2), (0.75, 0.4)):
            painter.drawLine(QPointF(s * x, s * 0.78), QPointF(s * x, s * top))
    elif name == "inspector":  # a magnifying glass
        painter.drawEllipse(QPointF(s * 0.42, s * 0.42), s * 0.26, s * 0.26)
        painter.drawLine(QPointF(s * 0.62, s * 0.62), QPointF(s * 0.86, s * 0.86))
    elif name == "start":
        path = QPainterPath()
        path.moveTo(s * 0.28, s * 0.16)
        path.lineTo(s * 0.84, s * 0.5)
        path.lineTo(s * 0.28, s * 0.84)
        path.closeSubpath()
        painter.fillPath(path, colour)
    elif name == "stop":
        painter.fillRect(QRectF(s * 0.22, s * 0.22, s * 0.56, s * 0.56), colour)
    elif name == "deploy":  # an arrow up onto a line
        painter.drawLine(QPointF(s * 0.5, s * 0.7), QPointF(s * 0.5, s * 0.14))
        painter.drawLine(QPointF(s * 0.26, s * 0.38), QPointF(s * 0.5, s * 0.14))
        painter.drawLine(QPointF(s * 0.74, s * 0.38), QPointF(s * 0.5, s * 0.14))
        painter.drawLine(QPointF(s * 0.16, s * 0.88), QPointF(s * 0.84, s * 0.88))
    elif name == "refresh":  # a circular arrow
        rect = QRectF(s * 0.18, s * 0.18, s * 0.64, s * 0.64)
        painter.drawArc(rect, 60 * 16, 290 * 16)
        end = math.radians(60)
        tip = QPointF(
            rect.center().x() + rect.width() / 2 * math.cos(end),
            rect.center().y() - rect.height() / 2 * math.sin(end),
        )
        painter.drawLine(tip, tip + QPointF(-s * 0.2, -s * 0.02))
        painter.drawLine(tip, tip + QPointF(s * 0.02, s * 0.2))
    elif name == "lock":  # a padlock: a shackle over a body
        painter.drawArc(QRectF(s * 0.3, s * 0.12, s * 0.4, s * 0.42), 0, 180 * 16)
        painter.drawLine(QPointF(s * 0.3, s * 0.33), QPointF(s * 0.3, s * 0.46))
        painter.drawLine(QPointF(s * 0.7, s * 0.33), QPointF(s * 0.7, s * 0.46))
        painter.drawRoundedRect(QRectF(s * 0.2, s * 0.46, s * 0.6, s * 0.42), s * 0.06, s * 0.06)
    else:
        raise ValueError(f"no icon called {name!r}")


def _pixmap(name: str, colour: QColor, size: int, ratio: float) -> QPixmap:
    pixmap = QPixmap(round(size * ratio), round(size * ratio))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QPen(colour))
    _draw(painter, name, float(size))
    painter.end()
    return pixmap


def icon(name: str, widget: QWidget, size: int = 18) -> QIcon:
    """Icon ``name`` in ``widget``'s text colour, greyed when disabled."""
    palette = widget.palette()
    ratio = widget.devicePixelRatioF()
    result = QIcon()
    result.addPixmap(_pixmap(name, palette.color(QPalette.ColorRole.ButtonText), size, ratio))
    disabled = palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText)
    result.addPixmap(_pixmap(name, disabled, size, ratio), QIcon.Mode.Disabled)
    selected = palette.color(QPalette.ColorRole.HighlightedText)
    result.addPixmap(_pixmap(name, selected, size, ratio), QIcon.Mode.Selected)
    return result
