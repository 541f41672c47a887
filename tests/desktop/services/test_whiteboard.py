"""The whiteboard as data: each shape of PROTOCOL.md's "Whiteboard data", erasing and clearing,
seq order and repeats, malformed data counted and never raised, and replay to a seq."""

from __future__ import annotations

import gc
import json
import math
import random
import threading
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from desktop.services.whiteboard import (
    MAX_POINTS,
    NOMINAL_PRESSURE,
    Board,
    BoardTimeline,
    MalformedShape,
    ReadBatch,
    Stroke,
    Text,
    packed,
    read_change,
    read_messages,
    replay,
)

FLOOR = 1_712_000_000_000_000  # a room's seqs start above its start time in microseconds


def message(seq: int, kind: str, data=None, **fields) -> dict:
    frame = {
        "event": "message",
        "room": "physics-101",
        "seq": seq,
        "ts": 1_712_000_000_000 + seq - FLOOR,
        "from": {"userId": "teacher-1", "role": "teacher"},
        "type": kind,
        "id": f"client-{seq}",
    }
    if data is not None:
        frame["data"] = data
    frame.update(fields)
    return frame


def stroke(seq: int, shape_id: str, points=None, **data) -> dict:
    fields = {"id": shape_id, "points": points or [[100, 100], [200, 100]], "color": "#d62728"}
    fields.update({"width": 4, **data})
    return message(seq, "whiteboard.stroke", fields)


def text(seq: int, shape_id: str, **data) -> dict:
    fields = {"id": shape_id, "x": 40, "y": 60, "text": "F = m a", "color": "#222222"}
    fields.update({"size": 32, **data})
    return message(seq, "whiteboard.text", fields)


def erase(seq: int, *ids: str) -> dict:
    return message(seq, "whiteboard.erase", {"ids": list(ids)})


def clear(seq: int) -> dict:
    return message(seq, "whiteboard.clear", {})


def test_a_stroke_keeps_its_points_colour_width_and_seq() -> None:
    board = Board()
    assert board.apply(stroke(FLOOR + 1, "s1", [[10, 20], [30.5, 40, 1], [50, 60, 0]]))
    (shape,) = board.shapes.values()
    points = ((10.0, 20.0, NOMINAL_PRESSURE), (30.5, 40.0, 1.0), (50.0, 60.0, 0.0))
    assert shape == Stroke(id="s1", path=packed(points), color="#d62728", width=4.0, seq=FLOOR + 1)
    assert shape.points == points
    assert shape.has_pressure
    assert [shape.width_at(point) for point in shape.points] == [4.0, 5.0, 3.0]
    assert board.seq == FLOOR + 1 and board.malformed == 0


def test_a_stroke_without_pressure_draws_its_own_width() -> None:
    shape = read_change("whiteboard.stroke", stroke(1, "s1")["data"])
    assert isinstance(shape, Stroke) and not shape.has_pressure
    assert shape.width_at(shape.points[0]) == shape.width


def test_a_text_keeps_its_place_size_and_lines() -> None:
    board = Board()
    assert board.apply(text(FLOOR + 1, "t1", text="Newton\nF = m a", color="#00AA00"))
    assert board.shapes["t1"] == Text(
        id="t1", x=40.0, y=60.0, text="Newton\nF = m a", color="#00aa00", size=32.0, seq=FLOOR + 1
    )


def test_a_shape_sent_again_replaces_it_in_its_place() -> None:
    board = replay(
        [
            stroke(FLOOR + 1, "a"),
            stroke(FLOOR + 2, "b"),
            stroke(FLOOR + 3, "a", [[1, 1], [2, 2], [3, 3]]),
        ]
    )
    assert list(board.shapes) == ["a", "b"]
    assert len(board.shapes["a"].points) == 3
    assert board.shapes["a"].seq == FLOOR + 3


def test_erase_removes_those_shapes_and_ignores_ids_not_on_the_board() -> None:
    board = Board()
    for frame in (stroke(FLOOR + 1, "a"), text(FLOOR + 2, "b"), stroke(FLOOR + 3, "c")):
        board.apply(frame)
    assert board.apply(erase(FLOOR + 4, "a", "b", "gone-already"))
    assert list(board.shapes) == ["c"]
    assert board.malformed == 0


