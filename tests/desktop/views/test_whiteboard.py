"""The Inspector's whiteboard: the board drawn pixel by pixel, against a reference image, in
both themes; the panel's timeline replaying to a seq, following live messages only from its
end, playing forward, counting malformed shapes, keeping only the latest messages for replay,
and painting a live batch's new shapes only, when Qt paints.

The reference image holds strokes only (fonts differ between machines). To draw it again after
a deliberate change, run ``python -m tests.desktop.views.test_whiteboard`` and look at it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QObject, QRectF, QSize
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QApplication

from desktop.services.whiteboard import read_messages, replay
from desktop.views import theme
from desktop.views import whiteboard as board_view
from desktop.views.whiteboard import (
    BOARD_COLOUR,
    WhiteboardCanvas,
    WhiteboardPanel,
    board_rect,
    render,
    to_target,
)
from tests.desktop.services.test_whiteboard import FLOOR, clear, erase, message, stroke, text

REFERENCE = Path(__file__).parent / "reference" / "whiteboard.png"
REFERENCE_SIZE = QSize(480, 270)
RED = "#d62728"
BLUE = "#1f77b4"


def colour_at(image: QImage, target: QRectF, x: float, y: float) -> str:
    """The colour shown at board point ``x``, ``y`` of ``image``."""
    point = to_target(target, x, y)
    return image.pixelColor(int(point.x()), int(point.y())).name()


def red_line(seq: int = FLOOR + 1) -> dict:
    return stroke(seq, "red", [[100, 450], [1500, 450]], color=RED, width=12)


def blue_line(seq: int) -> dict:
    return stroke(seq, "blue", [[800, 100], [800, 800]], color=BLUE, width=12)


def reference_board_messages() -> list[dict]:
    """Strokes of every kind: plain, with pressure, a dot, one replaced, one erased."""
    wave = [[100 + x * 14, 200 + ((x % 20) - 10) ** 2 * 1.2, x / 100] for x in range(101)]
    return [
        red_line(),
        stroke(FLOOR + 2, "wave", wave, color=BLUE, width=10),
        stroke(FLOOR + 3, "dot", [[1400, 750]], color="#2ca02c", width=60),
        stroke(FLOOR + 4, "gone", [[100, 800], [1500, 100]], color="#000000", width=30),
        stroke(FLOOR + 5, "box", [[300, 600], [700, 600], [700, 850], [300, 850], [300, 600]]),
        erase(FLOOR + 6, "gone"),
        stroke(FLOOR + 7, "box", [[300, 600], [700, 600], [700, 850]], color="#9467bd", width=20),
    ]


def as_array(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), -1)
    return rows[:, : image.width() * 4].reshape(image.height(), image.width(), 4).astype(int)


def test_a_stroke_is_drawn_in_its_colour_scaled_to_fit(qapp) -> None:
    size = QSize(800, 500)  # wider than the board: the board fits the height's way
    image = render(replay([red_line()]), size)
    target = board_rect(QRectF(0, 0, 800, 500))
    assert target.width() / target.height() == pytest.approx(16 / 9)
    assert target.left() == pytest.approx(1)  # as wide as fits, one pixel for the border
    assert colour_at(image, target, 800, 450) == RED  # the line's centre
    assert colour_at(image, target, 100 + 4, 450) == RED  # near its start, inside the cap
    assert colour_at(image, target, 800, 450 - 14) == BOARD_COLOUR.name()  # just above it
    assert colour_at(image, target, 800, 100) == BOARD_COLOUR.name()
    assert colour_at(image, target, 1560, 450) == BOARD_COLOUR.name()  # past its end
    assert image.pixelColor(400, 5).alpha() == 0  # around the board, nothing
    # Smaller, the line is as thin in proportion and still in its place.
    small = render(replay([red_line()]), QSize(320, 180))
    small_target = board_rect(QRectF(0, 0, 320, 180))
    assert colour_at(small, small_target, 800, 450) == RED
    assert colour_at(small, small_target, 800, 450 - 20) == BOARD_COLOUR.name()


def test_pressure_widens_a_stroke(qapp) -> None:
    thin_to_thick = [[100 + x * 14, 450, x / 100] for x in range(101)]
    image = render(
        replay([stroke(FLOOR + 1, "s", thin_to_thick, color=RED, width=40)]), QSize(1602, 902)
    )
    target = board_rect(QRectF(0, 0, 1602, 902))
    # From 30 board units wide at no pressure to 50 at full: 22 above the line is only in the
    # thick end.
    assert colour_at(image, target, 200, 450 - 12) == RED
    assert colour_at(image, target, 200, 450 - 22) == BOARD_COLOUR.name()
    assert colour_at(image, target, 1400, 450 - 22) == RED


def test_the_board_matches_its_reference_image(qapp) -> None:
    image = as_array(render(replay(reference_board_messages()), REFERENCE_SIZE))
    reference = as_array(QImage(str(REFERENCE)))
    assert reference.shape == image.shape
    difference = np.abs(image - reference).max(axis=2)
    # Antialiasing may differ a little between machines along the edges, nowhere else: a
    # missing dot (about 250 pixels) or erase fails this.
    assert (difference > 64).sum() < 50, (difference > 64).sum()
    assert difference.mean() < 0.25


def test_text_is_drawn_in_its_colour_near_its_place(qapp) -> None:
    frame = text(FLOOR + 1, "t", x=200, y=300, text="MMMM", size=120, color="#00aa00")
    image = as_array(render(replay([frame]), QSize(1602, 902)))
    green = (image[..., 1] > 120) & (image[..., 0] < 100) & (image[..., 2] < 100)
    rows, columns = np.nonzero(green)
    assert len(rows) > 2000  # four large letters' worth
    # Loosely, as fonts differ: the text starts at its corner and is about its size.
    assert 195 <= columns.min() <= 240 and 295 <= rows.min() <= 360
    assert rows.max() - rows.min() < 160


def test_the_board_looks_the_same_in_the_dark_theme(qtbot, qapp) -> None:
    canvas = WhiteboardCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(480, 270)
    canvas.set_board(replay([red_line()]))
    light = canvas.grab().toImage()
    original = QApplication.palette()
    try:
        QApplication.setPalette(theme.dark_palette())
        dark = canvas.grab().toImage()
    finally:
        QApplication.setPalette(original)
    target = canvas.board_rect()
    for image in (light, dark):
        assert colour_at(image, target, 800, 450) == RED
        assert colour_at(image, target, 800, 200) == BOARD_COLOUR.name()
    # The border sets the board off from the window in both themes.
    border = QColor(light.pixelColor(int(target.left()) - 1, 135))
    assert border.lightness() < BOARD_COLOUR.lightness() - 60


def test_a_live_board_gains_new_shapes_and_loses_erased_ones(qtbot, monkeypatch) -> None:
    canvas = WhiteboardCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(480, 270)
    board = replay([red_line()])
    canvas.set_board(board)

    def colour(x: float, y: float) -> str:
        return colour_at(canvas.grab().toImage(), canvas.board_rect(), x, y)

    assert colour(800, 450) == RED
    drawn: list[int] = []
    paint_board = board_view.paint_board
    monkeypatch.setattr(
        board_view, "paint_board", lambda *args: (drawn.append(1), paint_board(*args))
    )
    board.apply(blue_line(FLOOR + 2))  # the live board grows in place
    canvas.set_board(board)
    assert colour(800, 200) == BLUE and colour(400, 450) == RED
    assert not drawn  # only the new stroke was drawn, over the image kept
    board.apply(erase(FLOOR + 3, "red"))
    canvas.set_board(board)
    assert colour(400, 450) == BOARD_COLOUR.name() and colour(800, 200) == BLUE
    # The same id again replaces the stroke in its place: drawn again, whole.
    board.apply(stroke(FLOOR + 4, "blue", [[100, 100], [300, 100]], color=RED, width=20))
    canvas.set_board(board)
    assert colour(800, 200) == BOARD_COLOUR.name() and colour(200, 100) == RED
    assert len(drawn) == 2


def shown_panel(qtbot, **options) -> WhiteboardPanel:
    panel = WhiteboardPanel(**options)
    qtbot.addWidget(panel)
    panel.resize(800, 560)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


@pytest.fixture
def panel(qtbot) -> WhiteboardPanel:
    return shown_panel(qtbot)


def shown(panel: WhiteboardPanel, x: float, y: float) -> str:
    return colour_at(panel.canvas.grab().toImage(), panel.canvas.board_rect(), x, y)


def lesson() -> list[dict]:
    return [
        red_line(FLOOR + 1),
        message(FLOOR + 2, "chat.message", {"text": "watch the board"}),
        blue_line(FLOOR + 3),
        clear(FLOOR + 4),
        stroke(FLOOR + 5, "after", [[100, 100], [300, 100]], color="#000000", width=12),
    ]


def test_seeking_back_shows_the_board_before_later_strokes_and_a_clear(panel) -> None:
    panel.set_messages(lesson())
    assert panel.is_live and panel.position_seq == FLOOR + 5
    assert shown(panel, 200, 100) == "#000000"
    assert shown(panel, 800, 300) == BOARD_COLOUR.name()  # cleared
    panel.seek(FLOOR + 3)
    assert not panel.is_live and panel.position_seq == FLOOR + 3
    assert shown(panel, 800, 300) == BLUE and shown(panel, 400, 450) == RED
    panel.seek(FLOOR + 2)  # a chat message's seq: the board just after it
    assert panel.position_seq == FLOOR + 1 and panel.slider.value() == 1
    assert shown(panel, 400, 450) == RED and shown(panel, 800, 300) == BOARD_COLOUR.name()
    panel.slider.setValue(0)
    assert panel.position_seq is None and not panel.board.shapes
    assert panel.position_label.text() == "Before the first of 4 whiteboard messages"
    panel.seek(FLOOR + 99)
    assert panel.is_live and shown(panel, 200, 100) == "#000000"
    assert panel.position_label.text().startswith(f"Seq {FLOOR + 5} · ")
    assert panel.position_label.text().endswith(" · 4 of 4 · live")


def test_the_slider_at_the_end_follows_live_messages_and_moved_back_stays(panel) -> None:
    panel.set_messages(lesson()[:2])
    assert panel.slider.maximum() == 1 and panel.is_live
    panel.add_messages([blue_line(FLOOR + 3), message(FLOOR + 4, "cursor.move", {"x": 1})])
    assert panel.slider.value() == panel.slider.maximum() == 2
    assert shown(panel, 800, 300) == BLUE
    panel.slider.setValue(1)
    panel.add_messages([clear(FLOOR + 5), stroke(FLOOR + 6, "late", [[100, 100], [300, 100]])])
    assert panel.slider.value() == 1 and panel.slider.maximum() == 4
    assert panel.position_seq == FLOOR + 1
    assert shown(panel, 400, 450) == RED and shown(panel, 800, 300) == BOARD_COLOUR.name()
    # Back at the end it follows again.
    panel.slider.setValue(panel.slider.maximum())
    panel.add_messages([stroke(FLOOR + 7, "next", [[100, 800], [300, 800]], color="#000000")])
    assert panel.is_live and panel.position_seq == FLOOR + 7
    assert shown(panel, 200, 800) == "#000000"


def test_a_batch_at_the_live_end_replays_nothing(panel, monkeypatch) -> None:
    panel.set_messages(lesson())
    monkeypatch.setattr(
        panel.timeline, "board_at", lambda position: pytest.fail("replayed for a live batch")
    )
    panel.add_messages([blue_line(FLOOR + 6)])
    assert panel.is_live and "blue" in panel.board.shapes


def test_play_replays_forward_from_the_slider_and_stops_live(qtbot, monkeypatch) -> None:
    monkeypatch.setattr(board_view, "PLAY_INTERVAL_MS", 10)
    panel = WhiteboardPanel()
    qtbot.addWidget(panel)
    panel.set_messages(lesson())
    panel.seek(FLOOR + 1)
    seen: list[int | None] = []
    panel.position_changed.connect(lambda: seen.append(panel.position_seq))
    panel.play_button.click()
    assert panel.is_playing and panel.play_button.text() == "Pause"
    qtbot.waitUntil(lambda: not panel.is_playing)
    assert seen == [FLOOR + 3, FLOOR + 4, FLOOR + 5]
    assert panel.is_live and panel.play_button.text() == "Play"
    # At the end, Play starts again from the empty board; Pause stops where it is.
    panel.play_button.click()
    assert panel.position == 0 and panel.is_playing
    qtbot.waitUntil(lambda: panel.position >= 1)
    panel.play_button.click()
    stopped = panel.position
    assert not panel.is_playing and panel.play_button.text() == "Play"
    assert panel.position == stopped


def test_malformed_shapes_are_counted_and_not_drawn(panel) -> None:
    panel.set_messages([red_line()])
    assert panel.malformed == 0 and not panel.malformed_label.isVisible()
    panel.add_messages(
        [
            stroke(FLOOR + 2, "bad", [[800, 100], [800, 800]], color="blue", width=12),
            message(FLOOR + 3, "whiteboard.undo", {"ids": ["red"]}),
            message(FLOOR + 4, "whiteboard.erase", {"ids": "red"}),
        ]
    )
    assert panel.malformed == 3
    assert panel.malformed_label.isVisible()
    assert panel.malformed_label.text() == "3 shapes not drawn (malformed)"
    assert "whiteboard.undo: 1" in panel.malformed_label.toolTip()
    assert shown(panel, 400, 450) == RED  # the erase did not take it
    assert shown(panel, 800, 300) == BOARD_COLOUR.name()  # the bad stroke is not drawn
    panel.seek(FLOOR + 2)
    assert panel.malformed_label.text() == "1 shape not drawn (malformed)"
    panel.seek(FLOOR + 1)
    assert panel.malformed == 0 and not panel.malformed_label.isVisible()


def test_clear_empties_the_panel(panel) -> None:
    panel.set_messages(lesson())
    panel.clear()
    assert not panel.board.shapes and panel.position_seq is None and panel.is_live
    assert not panel.slider.isEnabled() and not panel.play_button.isEnabled()
    assert panel.position_label.text() == "No whiteboard messages yet"


class Paints(QObject):
    """Counts the paint events a widget gets."""

    def __init__(self, widget) -> None:
        super().__init__(widget)
        self.count = 0
        widget.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Paint:
            self.count += 1
        return False


def test_live_batches_paint_their_new_shapes_once_when_qt_paints(panel, qtbot) -> None:
    panel.set_messages(lesson())
    panel.canvas.repaint()  # the lesson's board drawn whole, once
    QApplication.processEvents()
    paints = Paints(panel.canvas)
    full_draws = panel.canvas.full_draws
    for n in range(3):
        line = [[100 + n * 400, 800], [400 + n * 400, 800]]
        panel.add_read(read_messages([stroke(FLOOR + 10 + n, f"new{n}", line, color=BLUE)]))
    assert paints.count == 0  # asked for, not painted in the call
    assert panel.is_live and panel.slider.value() == panel.slider.maximum() == 7
    qtbot.waitUntil(lambda: paints.count > 0)
    QApplication.processEvents()
    assert paints.count == 1  # three batches, one paint
    assert panel.canvas.full_draws == full_draws  # the new shapes drawn over the image kept
    assert shown(panel, 250, 800) == BLUE and shown(panel, 1050, 800) == BLUE
    # An erase takes a shape off: the whole board is drawn again.
    panel.add_messages([erase(FLOOR + 20, "new0")])
    assert shown(panel, 250, 800) == BOARD_COLOUR.name()
    assert panel.canvas.full_draws == full_draws + 1


def test_the_slider_runs_over_the_messages_kept_and_says_what_was_let_go(qtbot) -> None:
    panel = shown_panel(qtbot, max_messages=3)
    panel.set_messages(lesson())  # four whiteboard messages: the red line is let go
    assert panel.slider.maximum() == 3 and panel.is_live
    assert panel.position_label.text().endswith(
        f" · 3 of 3 · live · replay from seq {FLOOR + 3}: 1 older message let go"
    )
    assert "latest 3" in panel.position_label.toolTip()
    panel.slider.setValue(0)  # the board before the oldest kept: the red line on it
    assert list(panel.board.shapes) == ["red"] and panel.position_seq is None
    assert shown(panel, 400, 450) == RED
    assert panel.position_label.text() == (
        f"Before the oldest kept of 3 whiteboard messages · replay from seq {FLOOR + 3}: "
        "1 older message let go"
    )


def test_moved_back_the_board_stays_until_it_is_let_go(qtbot, monkeypatch) -> None:
    panel = shown_panel(qtbot, max_messages=3)
    panel.set_messages([red_line(FLOOR + 1), blue_line(FLOOR + 2)])
    panel.slider.setValue(1)
    replays: list[int] = []
    board_at = panel.timeline.board_at
    monkeypatch.setattr(
        panel.timeline,
        "board_at",
        lambda position: (replays.append(position), board_at(position))[1],
    )
    panel.add_messages([clear(FLOOR + 3)])
    assert panel.position_seq == FLOOR + 1 and not replays  # nothing to replay for it
    panel.add_messages([stroke(FLOOR + 5, "s5")])  # the red line let go: the board it drew
    assert panel.position == 0 and panel.position_seq is None and replays == [0]
    assert list(panel.board.shapes) == ["red"] and not panel.is_live
    panel.add_messages([stroke(FLOOR + 6, "s6")])  # the start moved on, to the blue line
    assert panel.position == 0 and list(panel.board.shapes) == ["red", "blue"]
    # A late message within the window lands before the board shown: replayed.
    panel.slider.setValue(2)
    assert panel.position_seq == FLOOR + 5 and list(panel.board.shapes) == ["s5"]
    panel.add_messages([text(FLOOR + 4, "late")])
    assert list(panel.timeline.seqs) == [FLOOR + 4, FLOOR + 5, FLOOR + 6]
    assert panel.position_seq == FLOOR + 5 and list(panel.board.shapes) == ["late", "s5"]


if __name__ == "__main__":
    app = QApplication([])
    REFERENCE.parent.mkdir(exist_ok=True)
    render(replay(reference_board_messages()), REFERENCE_SIZE).save(str(REFERENCE))
    print(f"drew {REFERENCE}")
