"""A classroom's whiteboard as data: the shapes its message stream draws, and the board replayed
to any seq.

The platform's whiteboard clients send four message types (PROTOCOL.md, "Whiteboard data"):
``whiteboard.stroke`` and ``whiteboard.text`` put a shape on the board (a shape whose id is
already there replaces it in place, so a client may send a growing stroke again),
``whiteboard.erase`` takes shapes off and ``whiteboard.clear`` empties the board. Anything a
client sends that breaks those shapes draws nothing and is counted, so the inspector can say
that a member's board may not match what it shows.

Coordinates are board units on a fixed board of ``BOARD_WIDTH`` × ``BOARD_HEIGHT`` (16:9,
origin top-left, y down) that every viewer scales to fit: a classroom board shows the same
frame to every member, whatever their window, which an infinite canvas with a camera per user
(as tldraw and Excalidraw have) would not.

Replaying to a seq is cheap once each message is read: ``BoardTimeline`` reads a stream's
messages once and replays what it read (docs/benchmarks.md, "Whiteboard replay").
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

PREFIX = "whiteboard."
STROKE = "whiteboard.stroke"
ERASE = "whiteboard.erase"
TEXT = "whiteboard.text"
CLEAR = "whiteboard.clear"

BOARD_WIDTH = 1600
BOARD_HEIGHT = 900

# Bounds of the contract. A stroke's points fit one 128 KB frame well within these; a longer
# line is sent as several strokes.
COORDINATE_LIMIT = 10_000  # |x| and |y| at most this; what lies off the board is not shown
MAX_POINTS = 5_000
MAX_ID_LENGTH = 128
MAX_ERASE_IDS = 1_000
MAX_TEXT_LENGTH = 2_000
MAX_WIDTH = 100
TEXT_SIZE_RANGE = (4, 400)
NOMINAL_PRESSURE = 0.5  # what a mouse reports (Pointer Events); draws the stroke's own width
COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


class MalformedShape(ValueError):
    """Whiteboard data that breaks its shape; the message says what is wrong, for the user."""


Point = tuple[float, float, float]
"""A point of a stroke: x, y and the pen's pressure (``NOMINAL_PRESSURE`` when none was sent)."""


@dataclass(frozen=True, slots=True)
class Stroke:
    """A freehand line through ``points``, as tldraw's and Excalidraw's pens store one."""

    id: str
    points: tuple[Point, ...]
    color: str
    width: float
    seq: int

    @property
    def has_pressure(self) -> bool:
        """Whether the width varies along the line (a pen, not a mouse)."""
        return any(point[2] != NOMINAL_PRESSURE for point in self.points)

    def width_at(self, point: Point) -> float:
        """The width drawn at ``point``: ``width`` at pressure 0.5, from 0.75 to 1.25 times it
        between no pressure and full (perfect-freehand's thinning of 0.5, which tldraw uses)."""
        return self.width * (0.75 + 0.5 * point[2])


@dataclass(frozen=True, slots=True)
class Text:
    """Text whose first line's top-left corner is at ``x``, ``y``; ``size`` is its font's pixel
    size in board units."""

    id: str
    x: float
    y: float
    text: str
    color: str
    size: float
    seq: int


@dataclass(frozen=True, slots=True)
class Erase:
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Clear:
    pass


Shape = Stroke | Text
Change = Stroke | Text | Erase | Clear


def is_whiteboard(message: Any) -> bool:
    """Whether ``message`` is a frame of the whiteboard's (its ``type`` is ``whiteboard.*``)."""
    if not isinstance(message, dict):
        return False
    kind = message.get("type")
    return isinstance(kind, str) and kind.startswith(PREFIX)