def test_clear_removes_everything_before_it() -> None:
    board = replay(
        [
            stroke(FLOOR + 1, "a"),
            text(FLOOR + 2, "b"),
            clear(FLOOR + 3),
            stroke(FLOOR + 4, "c"),
        ]
    )
    assert list(board.shapes) == ["c"]
    # Data is optional for a clear (PROTOCOL.md: a send's data is optional).
    assert Board().apply(message(FLOOR + 1, "whiteboard.clear"))


def test_other_types_are_ignored_and_not_counted() -> None:
    board = Board()
    assert not board.apply(message(FLOOR + 1, "chat.message", {"text": "hi"}))
    assert not board.apply(message(FLOOR + 2, "cursor.move", {"x": 1, "y": 2}))
    assert not board.apply({"event": "presence", "members": []})
    assert board.seq is None and board.malformed == 0 and not board.shapes


def test_a_seq_already_applied_is_ignored() -> None:
    board = Board()
    assert board.apply(stroke(FLOOR + 2, "a"))
    # A resend, or a sync overlapping the live stream, delivers the seq again.
    assert not board.apply(stroke(FLOOR + 2, "a"))
    assert not board.apply(erase(FLOOR + 2, "a"))
    assert not board.apply(erase(FLOOR + 1, "a"))  # behind the board
    assert list(board.shapes) == ["a"]
    # A malformed seq is counted once, however often it comes.
    assert not board.apply(stroke(FLOOR + 3, "b", color="red"))
    assert not board.apply(stroke(FLOOR + 3, "b", color="red"))
    assert board.malformed == 1


def test_replay_orders_by_seq_and_stops_after_until_seq() -> None:
    frames = [
        clear(FLOOR + 3),
        stroke(FLOOR + 1, "a"),
        stroke(FLOOR + 4, "b"),
        text(FLOOR + 2, "t"),
    ]
    assert list(replay(frames).shapes) == ["b"]
    assert list(replay(frames, until_seq=FLOOR + 2).shapes) == ["a", "t"]
    assert list(replay(frames, until_seq=FLOOR + 1).shapes) == ["a"]
    assert not replay(frames, until_seq=FLOOR).shapes
    assert replay(frames, until_seq=FLOOR + 2).seq == FLOOR + 2


