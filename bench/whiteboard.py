"""Whiteboard replay: what the Inspector's whiteboard costs the console's GUI thread over a long
session. Not a test; figures go to docs/benchmarks.md ("Whiteboard replay").

A session of ``--messages`` whiteboard-heavy messages (80% strokes of ``--points`` points with
pressure, 8% texts, 10% erases of one earlier stroke, 1% other types) is made up with a fixed
seed, once with a clear every ``--clear-every`` messages on average (a lesson whose teacher wipes
the board now and then) and once with no clear at all (every stroke stays: the worst board).

    python bench/whiteboard.py                    # 20,000 messages (about half a minute)
    python bench/whiteboard.py --messages 2000    # a quick run
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSize  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from desktop.services.whiteboard import BoardTimeline, replay  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--points", type=int, default=60)
    parser.add_argument("--clear-every", type=int, default=200)
    options = parser.parse_args()
    app = QApplication([])
    measure(
        f"a lesson (a clear every {options.clear_every} messages or so)",
        session(options.messages, options.points, options.clear_every),
        app,
    )
    measure("no clear", session(options.messages, options.points, None), app)


if __name__ == "__main__":
    main()
