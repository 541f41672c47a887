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

Replaying to a seq is cheap once each message is read: ``read_messages`` reads a batch once
(off the GUI thread: it shares nothing), ``BoardTimeline`` keeps the latest ``MAX_MESSAGES``
read and replays what it kept (docs/benchmarks.md, "Whiteboard replay").
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from sys import intern
from types import MappingProxyType
from typing import Any, NamedTuple

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


# Shapes and read messages are named tuples of a few strings and numbers, and a stroke keeps its
# points packed in one bytes object: a board's window holds tens of thousands of them, and the
# garbage collector's full passes and the frees at a clear cost in proportion to the objects
# (a tuple a point made a clear of a busy board free over a million).
Point = tuple[float, float, float]
"""A point of a stroke: x, y and the pen's pressure (``NOMINAL_PRESSURE`` when none was sent)."""


class Stroke(NamedTuple):
    """A freehand line through its points, as tldraw's and Excalidraw's pens store one."""

    id: str
    path: bytes  # the points as doubles, x, y and pressure for each (``packed``)
    color: str
    width: float
    seq: int

    @property
    def columns(self) -> tuple[Sequence[float], Sequence[float], Sequence[float]]:
        """The points' xs, ys and pressures (views of ``path``, not copies)."""
        flat = memoryview(self.path).cast("d")
        return flat[0::3], flat[1::3], flat[2::3]

    @property
    def points(self) -> tuple[Point, ...]:
        return tuple(zip(*self.columns, strict=True))

    @property
    def has_pressure(self) -> bool:
        """Whether the width varies along the line (a pen, not a mouse)."""
        return any(pressure != NOMINAL_PRESSURE for pressure in self.columns[2])

    def width_at(self, point: Point) -> float:
        """The width drawn at ``point``: ``width`` at pressure 0.5, from 0.75 to 1.25 times it
        between no pressure and full (perfect-freehand's thinning of 0.5, which tldraw uses)."""
        return self.width * (0.75 + 0.5 * point[2])


def packed(points: Iterable[Point]) -> bytes:
    """Points as a ``Stroke`` keeps them."""
    return array("d", itertools.chain.from_iterable(points)).tobytes()


class Text(NamedTuple):
    """Text whose first line's top-left corner is at ``x``, ``y``; ``size`` is its font's pixel
    size in board units."""

    id: str
    x: float
    y: float
    text: str
    color: str
    size: float
    seq: int


class Erase(NamedTuple):
    ids: tuple[str, ...]


class Clear(NamedTuple):
    pass


Shape = Stroke | Text
Change = Stroke | Text | Erase | Clear


def is_whiteboard(message: Any) -> bool:
    """Whether ``message`` is a frame of the whiteboard's (its ``type`` is ``whiteboard.*``)."""
    if not isinstance(message, dict):
        return False
    kind = message.get("type")
    return isinstance(kind, str) and kind.startswith(PREFIX)


MAX_SEQ = 2**63 - 1  # seqs are stamped from the time in microseconds; a board keeps 64 bits


def message_seq(message: dict) -> int | None:
    """The message's seq, or None when it has none (not a frame from a classroom's log)."""
    seq = message.get("seq")
    if isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq <= MAX_SEQ:
        return seq
    return None


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
            path=_points(data.get("points")),
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
    return intern(colour.lower())  # a board has a few colours and thousands of shapes


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


def _points(points: Any) -> bytes:
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
    return packed(zip(xs, ys, pressures, strict=True))


class ReadEntry(NamedTuple):
    """A whiteboard message as read once: what it changes, or why it draws nothing."""

    seq: int
    ts: int | None
    kind: str
    change: Change | MalformedShape


@dataclass(frozen=True, slots=True)
class ReadBatch:
    """A batch of messages as ``read_messages`` read them: its whiteboard messages with a seq,
    the first of each seq, in seq order. Batches may be joined (``ReadBatch(a.entries +
    b.entries)``): ``add_read`` puts what it is given in order."""

    entries: tuple[ReadEntry, ...] = ()

    def __len__(self) -> int:
        return len(self.entries)