def message_seq(message: dict) -> int | None:
    """The message's seq, or None when it has none (not a frame from a classroom's log)."""
    seq = message.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def read_change(kind: str, data: Any, seq: int = 0) -> Change:
    """The change a ``whiteboard.*`` message of type ``kind`` makes to the board.

    Raises ``MalformedShape`` when ``data`` breaks the shape of its type, or the type is not
    one of the four. Fields the contract does not name are ignored, so clients may add some.
    """
    if kind == CLEAR:
        if data is not None and not isinstance(data, dict):
            raise MalformedShape("a clear's data must be an object or absent")
        return Clear()
    if not isinstance(data, dict):
        raise MalformedShape(f"{kind}'s data must be an object")
    if kind == STROKE:
        return Stroke(
            id=_shape_id(data),
            points=_points(data.get("points")),
            color=_colour(data),
            width=_number(data, "width", 0, MAX_WIDTH, above_low=True),
            seq=seq,
        )
    if kind == TEXT:
        text = data.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT_LENGTH:
            raise MalformedShape(f"text must be a string of 1 to {MAX_TEXT_LENGTH} characters")
        return Text(
            id=_shape_id(data),
            x=_number(data, "x", -COORDINATE_LIMIT, COORDINATE_LIMIT),
            y=_number(data, "y", -COORDINATE_LIMIT, COORDINATE_LIMIT),
            text=text,
            color=_colour(data),
            size=_number(data, "size", *TEXT_SIZE_RANGE),
            seq=seq,
        )
    if kind == ERASE:
        ids = data.get("ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_ERASE_IDS:
            raise MalformedShape(f"ids must be a list of 1 to {MAX_ERASE_IDS} shape ids")
        return Erase(tuple(_id(value) for value in ids))
    raise MalformedShape(f"{kind} is not a whiteboard message type")


def _id(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_LENGTH:
        raise MalformedShape(f"a shape id must be a string of 1 to {MAX_ID_LENGTH} characters")
    return value


def _shape_id(data: dict) -> str:
    return _id(data.get("id"))


def _colour(data: dict) -> str:
    colour = data.get("color")
    if not isinstance(colour, str) or COLOUR.fullmatch(colour) is None:
        raise MalformedShape('color must be "#rrggbb"')
    return colour.lower()


def _in_range(value: Any, low: float, high: float, *, above_low: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    # NaN and the infinities fail these comparisons; huge integers compare exactly.
    return (low < value if above_low else low <= value) and value <= high


def _number(data: dict, field: str, low: float, high: float, *, above_low: bool = False) -> float:
    value: Any = data.get(field)
    if not _in_range(value, low, high, above_low=above_low):
        bounds = f"more than {low} and at most" if above_low else f"from {low} to"
        raise MalformedShape(f"{field} must be a number {bounds} {high}")
    return float(value)


def _points(points: Any) -> tuple[Point, ...]:
    if not isinstance(points, list) or not 1 <= len(points) <= MAX_POINTS:
        raise MalformedShape(f"points must be a list of 1 to {MAX_POINTS} points")
    # This runs for every point of every stroke, so it checks whole columns with builtins
    # (three times faster than a loop over the points).
    low, high = -COORDINATE_LIMIT, COORDINATE_LIMIT
    problem = MalformedShape(
        f"a point must be [x, y] or [x, y, pressure], x and y from {low} to {high}, pressure "
        "from 0 to 1"
    )
    if set(map(type, points)) != {list}:
        raise problem
    lengths = set(map(len, points))
    if not lengths <= {2, 3}:
        raise problem
    if lengths != {3}:
        points = [point if len(point) == 3 else [*point, NOMINAL_PRESSURE] for point in points]
    columns = list(zip(*points, strict=True))
    # JSON gives plain int and float; a boolean's type is bool.
    if not set().union(*(map(type, column) for column in columns)) <= {int, float}:
        raise problem
    try:
        xs, ys, pressures = (tuple(map(float, column)) for column in columns)
    except OverflowError:  # an integer past a double
        raise problem from None
    if not math.isfinite(sum(xs) + sum(ys) + sum(pressures)):  # NaN or an infinity
        raise problem
    if not (
        low <= min(xs)
        and max(xs) <= high
        and low <= min(ys)
        and max(ys) <= high
        and min(pressures) >= 0
        and max(pressures) <= 1
    ):
        raise problem
    return tuple(zip(xs, ys, pressures, strict=True))


@dataclass(frozen=True, slots=True)
class _Entry:
    """A whiteboard message as read once: what it changes, or why it draws nothing."""

    seq: int
    ts: int | None
    kind: str
    change: Change | MalformedShape


def _read(message: dict, seq: int) -> _Entry:
    kind = message["type"]
    ts = message.get("ts")
    try:
        change: Change | MalformedShape = read_change(kind, message.get("data"), seq)
    except MalformedShape as problem:
        change = problem
    return _Entry(
        seq, ts if isinstance(ts, int) and not isinstance(ts, bool) else None, kind, change
    )


class Board:
    """The shapes on a classroom's board after the messages applied to it, in drawing order.

    Messages are applied in seq order; one whose seq is not past the last applied is ignored
    (the stream may deliver a seq twice: a resend, a sync overlapping live messages).
    """

    def __init__(self) -> None:
        self._shapes: dict[str, Shape] = {}
        self.seq: int | None = None  # the last whiteboard seq applied
        self.malformed = 0
        self.malformed_by_type: Counter[str] = Counter()

    @property
    def shapes(self) -> Mapping[str, Shape]:
        """The shapes by id, oldest first (a replaced shape keeps its place)."""
        return MappingProxyType(self._shapes)

    def copy(self) -> Board:
        board = Board()
        board._shapes = dict(self._shapes)
        board.seq = self.seq
        board.malformed = self.malformed
        board.malformed_by_type = Counter(self.malformed_by_type)
        return board

    def apply(self, message: dict) -> bool:
        """Apply one ``message`` frame; whether it drew (put, replaced, erased or cleared).

        Frames of other types, and frames without an integer seq, are ignored; a malformed
        whiteboard message draws nothing and is counted in ``malformed``.
        """
        seq = message_seq(message) if is_whiteboard(message) else None
        if seq is None or (self.seq is not None and seq <= self.seq):
            return False
        return self._perform(_read(message, seq))

    def _perform(self, entry: _Entry) -> bool:
        self.seq = entry.seq
        change = entry.change
        if isinstance(change, MalformedShape):
            self.malformed += 1
            self.malformed_by_type[entry.kind] += 1
            return False
        if isinstance(change, Clear):
            self._shapes.clear()
        elif isinstance(change, Erase):
            for shape_id in change.ids:
                self._shapes.pop(shape_id, None)
        else:
            self._shapes[change.id] = change
        return True


def replay(messages: Iterable[dict], until_seq: int | None = None) -> Board:
    """The board just after ``until_seq`` (all of it when None), from a classroom's messages.

    Each call reads every message; for many replays of one stream use ``BoardTimeline``.
    """
    held = [
        message
        for message in messages
        if is_whiteboard(message) and message_seq(message) is not None
    ]
    held.sort(key=lambda message: message["seq"])
    board = Board()
    for message in held:
        if until_seq is not None and message["seq"] > until_seq:
            break
        board.apply(message)
    return board


class BoardTimeline:
    """A classroom's whiteboard messages in seq order, each read once, and the board after any
    of them.

    ``latest`` is the board after all of them, kept up to date as messages arrive, so a live
    view appends without replaying. Positions count messages: position 0 is the empty board
    before the first, position ``len(timeline)`` is ``latest``. Reading a message is the cost
    (a stroke's every point is checked); replaying read messages is a few dictionary steps
    each, so the board at any position is replayed from the start rather than from kept
    copies (docs/benchmarks.md, "Whiteboard replay").
    """

    def __init__(self, messages: Iterable[dict] = ()) -> None:
        self._seqs: list[int] = []
        self._entries: list[_Entry] = []
        self.latest = Board()
        self.add(messages)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def seqs(self) -> Sequence[int]:
        return self._seqs

    def seq_at(self, position: int) -> int | None:
        """The seq of the message that ``position`` ends on (None at the start)."""
        return self._seqs[position - 1] if position > 0 else None

    def ts_at(self, position: int) -> int | None:
        """The time (ms since 1970) of the message that ``position`` ends on."""
        return self._entries[position - 1].ts if position > 0 else None

    def position_of(self, seq: int) -> int:
        """The position just after ``seq``: how many messages held have a seq up to it."""
        return bisect.bisect_right(self._seqs, seq)

    def clear(self) -> None:
        self._seqs.clear()
        self._entries.clear()
        self.latest = Board()

    def add(self, messages: Iterable[dict]) -> int:
        """Hold the whiteboard messages of a batch (other types, and seqs held already, are
        ignored); how many were new. Messages past the last held move ``latest`` on; one
        that arrives late (a gap filled by ``sync``) replays ``latest`` from the start."""
        fresh: dict[int, _Entry] = {}
        for message in messages:
            if not is_whiteboard(message):
                continue
            seq = message_seq(message)
            if seq is None or seq in fresh or self._holds(seq):
                continue
            fresh[seq] = _read(message, seq)
        if not fresh:
            return 0
        entries = sorted(fresh.values(), key=lambda entry: entry.seq)
        late = bool(self._seqs) and entries[0].seq < self._seqs[-1]
        self._entries.extend(entries)
        if late:
            self._entries.sort(key=lambda entry: entry.seq)
            self._seqs[:] = [entry.seq for entry in self._entries]
            self.latest = Board()
            entries = self._entries
        else:
            self._seqs.extend(entry.seq for entry in entries)
        for entry in entries:
            self.latest._perform(entry)
        return len(fresh)

    def board_at(self, position: int) -> Board:
        """The board after the first ``position`` messages (a copy the caller may keep)."""
        if position >= len(self._entries):
            return self.latest.copy()
        board = Board()
        for entry in self._entries[: max(position, 0)]:
            board._perform(entry)
        return board

    def board_after(self, seq: int) -> Board:
        """The board just after ``seq``, as ``replay(messages, seq)`` would draw it."""
        return self.board_at(self.position_of(seq))

    def _holds(self, seq: int) -> bool:
        at = bisect.bisect_left(self._seqs, seq)
        return at < len(self._seqs) and self._seqs[at] == seq