MALFORMED = [
    ("whiteboard.stroke", None),
    ("whiteboard.stroke", []),
    ("whiteboard.stroke", {"points": [[1, 2]], "color": "#000000", "width": 2}),
    ("whiteboard.stroke", {"id": "", "points": [[1, 2]], "color": "#000000", "width": 2}),
    ("whiteboard.stroke", {"id": "x" * 129, "points": [[1, 2]], "color": "#000000", "width": 2}),
    ("whiteboard.stroke", {"id": 7, "points": [[1, 2]], "color": "#000000", "width": 2}),
    ("whiteboard.stroke", {"id": "s", "points": [], "color": "#000000", "width": 2}),
    ("whiteboard.stroke", {"id": "s", "points": [[1]], "color": "#000000", "width": 2}),
    ("whiteboard.stroke", {"id": "s", "points": [[1, 2, 0.5, 9]], "color": "#000000", "width": 2}),
    ("whiteboard.stroke", {"id": "s", "points": [{"x": 1, "y": 2}], "color": "#000", "width": 2}),
    ("whiteboard.stroke", {"id": "s", "points": [[1, "2"]], "color": "#000000", "width": 2}),
    ("whiteboard.stroke", {"id": "s", "points": [[True, 2]], "color": "#000000", "width": 2}),
    ("whiteboard.stroke", {"id": "s", "points": [[1, 2, 1.5]], "color": "#000000", "width": 2}),
    ("whiteboard.stroke", {"id": "s", "points": [[1, 2, -0.1]], "color": "#000000", "width": 2}),
    ("whiteboard.stroke", {"id": "s", "points": [[10_001, 2]], "color": "#000000", "width": 2}),
    ("whiteboard.stroke", {"id": "s", "points": [[10**400, 2]], "color": "#000000", "width": 2}),
    (
        "whiteboard.stroke",
        {"id": "s", "points": [[math.nan, 10**400]], "color": "#000", "width": 2},
    ),
    ("whiteboard.stroke", {"id": "s", "points": [[1, math.inf]], "color": "#000000", "width": 2}),
    (
        "whiteboard.stroke",
        {"id": "s", "points": [[1, 2]] * (MAX_POINTS + 1), "color": "#000000", "width": 2},
    ),
    ("whiteboard.stroke", {"id": "s", "points": [[1, 2]], "color": "red", "width": 2}),
    ("whiteboard.stroke", {"id": "s", "points": [[1, 2]], "color": "#00000g", "width": 2}),
    ("whiteboard.stroke", {"id": "s", "points": [[1, 2]], "color": "#000000\n", "width": 2}),
    ("whiteboard.stroke", {"id": "s", "points": [[1, 2]], "color": "#000000", "width": 0}),
    ("whiteboard.stroke", {"id": "s", "points": [[1, 2]], "color": "#000000", "width": 101}),
    ("whiteboard.stroke", {"id": "s", "points": [[1, 2]], "color": "#000000", "width": "2"}),
    ("whiteboard.stroke", {"id": "s", "points": [[1, 2]], "color": "#000000", "width": math.nan}),
    ("whiteboard.stroke", {"id": "s", "points": [[1, 2]], "color": "#000000"}),
    ("whiteboard.text", {"id": "t", "x": 1, "y": 2, "text": "", "color": "#000000", "size": 20}),
    ("whiteboard.text", {"id": "t", "x": 1, "y": 2, "text": 5, "color": "#000000", "size": 20}),
    (
        "whiteboard.text",
        {"id": "t", "x": 1, "y": 2, "text": "a" * 2001, "color": "#000000", "size": 20},
    ),
    ("whiteboard.text", {"id": "t", "x": 1, "y": 2, "text": "a", "color": "#000000", "size": 3}),
    ("whiteboard.text", {"id": "t", "x": 1, "y": 2, "text": "a", "color": "#000000", "size": 401}),
    ("whiteboard.text", {"id": "t", "x": 1, "text": "a", "color": "#000000", "size": 20}),
    (
        "whiteboard.text",
        {"id": "t", "x": math.inf, "y": 2, "text": "a", "color": "#000", "size": 20},
    ),
    ("whiteboard.erase", {"ids": []}),
    ("whiteboard.erase", {"ids": "s1"}),
    ("whiteboard.erase", {"ids": ["s1", 2]}),
    ("whiteboard.erase", {"ids": ["s"] * 1001}),
    ("whiteboard.erase", {}),
    ("whiteboard.clear", []),
    ("whiteboard.clear", "all"),
    ("whiteboard.undo", {"id": "s1"}),
]


@pytest.mark.parametrize(("kind", "data"), MALFORMED)
def test_malformed_data_draws_nothing_and_is_counted(kind: str, data) -> None:
    board = Board()
    board.apply(stroke(FLOOR + 1, "keep"))
    frame = message(FLOOR + 2, kind, data)
    if data is None:
        frame.pop("data", None)
    assert not board.apply(frame)
    assert list(board.shapes) == ["keep"]
    assert board.malformed == 1
    assert board.malformed_by_type == {kind: 1}
    assert board.seq == FLOOR + 2
    with pytest.raises(MalformedShape):
        read_change(kind, data)


def test_the_largest_stroke_within_bounds_draws() -> None:
    points = [[-10_000, 10_000, 1]] + [[x % 1600, 450] for x in range(MAX_POINTS - 1)]
    frame = stroke(FLOOR + 1, "s", points, width=100, color="#ABCDEF", extra="ignored")
    assert len(json.dumps(frame)) < 128 * 1024  # it fits one frame
    board = Board()
    assert board.apply(frame)
    assert board.shapes["s"].color == "#abcdef"