def read_messages(messages: Iterable[dict]) -> ReadBatch:
    """Read a batch of message frames (any types) for ``BoardTimeline.add_read``.

    This is where a stroke's every point is checked, the cost of the whiteboard; it touches no
    shared state (its result holds only new immutable objects), so the Inspector calls it in
    its worker thread and hands the result to the GUI thread. Frames of other types and frames
    without an integer seq are left out; within the batch the first frame of a seq wins. The
    frames must not change while it reads them.
    """
    fresh: dict[int, ReadEntry] = {}
    for message in messages:
        entry = read_message(message)
        if entry is not None and entry.seq not in fresh:
            fresh[entry.seq] = entry
    entries = list(fresh.values())
    if any(a.seq > b.seq for a, b in zip(entries, entries[1:], strict=False)):
        entries.sort(key=lambda entry: entry.seq)
    return ReadBatch(tuple(entries))


def read_message(message: Any) -> ReadEntry | None:
    """One frame as ``read_messages`` reads it: None for a frame of another type or one
    without an integer seq. A live stream reads each frame as it arrives, so the frame can go
    at once; ``BoardTimeline.add_read`` takes the entries of several in any order."""
    if not is_whiteboard(message):
        return None
    seq = message_seq(message)
    return None if seq is None else _read(message, seq)


def _read(message: dict, seq: int) -> ReadEntry:
    kind = intern(message["type"])
    ts = message.get("ts")
    try:
        change: Change | MalformedShape = read_change(kind, message.get("data"), seq)
    except MalformedShape as problem:
        # Without its traceback, which would keep the message's data alive with the entry.
        change = problem.with_traceback(None)
    if not isinstance(ts, int) or isinstance(ts, bool) or not 0 <= ts <= MAX_SEQ:
        ts = None
    return ReadEntry(seq, ts, kind, change)


class Board:
    """The shapes on a classroom's board after the messages applied to it, in drawing order.

    Messages are applied in seq order; one whose seq is not past the last applied is ignored
    (the stream may deliver a seq twice: a resend, a sync overlapping live messages).
    """

    def __init__(self) -> None:
        self._shapes: dict[str, Shape] = {}
        self.seq: int | None = None  # the last whiteboard seq applied
        self.cleared: int | None = None  # the seq of the last clear applied
        self.malformed = 0
        self.malformed_by_type: Counter[str] = Counter()
        # Changes that took a shape off or replaced one; while it stays the same, the board
        # only gained shapes, at the end (what a canvas drawing it in steps needs to know).
        self.rewrites = 0

    @property
    def shapes(self) -> Mapping[str, Shape]:
        """The shapes by id, oldest first (a replaced shape keeps its place)."""
        return MappingProxyType(self._shapes)

    def copy(self) -> Board:
        board = Board()
        board._shapes = dict(self._shapes)
        board.seq = self.seq
        board.cleared = self.cleared
        board.malformed = self.malformed
        board.malformed_by_type = Counter(self.malformed_by_type)
        board.rewrites = self.rewrites
        return board

    def apply(self, message: dict) -> bool:
        """Apply one ``message`` frame; whether it drew (put, replaced, erased or cleared).

        Frames of other types, and frames without an integer seq, are ignored; a malformed
        whiteboard message draws nothing and is counted in ``malformed``.
        """
        seq = message_seq(message) if is_whiteboard(message) else None
        if seq is None or (self.seq is not None and seq <= self.seq):
            return False
        entry = _read(message, seq)
        return self._perform(entry.seq, entry.kind, entry.change)

    def _perform(self, seq: int, kind: str, change: Change | MalformedShape) -> bool:
        self.seq = seq
        shapes = self._shapes
        if isinstance(change, MalformedShape):
            self._count_malformed(kind)
            return False
        if isinstance(change, Clear):
            self.cleared = seq
            if shapes:
                shapes.clear()
                self.rewrites += 1
        elif isinstance(change, Erase):
            for shape_id in change.ids:
                if shapes.pop(shape_id, None) is not None:
                    self.rewrites += 1
        else:
            if change.id in shapes:
                self.rewrites += 1
            shapes[change.id] = change
        return True

    def _count_malformed(self, kind: str) -> None:
        self.malformed += 1
        self.malformed_by_type[kind] += 1


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


