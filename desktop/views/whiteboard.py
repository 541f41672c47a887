"""The Inspector's whiteboard: a classroom's board drawn from its message stream, and a timeline
to replay it to any message.

The board is drawn as the class sees it, white with the members' own colours, in the light and
the dark theme alike: a classroom board looks the same to every member, and support staff
compare what they see with what a teacher describes. A thin border sets it off from the window.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import islice

from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from desktop.models.base import local_time, tone
from desktop.services.whiteboard import (
    BOARD_HEIGHT,
    BOARD_WIDTH,
    MAX_MESSAGES,
    Board,
    BoardTimeline,
    ReadBatch,
    Shape,
    Stroke,
    Text,
    read_messages,
)

BOARD_COLOUR = QColor("#fdfdfb")
BORDER_COLOUR = QColor("#9aa1aa")
PLAY_INTERVAL_MS = 100  # Play shows ten whiteboard messages a second, stroke by stroke
_TEXT_FLAGS = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextDontClip


def board_rect(area: QRectF) -> QRectF:
    """Where the board goes in ``area``: as large as fits at its own aspect ratio, centred,
    one pixel in from the edge so that its border shows."""
    inner = area.adjusted(1, 1, -1, -1)
    scale = max(min(inner.width() / BOARD_WIDTH, inner.height() / BOARD_HEIGHT), 0.0)
    width, height = BOARD_WIDTH * scale, BOARD_HEIGHT * scale
    return QRectF(
        inner.x() + (inner.width() - width) / 2,
        inner.y() + (inner.height() - height) / 2,
        width,
        height,
    )


def to_target(target: QRectF, x: float, y: float) -> QPointF:
    """A point in board units, where it shows in ``target`` (a ``board_rect``)."""
    scale = target.width() / BOARD_WIDTH
    return QPointF(target.x() + x * scale, target.y() + y * scale)


def paint_board(painter: QPainter, board: Board, target: QRectF) -> None:
    """Paint ``board`` into ``target``, its background and border included."""
    if target.width() <= 0 or target.height() <= 0:
        return
    painter.fillRect(target, BOARD_COLOUR)
    paint_shapes(painter, board.shapes.values(), target)
    painter.save()
    painter.setPen(QPen(BORDER_COLOUR, 0))  # cosmetic: one device pixel at any scale
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawRect(target.adjusted(-1, -1, 0, 0))
    painter.restore()


def paint_shapes(painter: QPainter, shapes: Iterable[Shape], target: QRectF) -> None:
    """Paint ``shapes`` over what ``target`` shows already, clipped to it."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
    painter.setClipRect(target)
    painter.translate(target.topLeft())
    scale = target.width() / BOARD_WIDTH
    painter.scale(scale, scale)
    for shape in shapes:
        _paint_shape(painter, shape)
    painter.restore()


def _paint_shape(painter: QPainter, shape: Shape) -> None:
    if isinstance(shape, Stroke):
        _paint_stroke(painter, shape)
    elif isinstance(shape, Text):
        font = QFont()
        font.setPixelSize(max(round(shape.size), 1))
        painter.setFont(font)
        painter.setPen(QColor(shape.color))
        where = QRectF(shape.x, shape.y, BOARD_WIDTH, BOARD_HEIGHT)
        painter.drawText(where, _TEXT_FLAGS, shape.text)