def test_a_message_without_an_integer_seq_is_not_a_classrooms_and_is_ignored() -> None:
    board = Board()
    assert not board.apply(stroke(FLOOR + 1, "a") | {"seq": None})
    assert not board.apply(stroke(FLOOR + 1, "a") | {"seq": "1"})
    assert not board.apply(stroke(FLOOR + 1, "a") | {"seq": True})
    assert board.seq is None and board.malformed == 0


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=12,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "id": JSON | st.text(max_size=4),
        "ids": JSON | st.lists(st.text(max_size=4), max_size=4),
        "points": JSON
        | st.lists(st.lists(st.integers(-20_000, 20_000) | st.floats(), max_size=4), max_size=8),
        "color": JSON | st.just("#123abc"),
        "width": JSON,
        "x": JSON,
        "y": JSON,
        "text": JSON,
        "size": JSON,
    },
)
KINDS = st.sampled_from(
    ["whiteboard.stroke", "whiteboard.erase", "whiteboard.text", "whiteboard.clear"]
) | st.text(max_size=20).map(lambda tail: "whiteboard." + tail)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(frames=st.lists(st.tuples(KINDS, FIELDS | JSON), max_size=8))
def test_any_data_draws_or_is_counted_and_never_raises(frames) -> None:
    board = Board()
    for offset, (kind, data) in enumerate(frames, start=1):
        before = board.malformed
        drew = board.apply(message(FLOOR + offset, kind, data))
        assert drew != (board.malformed == before + 1)
    assert board.malformed == sum(board.malformed_by_type.values())
    assert board.seq == (FLOOR + len(frames) if frames else None)
    timeline = BoardTimeline(
        message(FLOOR + n, kind, data) for n, (kind, data) in enumerate(frames, 1)
    )
    assert timeline.latest.shapes == board.shapes
    assert timeline.latest.malformed == board.malformed


def stream() -> list[dict]:
    return [
        stroke(FLOOR + 1, "a"),
        message(FLOOR + 2, "chat.message", {"text": "hello"}),
        text(FLOOR + 3, "t"),
        stroke(FLOOR + 4, "b", color="blue"),  # malformed
        erase(FLOOR + 5, "a"),
        clear(FLOOR + 6),
        stroke(FLOOR + 7, "c"),
    ]


def test_the_timeline_holds_the_whiteboards_messages_and_replays_to_each() -> None:
    frames = stream()
    timeline = BoardTimeline(frames)
    assert list(timeline.seqs) == [FLOOR + n for n in (1, 3, 4, 5, 6, 7)]
    assert len(timeline) == 6
    for seq in range(FLOOR, FLOOR + 9):
        expected = replay(frames, until_seq=seq)
        board = timeline.board_after(seq)
        assert board.shapes == expected.shapes, seq
        assert board.malformed == expected.malformed
        assert board.seq == expected.seq
    assert timeline.seq_at(0) is None and timeline.ts_at(0) is None
    assert timeline.seq_at(2) == FLOOR + 3 and timeline.ts_at(2) == 1_712_000_000_003
    assert list(timeline.latest.shapes) == ["c"]


def test_the_timeline_takes_batches_live_late_and_repeated() -> None:
    frames = stream()
    timeline = BoardTimeline(frames[:3])
    latest = timeline.latest
    assert timeline.add(frames[3:5]) == 2
    assert timeline.latest is latest  # moved on in place, no replay
    assert list(latest.shapes) == ["t"]
    assert timeline.add(frames[:5]) == 0  # every seq held already
    # A gap filled late (a sync after a reconnect): the board replays in seq order.
    assert timeline.add([frames[6], stroke(FLOOR + 3, "x"), frames[5]]) == 2
    assert list(timeline.seqs) == [FLOOR + n for n in (1, 3, 4, 5, 6, 7)]
    assert timeline.latest.shapes == replay(frames).shapes
    # Within one batch the first of a seq wins, as the board keeps the first it applied.
    timeline.add([stroke(FLOOR + 8, "d"), erase(FLOOR + 8, "c")])
    assert list(timeline.latest.shapes) == ["c", "d"]
    timeline.clear()
    assert len(timeline) == 0 and not timeline.latest.shapes


def test_boards_from_the_timeline_are_copies() -> None:
    timeline = BoardTimeline(stream())
    board = timeline.board_at(1)
    board.apply(clear(FLOOR + 100))
    assert list(timeline.board_at(1).shapes) == ["a"]
    assert timeline.board_at(len(timeline)) is not timeline.latest