MAX_MESSAGES = 20_000  # whiteboard messages a timeline keeps for replay (the Inspector's row cap)
_NO_TIME = -1  # a kept message without a time (times are 0 or more)


class BoardTimeline:
    """A classroom's latest whiteboard messages in seq order, each read once, and the board
    after any of them.

    ``latest`` is the board after all the messages given, kept up to date as they arrive, so a
    live view appends without replaying. The timeline keeps at most ``max_messages`` of them
    for replay: past that the oldest go, their effect folded into ``base``, the board before
    the oldest kept (empty until something was let go; ``dropped`` counts them). Positions
    count kept messages: position 0 is ``base``, position ``len(timeline)`` is ``latest``.
    Reading a message is the cost (a stroke's every point is checked, in ``read_messages``,
    which the Inspector calls off the GUI thread); replaying read messages is a few dictionary
    steps each, so the board at any position is replayed from ``base`` rather than from kept
    copies (docs/benchmarks.md, "Whiteboard replay").

    A message that arrives late (a gap filled by ``sync``) takes its place among the kept ones
    and ``latest`` is replayed from ``base``. One older than everything kept (its neighbours
    were let go) cannot be replayed. When its effect on every kept board is certain it is
    folded in: a malformed one is counted in ``base`` and ``latest``, and anything followed by
    a clear that was let go changes no kept board. Anything else (a shape, an erase or a clear
    before the window with no clear after it) is left out and counted in ``unplaced``:
    ``latest`` and the boards replayed may then differ from the class's board, which the panel
    says. Such a message needs a window's worth of whiteboard messages (20 s at 1,000 strokes
    a second) to arrive between a gap and its sync. The stream (``RoomClient``) delivers each
    seq once, so the timeline does not keep the seqs it let go.
    """

    def __init__(self, messages: Iterable[dict] = (), *, max_messages: int = MAX_MESSAGES) -> None:
        if max_messages < 1:
            raise ValueError("a timeline keeps at least one message")
        self.max_messages = max_messages
        # The kept messages in columns, not an entry object each: seqs and times are arrays
        # (no objects at all), the kinds are a few shared strings, so the garbage collector's
        # full passes visit little more than the shapes.
        self._seqs = array("q")
        self._times = array("q")  # _NO_TIME for a message without one
        self._kinds: list[str] = []
        self._changes: list[Change | MalformedShape] = []
        self.base = Board()
        self.latest = Board()
        self.dropped = 0  # messages let go, folded into base
        self.unplaced = 0  # late messages older than base that could not be replayed
        self.folded_late = 0  # late messages older than base that changed it (malformed ones)
        self.add(messages)

    def __len__(self) -> int:
        return len(self._seqs)

    @property
    def seqs(self) -> Sequence[int]:
        """The kept messages' seqs, in order."""
        return self._seqs

    def seq_at(self, position: int) -> int | None:
        """The seq of the message that ``position`` ends on (None at the start)."""
        return self._seqs[position - 1] if position > 0 else None

    def ts_at(self, position: int) -> int | None:
        """The time (ms since 1970) of the message that ``position`` ends on."""
        if position <= 0:
            return None
        ts = self._times[position - 1]
        return None if ts == _NO_TIME else ts

    def position_of(self, seq: int) -> int:
        """The position just after ``seq``: how many kept messages have a seq up to it (0 for a
        seq let go)."""
        return bisect.bisect_right(self._seqs, seq)

    def clear(self) -> None:
        self._keep([])
        self.base = Board()
        self.latest = Board()
        self.dropped = 0
        self.unplaced = 0
        self.folded_late = 0

    def add(self, messages: Iterable[dict]) -> int:
        """Read and hold the whiteboard messages of a batch (other types, and seqs held
        already, are ignored); how many were new. This reads on the calling thread: for a
        live stream, ``read_messages`` in a worker and ``add_read`` here."""
        return self.add_read(read_messages(messages))

    def add_read(self, batch: ReadBatch) -> int:
        """Hold a batch read by ``read_messages``; how many of its messages were new (seqs held
        already are ignored). Messages past the last held move ``latest`` on in place; one that
        arrives late replays ``latest`` from ``base`` (see the class for one older than it).
        Then the oldest beyond ``max_messages`` are folded into ``base``."""
        base = self.base
        given = batch.entries
        if any(a.seq >= b.seq for a, b in zip(given, given[1:], strict=False)):
            # Not as read_messages leaves a batch (several joined, say): first of a seq wins.
            first: dict[int, ReadEntry] = {}
            for entry in given:
                first.setdefault(entry.seq, entry)
            given = tuple(sorted(first.values(), key=lambda entry: entry.seq))
        entries = []
        before: list[ReadEntry] = []
        for entry in given:
            if base.seq is not None and entry.seq <= base.seq:
                if entry.seq < base.seq and not self._was_held(entry):
                    before.append(entry)
            elif not self._holds(entry.seq):
                entries.append(entry)
        for entry in before:
            self._fold_before(entry)
        if entries:
            perform = self.latest._perform
            if self._seqs and entries[0].seq < self._seqs[-1]:
                self._keep(sorted([*self._entries(), *entries], key=lambda entry: entry.seq))
                self.latest = base.copy()
                self._replay(self.latest, len(self._seqs))
            else:
                for entry in entries:
                    self._seqs.append(entry.seq)
                    self._times.append(_NO_TIME if entry.ts is None else entry.ts)
                    self._kinds.append(entry.kind)
                    self._changes.append(entry.change)
                    perform(entry.seq, entry.kind, entry.change)
            self._let_go(len(self._seqs) - self.max_messages)
        return len(entries) + len(before)

    def board_at(self, position: int) -> Board:
        """The board after the first ``position`` kept messages (a copy the caller may keep)."""
        if position >= len(self._seqs):
            return self.latest.copy()
        board = self.base.copy()
        self._replay(board, max(position, 0))
        return board

    def board_after(self, seq: int) -> Board:
        """The board just after ``seq``, as ``replay(messages, seq)`` would draw it (``base``
        for a seq let go)."""
        return self.board_at(self.position_of(seq))

    def _replay(self, board: Board, count: int) -> None:
        """The first ``count`` kept messages applied to ``board``."""
        perform = board._perform
        for seq, kind, change in zip(
            self._seqs[:count], self._kinds[:count], self._changes[:count], strict=True
        ):
            perform(seq, kind, change)

    def _entries(self) -> list[ReadEntry]:
        """The kept messages as entries again (for the rare re-sort a late message needs)."""
        return [
            ReadEntry(seq, None if ts == _NO_TIME else ts, kind, change)
            for seq, ts, kind, change in zip(
                self._seqs, self._times, self._kinds, self._changes, strict=True
            )
        ]

    def _keep(self, entries: list[ReadEntry]) -> None:
        self._seqs = array("q", [entry.seq for entry in entries])
        self._times = array("q", [_NO_TIME if e.ts is None else e.ts for e in entries])
        self._kinds = [entry.kind for entry in entries]
        self._changes = [entry.change for entry in entries]

    def _let_go(self, count: int) -> None:
        if count <= 0:
            return
        self._replay(self.base, count)
        del self._seqs[:count]
        del self._times[:count]
        del self._kinds[:count]
        del self._changes[:count]
        self.dropped += count

    def _fold_before(self, entry: ReadEntry) -> None:
        """A late message older than ``base``: folded in when its effect is certain."""
        base = self.base
        if isinstance(entry.change, MalformedShape):
            base._count_malformed(entry.kind)
            self.latest._count_malformed(entry.kind)
            self.folded_late += 1
        elif base.cleared is None or base.cleared < entry.seq:
            self.unplaced += 1

    def _was_held(self, entry: ReadEntry) -> bool:
        """Whether a message older than ``base`` is one let go already, as far as the boards
        tell (a shape still on them from that very message)."""
        change = entry.change
        if isinstance(change, Stroke | Text):
            return any(
                getattr(board._shapes.get(change.id), "seq", None) == entry.seq
                for board in (self.base, self.latest)
            )
        return False

    def _holds(self, seq: int) -> bool:
        at = bisect.bisect_left(self._seqs, seq)
        return at < len(self._seqs) and self._seqs[at] == seq
