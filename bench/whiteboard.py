"""Whiteboard replay: what the Inspector's whiteboard costs the console's GUI thread over a long
session. Not a test; figures go to docs/benchmarks.md ("Whiteboard replay").

A session of ``--messages`` whiteboard-heavy messages (80% strokes of ``--points`` points with
pressure, 8% texts, 10% erases of one earlier stroke, 1% other types) is made up with a fixed
seed, once with a clear every ``--clear-every`` messages on average (a lesson whose teacher wipes
the board now and then) and once with no clear at all (every stroke stays: the worst board).

A live case follows: ``--rate`` strokes a second of 20-50 points (and as many messages of
other types) for ``--seconds``, handed over in 100 ms batches as the Inspector does, each batch
read by ``read_messages`` (the worker thread's share) and applied by ``add_read`` and painted
(the GUI thread's), with a clear every ``--live-clear`` seconds; then the memory the timeline
holds over such a session, bounded and not.

    python bench/whiteboard.py                    # live, then 20,000 messages (about 4 minutes)
    python bench/whiteboard.py --messages 2000    # a quick run
    python bench/whiteboard.py --live-only        # the live case only
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import time
import tracemalloc
from collections.abc import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSize  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from desktop.services.whiteboard import (  # noqa: E402
    MAX_MESSAGES,
    BoardTimeline,
    read_messages,
    replay,
)
from desktop.views.whiteboard import WhiteboardPanel, render  # noqa: E402

FLOOR = 1_712_000_000_000_000


def session(count: int, points: int, clear_every: int | None, seed: int = 1) -> list[dict]:
    rnd = random.Random(seed)
    strokes: list[str] = []
    messages = []
    for n in range(count):
        roll = rnd.random()
        if clear_every and roll < 1 / clear_every:
            kind, data = "whiteboard.clear", {}
            strokes.clear()
        elif roll < 0.81:
            x, y = rnd.uniform(0, 1400), rnd.uniform(0, 850)
            line = [
                [round(x + k * 3, 1), round(y + rnd.uniform(-2, 2), 1), round(rnd.random(), 2)]
                for k in range(points)
            ]
            kind, data = (
                "whiteboard.stroke",
                {
                    "id": f"s{n}",
                    "points": line,
                    "color": "#1f77b4",
                    "width": 4,
                },
            )
            strokes.append(f"s{n}")
        elif roll < 0.89:
            kind, data = (
                "whiteboard.text",
                {
                    "id": f"t{n}",
                    "x": rnd.uniform(0, 1400),
                    "y": rnd.uniform(0, 850),
                    "text": "F = m a",
                    "color": "#222222",
                    "size": 28,
                },
            )
        elif roll < 0.99 and strokes:
            kind, data = "whiteboard.erase", {"ids": [strokes.pop(rnd.randrange(len(strokes)))]}
        else:
            kind, data = "chat.message", {"text": "a question"}
        messages.append(
            {
                "event": "message",
                "room": "physics-101",
                "seq": FLOOR + n + 1,
                "ts": 1_712_000_000_000 + n * 500,
                "from": {"userId": "teacher-1", "role": "teacher"},
                "type": kind,
                "data": data,
                "id": f"c{n}",
            }
        )
    return messages


def best(run, repeat: int = 3) -> float:
    """The best of ``repeat`` runs, in ms (the machine is shared)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def measure(name: str, messages: list[dict], app: QApplication) -> None:
    rnd = random.Random(2)
    live = messages[: len(messages) - 1000]
    # New shapes only: an erase, a clear or a replaced shape draws the whole board again (the
    # render figures below).
    rest = [m for m in messages[len(messages) - 1000 :] if m["type"] != "whiteboard.erase"]
    rest = [m for m in rest if m["type"] != "whiteboard.clear"]
    timeline = BoardTimeline(messages)
    count = len(timeline)
    print(f"{name}: {len(messages):,} messages, {count:,} on the whiteboard")
    print(f"  read them all (set_messages): {best(lambda: BoardTimeline(messages)):.0f} ms")
    middle = timeline.seq_at(count // 2)
    print(
        f"  replay() to the middle, from the raw messages: {best(lambda: replay(messages, middle)):.0f} ms"
    )
    print(
        f"  board_at the end - 1 (the longest replay of read messages): {best(lambda: timeline.board_at(count - 1)):.1f} ms"
    )
    positions = [rnd.randrange(count) for _ in range(200)]
    times = []
    for position in positions:
        start = time.perf_counter()
        timeline.board_at(position)
        times.append((time.perf_counter() - start) * 1000)
    print(
        f"  board_at a random position: mean {statistics.mean(times):.1f} ms, max {max(times):.1f} ms"
    )
    panel = WhiteboardPanel()
    panel.resize(960, 640)
    panel.show()
    app.processEvents()
    panel.set_messages(live)
    panel.canvas.repaint()
    start = time.perf_counter()
    for message in rest:
        panel.add_messages([message])
        panel.canvas.repaint()
    per_batch = (time.perf_counter() - start) / len(rest) * 1000
    print(f"  a live batch of one new shape, held and painted at 960x640: {per_batch:.2f} ms mean")
    largest = max(
        (timeline.board_at(p) for p in range(0, count + 1, max(count // 50, 1))),
        key=lambda b: len(b.shapes),
    )
    for size in (QSize(960, 540), QSize(1920, 1080)):
        shown = best(lambda size=size: render(largest, size))
        print(
            f"  render the fullest board ({len(largest.shapes):,} shapes) at {size.width()}x{size.height()}: {shown:.0f} ms"
        )
    panel.set_messages(messages)
    times = []
    for position in positions[:12]:
        start = time.perf_counter()
        panel.slider.setValue(position)
        panel.canvas.repaint()
        times.append((time.perf_counter() - start) * 1000)
    print(
        f"  a slider move, replayed and painted at 960x640: mean {statistics.mean(times):.0f} ms, max {max(times):.0f} ms"
    )
    panel.close()


BATCH_MS = 100


def live_batches(
    seconds: int, rate: int, clear_every_s: int | None, seed: int = 4
) -> Iterator[list[dict]]:
    """``rate`` strokes a second of 20-50 points with pressure and as many other messages, in
    ``BATCH_MS`` batches, made as they are needed (a live stream holds none of them)."""
    rnd = random.Random(seed)
    per_batch = rate * BATCH_MS // 1000
    seq = FLOOR
    for batch in range(seconds * 1000 // BATCH_MS):
        ts = 1_712_000_000_000 + batch * BATCH_MS
        frames = []
        for _ in range(per_batch):
            x, y = rnd.uniform(0, 1400), rnd.uniform(0, 850)
            line = [
                [round(x + k * 3, 1), round(y + rnd.uniform(-2, 2), 1), round(rnd.random(), 2)]
                for k in range(rnd.randint(20, 50))
            ]
            data = {"id": f"s{seq}", "points": line, "color": "#1f77b4", "width": 4}
            for kind, body in (("whiteboard.stroke", data), ("cursor.move", {"x": x, "y": y})):
                seq += 1
                frames.append(
                    {
                        "event": "message",
                        "room": "physics-101",
                        "seq": seq,
                        "ts": ts,
                        "from": {"userId": "teacher-1", "role": "teacher"},
                        "type": kind,
                        "data": body,
                        "id": f"c{seq}",
                    }
                )
        if clear_every_s and batch and batch % (clear_every_s * 1000 // BATCH_MS) == 0:
            seq += 1
            frames.append({**frames[-1], "seq": seq, "type": "whiteboard.clear", "data": {}})
        yield frames


def spread(times: list[float]) -> str:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"mean {statistics.mean(times):.2f} ms, p99 {p99:.2f} ms, max {max(times):.2f} ms"


def live(seconds: int, rate: int, clear_every_s: int | None, app: QApplication) -> None:
    clears = f"a clear every {clear_every_s} s" if clear_every_s else "no clear"
    print(f"live: {rate:,} strokes a second for {seconds} s in {BATCH_MS} ms batches, {clears}")
    panel = WhiteboardPanel()
    panel.resize(960, 640)
    panel.show()
    app.processEvents()
    read, applied, painted, old = [], [], [], []
    pauses: list[float] = []  # the cyclic collector's, which stop every thread (the GIL)
    began = [0.0]

    def collected(phase: str, info: dict) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses.append((time.perf_counter() - began[0]) * 1000)

    gc.callbacks.append(collected)
    for n, frames in enumerate(live_batches(seconds, rate, clear_every_s)):
        start = time.perf_counter()
        batch = read_messages(frames)
        read_at = time.perf_counter()
        panel.add_read(batch)
        applied_at = time.perf_counter()
        app.processEvents()  # the event loop's turn: one paint for the batch
        painted_at = time.perf_counter()
        read.append((read_at - start) * 1000)
        applied.append((applied_at - read_at) * 1000)
        painted.append((painted_at - applied_at) * 1000)
        if n % 10 == 0:  # what add_messages (reading on the GUI thread) costs, now and then
            again = [{**frame, "seq": frame["seq"] + 10**9} for frame in frames]
            other = BoardTimeline()
            start = time.perf_counter()
            other.add(again)
            old.append((time.perf_counter() - start) * 1000)
    gc.callbacks.remove(collected)
    timeline = panel.timeline
    print(
        f"  garbage collections: {len(pauses):,}, {sum(pauses):.0f} ms, longest {max(pauses):.0f} ms"
    )
    print(f"  read_messages (worker thread) per batch: {spread(read)}")
    print(f"  add_read (GUI thread) per batch:         {spread(applied)}")
    print(f"  the paint that follows (GUI thread):     {spread(painted)}")
    print(f"  add_messages, reading on the GUI thread: mean {statistics.mean(old):.2f} ms")
    print(
        f"  GUI thread a minute: add_read {sum(applied) / seconds * 60 / 1000:.2f} s, "
        f"paint {sum(painted) / seconds * 60 / 1000:.2f} s; "
        f"read off it {sum(read) / seconds * 60 / 1000:.2f} s"
    )
    print(
        f"  at the end: {len(timeline):,} kept, {timeline.dropped:,} let go, "
        f"{len(timeline.latest.shapes):,} shapes on the board, "
        f"{panel.canvas.full_draws} whole-board draws, RSS {rss_mb():.0f} MB"
    )
    panel.close()


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def held(seconds: int, rate: int, clear_every_s: int | None) -> None:
    """The memory a timeline holds (tracemalloc) every 10 s of a live session."""
    for label, bound in ((f"max_messages={MAX_MESSAGES:,}", MAX_MESSAGES), ("no bound", 10**9)):
        gc.collect()
        tracemalloc.start()
        timeline = BoardTimeline(max_messages=bound)
        sizes = []
        per_10s = 10_000 // BATCH_MS
        for n, frames in enumerate(live_batches(seconds, rate, clear_every_s)):
            timeline.add_read(read_messages(frames))
            del frames
            if n % per_10s == per_10s - 1:
                sizes.append(tracemalloc.get_traced_memory()[0] / 2**20)
        tracemalloc.stop()
        del timeline
        shown = ", ".join(f"{size:.0f}" for size in sizes)
        print(f"  memory held every 10 s, {label}: {shown} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--points", type=int, default=60)
    parser.add_argument("--clear-every", type=int, default=200)
    parser.add_argument("--rate", type=int, default=1_000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--live-clear", type=int, default=10)
    parser.add_argument("--live-only", action="store_true")
    options = parser.parse_args()
    app = QApplication([])
    live(options.seconds, options.rate, options.live_clear, app)
    held(options.seconds, options.rate, options.live_clear)
    if options.live_only:
        return
    measure(
        f"a lesson (a clear every {options.clear_every} messages or so)",
        session(options.messages, options.points, options.clear_every),
        app,
    )
    measure("no clear", session(options.messages, options.points, None), app)


if __name__ == "__main__":
    main()