def test_read_messages_reads_a_batch_in_seq_order_the_first_of_each_seq() -> None:
    frames = stream()
    batch = read_messages([frames[6], *frames[:6], erase(FLOOR + 7, "a"), {"type": "x"}])
    assert isinstance(batch, ReadBatch)
    assert [entry.seq for entry in batch.entries] == [FLOOR + n for n in (1, 3, 4, 5, 6, 7)]
    assert isinstance(batch.entries[-1].change, Stroke)  # the first of seq 7 won
    problem = batch.entries[2].change
    assert isinstance(problem, MalformedShape) and problem.__traceback__ is None
    assert len(read_messages([])) == 0
    # add_read applies what add would have read.
    timeline = BoardTimeline()
    assert timeline.add_read(batch) == 6
    assert timeline.latest.shapes == replay(frames).shapes and timeline.latest.malformed == 1


def test_batches_read_apart_and_joined_apply_as_one() -> None:
    frames = stream()
    late, early = read_messages(frames[4:]), read_messages([*frames[:5], stroke(FLOOR + 7, "x")])
    timeline = BoardTimeline()
    assert timeline.add_read(ReadBatch(late.entries + early.entries)) == 6
    assert list(timeline.seqs) == [FLOOR + n for n in (1, 3, 4, 5, 6, 7)]
    same_board(timeline.latest, replay(frames))  # the first of seq 7 given won