def _paint_stroke(painter: QPainter, stroke: Stroke) -> None:
    colour = QColor(stroke.color)
    xs, ys, pressures = stroke.columns
    if len(xs) == 1:
        radius = stroke.width_at((xs[0], ys[0], pressures[0])) / 2
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawEllipse(QPointF(xs[0], ys[0]), radius, radius)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        return
    pen = QPen(colour, stroke.width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    if stroke.has_pressure:
        # Each segment at the mean of its ends' widths; the round caps join them smoothly.
        widths = [stroke.width * (0.75 + 0.5 * pressure) for pressure in pressures]
        for n in range(len(xs) - 1):
            pen.setWidthF((widths[n] + widths[n + 1]) / 2)
            painter.setPen(pen)
            painter.drawLine(QPointF(xs[n], ys[n]), QPointF(xs[n + 1], ys[n + 1]))
        return
    # Straight through every point sent, as members' clients store it: smoothing through the
    # midpoints, as some pens draw, would cut the corners of a few-point line or arrow.
    path = QPainterPath(QPointF(xs[0], ys[0]))
    for x, y in zip(xs[1:], ys[1:], strict=True):
        path.lineTo(x, y)
    painter.setPen(pen)
    painter.drawPath(path)


def render(board: Board, size: QSize) -> QImage:
    """``board`` drawn to fit an image of ``size``; around the board the image is transparent."""
    image = QImage(size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    paint_board(painter, board, board_rect(QRectF(0, 0, size.width(), size.height())))
    painter.end()
    return image


class WhiteboardCanvas(QWidget):
    """A board scaled to fit the widget at its own aspect ratio.

    Drawing a stroke costs 0.1-0.2 ms (docs/benchmarks.md, "Whiteboard
    replay"), so the canvas keeps the board it drew as an image: a repaint shows that image,
    and a board that only gained shapes since (a live board: the same object, no shape taken
    off or replaced, ``Board.rewrites`` unchanged) gets just the new ones drawn on, found
    from the end without looking at the rest. ``set_board`` only asks for a repaint, which Qt
    does once for any number of calls before the event loop runs again.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._board = Board()
        self._image: QImage | None = None
        # What the image shows: that board, at that many rewrites, its first so many shapes.
        self._drawn: tuple[Board | None, int, int] = (None, 0, 0)
        self.full_draws = 0  # whole boards drawn (for tests and the benchmark)
        self.setAccessibleName("Whiteboard")
        self.setMinimumSize(160, 90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    @property
    def board(self) -> Board:
        return self._board

    def set_board(self, board: Board) -> None:
        """Show ``board``; call again after it changed (a live board grows in place)."""
        self._board = board
        self.update()

    def board_rect(self) -> QRectF:
        """Where the board shows in the widget."""
        return board_rect(QRectF(self.rect()))

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(640, 362)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        image = self._drawn_image()
        painter = QPainter(self)
        painter.drawImage(0, 0, image)
        painter.end()

    def _drawn_image(self) -> QImage:
        ratio = self.devicePixelRatioF()
        size = self.size() * ratio
        board = self._board
        count = len(board.shapes)
        drawn_board, rewrites, drawn = self._drawn
        image = self._image
        if (
            image is None
            or image.size() != size
            or image.devicePixelRatioF() != ratio
            or board is not drawn_board
            or board.rewrites != rewrites
            or count < drawn
        ):
            image = QImage(size, QImage.Format.Format_ARGB32_Premultiplied)
            image.setDevicePixelRatio(ratio)
            image.fill(Qt.GlobalColor.transparent)
            painter = QPainter(image)
            paint_board(painter, board, self.board_rect())
            painter.end()
            self._image = image
            self.full_draws += 1
        elif count > drawn:
            new = list(islice(reversed(board.shapes.values()), count - drawn))
            new.reverse()
            painter = QPainter(image)
            paint_shapes(painter, new, self.board_rect())
            painter.end()
        self._drawn = (board, board.rewrites, count)
        return image


class WhiteboardPanel(QWidget):
    """A classroom's board with a timeline over its whiteboard messages.

    The slider's end is live: new messages move it on while it is there, and leave it where it
    is when it was moved back. Play replays forward from the slider at ``PLAY_INTERVAL_MS`` a
    message and stops, live, at the end. What the panel holds is a ``BoardTimeline``, which
    keeps the latest ``MAX_MESSAGES`` whiteboard messages: the slider runs over those, from the
    board before the oldest kept, and the label says how many older ones were let go. A live
    stream's batches come read already (``add_read``, from ``read_messages`` in the
    Inspector's worker); appending one while live replays nothing and draws only its new
    shapes, when Qt next paints.
    """

    position_changed = Signal()

    def __init__(self, parent: QWidget | None = None, *, max_messages: int = MAX_MESSAGES) -> None:
        super().__init__(parent)
        self._max_messages = max_messages
        self._timeline = BoardTimeline(max_messages=max_messages)
        self._position = 0
        self._replayed: Board | None = None  # the board shown when not live
        self.canvas = WhiteboardCanvas()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setAccessibleName("Whiteboard timeline")
        self.slider.setPageStep(10)
        self.slider.valueChanged.connect(self._move_to)
        self.play_button = QPushButton("Play")
        self.play_button.setToolTip("Replay the board from here, ten messages a second")
        self.play_button.clicked.connect(self._play_or_pause)
        self.position_label = QLabel()
        self.position_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.malformed_label = QLabel()
        self._player = QTimer(self)
        self._player.setInterval(PLAY_INTERVAL_MS)
        self._player.timeout.connect(self._step)

        controls = QHBoxLayout()
        controls.addWidget(self.play_button)
        controls.addWidget(self.slider, 1)
        status = QHBoxLayout()
        status.addWidget(self.position_label, 1)
        status.addWidget(self.malformed_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas, 1)
        layout.addLayout(controls)
        layout.addLayout(status)
        self._show()

    # The Inspector's API.

    def set_messages(self, messages: list[dict]) -> None:
        """Hold a session's messages instead of any before (any types); show the end, live."""
        self._stop()
        self._timeline = BoardTimeline(messages, max_messages=self._max_messages)
        self._position = len(self._timeline)
        self._replayed = None
        self._show()

    def add_messages(self, messages: list[dict]) -> None:
        """Take a batch of new live messages (any types; those not the whiteboard's are
        ignored), reading them here, on the GUI thread: for files and tests. A live stream
        reads its batches in its worker (``read_messages``) and hands them to ``add_read``."""
        self.add_read(read_messages(messages))

    def add_read(self, batch: ReadBatch) -> None:
        """Take a batch of new live messages read by ``read_messages``. While the slider is at
        the end the board moves on with them; moved back, it stays on the board it shows,
        until that board is let go (then it shows the oldest kept)."""
        timeline = self._timeline
        was_live = self.is_live
        shown_seq = self.position_seq
        dropped, folded = timeline.dropped, timeline.folded_late
        if not timeline.add_read(batch):
            return
        if was_live:
            self._position = len(timeline)
        else:
            position = 0 if shown_seq is None else timeline.position_of(shown_seq)
            let_go = timeline.dropped - dropped
            if (
                position != self._position - let_go  # a late message landed before it
                or (position == 0 and let_go > 0)  # it is the base, which moved on
                or timeline.folded_late != folded  # a late one older than the base counted
            ):
                self._replayed = timeline.board_at(position)
            self._position = position
        self._show()

    def clear(self) -> None:
        """Hold nothing: an empty board."""
        self.set_messages([])

    def seek(self, seq: int) -> None:
        """Show the board just after ``seq`` (the end, live, for a seq past the last)."""
        self._move_to(self._timeline.position_of(seq))

    # Read-only state.

    @property
    def timeline(self) -> BoardTimeline:
        return self._timeline

    @property
    def board(self) -> Board:
        """The board shown."""
        return self._timeline.latest if self.is_live else (self._replayed or Board())

    @property
    def position(self) -> int:
        """How many whiteboard messages the board shown is drawn from."""
        return self._position

    @property
    def position_seq(self) -> int | None:
        """The seq of the last whiteboard message drawn, None before the first."""
        return self._timeline.seq_at(self._position)

    @property
    def is_live(self) -> bool:
        return self._position == len(self._timeline)

    @property
    def is_playing(self) -> bool:
        return self._player.isActive()

    @property
    def malformed(self) -> int:
        """Whiteboard messages up to the position shown that drew nothing (malformed)."""
        return self.board.malformed

    # Inside.

    def _move_to(self, position: int) -> None:
        position = max(0, min(position, len(self._timeline)))
        if position == self._position and self.slider.value() == position:
            return
        self._position = position
        self._replayed = None if self.is_live else self._timeline.board_at(position)
        self._show()

    def _play_or_pause(self) -> None:
        if self.is_playing:
            self._stop()
            return
        if not len(self._timeline):
            return
        if self.is_live:  # at the end: play the whole board again
            self._move_to(0)
        self._player.start()
        self.play_button.setText("Pause")

    def _step(self) -> None:
        self._move_to(self._position + 1)
        if self.is_live:
            self._stop()

    def _stop(self) -> None:
        self._player.stop()
        self.play_button.setText("Play")

    def _show(self) -> None:
        count = len(self._timeline)
        self.slider.blockSignals(True)
        self.slider.setRange(0, count)
        self.slider.setValue(self._position)
        self.slider.blockSignals(False)
        self.slider.setEnabled(count > 0)
        self.play_button.setEnabled(count > 0)
        board = self.board
        self.canvas.set_board(board)
        self.position_label.setText(self._describe_position())
        self.position_label.setToolTip(self._describe_window())
        self._show_malformed(board)
        self.position_changed.emit()

    def _describe_position(self) -> str:
        timeline = self._timeline
        count = len(timeline)
        if not count:
            return "No whiteboard messages yet"
        if self._position == 0:
            first = "the first" if not timeline.dropped else "the oldest kept"
            parts = [f"Before {first} of {count:,} whiteboard messages"]
        else:
            ts = timeline.ts_at(self._position)
            when = (
                local_time(datetime.fromtimestamp(ts / 1000, UTC), "%Y-%m-%d %H:%M:%S")
                if ts
                else ""
            )
            parts = [f"Seq {self.position_seq}", when, f"{self._position:,} of {count:,}"]
            if self.is_live:
                parts.append("live")
        if timeline.dropped:
            older = "message" if timeline.dropped == 1 else "messages"
            parts.append(
                f"replay from seq {timeline.seq_at(1)}: {timeline.dropped:,} older {older} let go"
            )
        if timeline.unplaced:
            parts.append(f"{timeline.unplaced:,} late, older still, not drawn")
        return " · ".join(part for part in parts if part)

    def _describe_window(self) -> str:
        timeline = self._timeline
        lines = []
        if timeline.dropped:
            lines.append(
                f"The board keeps the latest {timeline.max_messages:,} whiteboard messages for "
                "replay; the slider's start is the board before the oldest of them, which "
                "the older ones drew."
            )
        if timeline.unplaced:
            lines.append(
                "Some messages caught up late (after a gap) are older than every message kept, "
                "so they could not be put in their place: the board shown may differ from the "
                "class's."
            )
        return "\n".join(lines)

    def _show_malformed(self, board: Board) -> None:
        count = board.malformed
        self.malformed_label.setVisible(count > 0)
        if not count:
            return
        shapes = "shape" if count == 1 else "shapes"
        self.malformed_label.setText(f"{count:,} {shapes} not drawn (malformed)")
        self.malformed_label.setToolTip(
            "Whiteboard messages whose data breaks the shapes of PROTOCOL.md:\n"
            + "\n".join(f"{kind}: {n:,}" for kind, n in sorted(board.malformed_by_type.items()))
        )
        self._colour_malformed()

    def _colour_malformed(self) -> None:
        sheet = f"color: {tone('warn').name()}"
        if sheet != self.malformed_label.styleSheet():
            self.malformed_label.setStyleSheet(sheet)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.PaletteChange:
            self._colour_malformed()
        super().changeEvent(event)