def test_read_messages_shares_nothing_between_threads() -> None:
    frames = lesson_stream(2_000, seed=3)
    batches = [frames[n : n + 100] for n in range(0, len(frames), 100)]
    alone = [read_messages(batch) for batch in batches]
    results: dict[int, ReadBatch] = {}

    def read(first: int) -> None:
        for n in range(first, len(batches), 4):
            results[n] = read_messages(batches[n])

    threads = [threading.Thread(target=read, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    timeline = BoardTimeline()
    for n in range(len(batches)):
        assert [e.seq for e in results[n].entries] == [e.seq for e in alone[n].entries]
        timeline.add_read(results[n])
    assert timeline.latest.shapes == replay(frames).shapes


def lesson_stream(count: int, seed: int = 1, clear_every: int | None = 50) -> list[dict]:
    """Strokes (some sent again, growing), texts, erases, clears, malformed and other types."""
    rnd = random.Random(seed)
    frames = []
    ids: list[str] = []
    for n in range(count):
        seq = FLOOR + 1 + n
        roll = rnd.random()
        if clear_every and roll < 1 / clear_every:
            frames.append(clear(seq))
            ids.clear()
        elif roll < 0.55:
            shape_id = rnd.choice(ids) if ids and rnd.random() < 0.2 else f"s{n}"
            points = [[rnd.uniform(0, 1600), rnd.uniform(0, 900)] for _ in range(3)]
            frames.append(stroke(seq, shape_id, points))
            ids.append(shape_id)
        elif roll < 0.65:
            frames.append(text(seq, f"t{n}"))
        elif roll < 0.8 and ids:
            frames.append(erase(seq, ids.pop(rnd.randrange(len(ids)))))
        elif roll < 0.85:
            frames.append(stroke(seq, f"bad{n}", color="blue"))  # malformed
        else:
            frames.append(message(seq, "chat.message", {"text": "hi"}))
    return frames


def same_board(board: Board, expected: Board) -> None:
    assert list(board.shapes.items()) == list(expected.shapes.items())  # drawing order too
    assert board.malformed == expected.malformed
    assert board.malformed_by_type == expected.malformed_by_type
    assert board.seq == expected.seq


def test_the_timeline_keeps_at_most_its_bound_and_replays_exactly_past_the_fold() -> None:
    frames = lesson_stream(1_500, clear_every=40)
    timeline = BoardTimeline(max_messages=100)
    rnd = random.Random(5)
    at = 0
    while at < len(frames):
        size = rnd.randrange(1, 60)
        batch = frames[at : at + size]
        rnd.shuffle(batch)  # out of order within a batch
        timeline.add(batch)
        at += size
        assert len(timeline) <= 100
        seen = frames[:at]
        same_board(timeline.latest, replay(seen))
    whiteboard = [f for f in frames if f["type"].startswith("whiteboard.")]
    assert timeline.dropped == len(whiteboard) - 100 and len(timeline) == 100
    assert list(timeline.seqs) == [f["seq"] for f in whiteboard[-100:]]
    assert timeline.base.seq == whiteboard[-101]["seq"]
    assert timeline.base.shapes  # the base is the board the older ones drew, not empty
    same_board(timeline.board_at(0), replay(frames, timeline.base.seq))
    for position in range(len(timeline) + 1):
        seq = timeline.seq_at(position) or timeline.base.seq
        expected = replay(frames, seq)
        same_board(timeline.board_at(position), expected)
        same_board(timeline.board_after(seq), expected)
    same_board(timeline.board_after(FLOOR + 1), timeline.base)  # a seq let go: the base


def test_a_late_message_within_the_window_takes_its_place_past_the_fold() -> None:
    frames = lesson_stream(600, seed=7)
    missing = frames[500:510]  # a gap, filled by sync a little later
    timeline = BoardTimeline(max_messages=80)
    for n in range(0, 600, 20):
        timeline.add([f for f in frames[n : n + 20] if f not in missing])
        if n == 540:
            timeline.add(missing)
    assert len(timeline) == 80 and timeline.unplaced == 0
    same_board(timeline.latest, replay(frames))
    for position in range(len(timeline) + 1):
        expected = replay(frames, timeline.seq_at(position) or timeline.base.seq)
        same_board(timeline.board_at(position), expected)


def test_a_late_message_older_than_the_base_is_folded_when_certain_else_counted() -> None:
    frames = [stroke(FLOOR + n, f"s{n}") for n in range(1, 11)]
    frames[4] = clear(FLOOR + 5)
    # Seqs 2 and 3 are missing when the others come, and come after the fold passed them.
    timeline = BoardTimeline(
        [f for f in frames if f["seq"] not in (FLOOR + 2, FLOOR + 3)], max_messages=3
    )
    assert list(timeline.seqs) == [FLOOR + 8, FLOOR + 9, FLOOR + 10]
    bad = stroke(FLOOR + 2, "bad", color="blue")
    # A malformed one is counted everywhere; a shape before a clear let go changes nothing.
    assert timeline.add([bad, frames[2]]) == 2
    full = [f for f in frames if f["seq"] != FLOOR + 2] + [bad]
    same_board(timeline.latest, replay(full))
    same_board(timeline.board_at(0), replay(full, FLOOR + 7))
    assert timeline.unplaced == 0 and timeline.folded_late == 1
    # After the clear: not replayable, counted, left out.
    assert timeline.add([stroke(FLOOR + 6, "late")]) == 1
    assert timeline.unplaced == 1 and "late" not in timeline.latest.shapes
    # A seq let go, sent again, is known as held when the board still shows it.
    assert timeline.add([frames[6]]) == 0 and timeline.add([frames[7]]) == 0
    assert timeline.unplaced == 1
    timeline.clear()
    assert (timeline.dropped, timeline.unplaced, timeline.folded_late) == (0, 0, 0)
    assert not timeline.base.shapes and timeline.base.seq is None


def held_memory(frames: list[dict], max_messages: int) -> list[int]:
    """The memory the timeline's reading left held, after each 2,000 messages given."""
    timeline = BoardTimeline(max_messages=max_messages)
    gc.collect()
    tracemalloc.start()
    try:
        sizes = []
        for n in range(0, len(frames), 100):
            timeline.add_read(read_messages(frames[n : n + 100]))
            if n % 2_000 == 1_900:
                gc.collect()
                sizes.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert len(timeline) <= max_messages
    return sizes


def test_a_long_session_keeps_its_memory_flat() -> None:
    frames = lesson_stream(10_000, seed=11, clear_every=100)
    bounded = held_memory(frames, 1_000)
    # Once the window is full (after 2,000 messages or so), what is held stays about the same.
    settled = bounded[1:]
    assert max(settled) < 1.25 * min(settled), bounded
    # Without the bound it grows with the session.
    unbounded = held_memory(frames, len(frames))
    assert unbounded[-1] > 4 * bounded[-1] and unbounded[-1] > 4 * unbounded[0], unbounded


def test_a_seq_or_time_past_64_bits_is_not_one_a_board_holds() -> None:
    timeline = BoardTimeline()
    huge = stroke(2**64, "far")
    late_clock = stroke(FLOOR + 1, "odd") | {"ts": 2**70}
    assert timeline.add([huge, late_clock]) == 1
    assert list(timeline.seqs) == [FLOOR + 1] and timeline.ts_at(1) is None
    assert list(timeline.latest.shapes) == ["odd"]
