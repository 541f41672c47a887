"""Opening a ticket's session file in the Inspector: how long it takes, and the GUI thread's
longest stall meanwhile. Not a test; figures go to docs/benchmarks.md.

A session of ``--frames`` messages of the busy lesson of ``bench/inspector.py`` is spooled and
exported as the Inspector does, then opened with Open Session… (``InspectorView.open_file``)
in a real view at 1280x800, the console's runtime settled as it is at start-up, with the
5 ms heartbeat of ``bench/classrooms.py`` measuring the GUI thread.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication  # noqa: E402

from bench.classrooms import Heartbeat, run_until  # noqa: E402
from bench.inspector import Lesson  # noqa: E402
from desktop import messages  # noqa: E402
from desktop.app import settle  # noqa: E402
from desktop.services import sessions  # noqa: E402
from desktop.services.room import Received  # noqa: E402
from desktop.views.inspector import InspectorView  # noqa: E402

GOAL_STALL_MS = 50


def write_session(path: Path, frames: int) -> None:
    lesson = Lesson()
    spool = sessions.Spool("physics-101", "Local sandbox", folder=path.parent)
    now = time.time()
    for n in range(frames):
        kind, data, (user, role) = lesson.next(clear=n % 20_000 == 19_999)
        frame = {"event": "message", "room": "physics-101", "seq": n + 1, "ts": n,
                 "from": {"userId": user, "role": role}, "type": kind, "data": data}  # fmt: skip
        spool.write(Received(now + n / 1000, frame, 500))
    spool.export(path)
    spool.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=30_000, help="frames in the file (30,000)")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("open-session-bench")
    messages.bus()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ticket.jsonl"
        write_session(path, args.frames)
        size_mb = path.stat().st_size / 1e6
        view = InspectorView()
        view.resize(1280, 800)
        view.show()
        heartbeat = Heartbeat()
        run_until(lambda: False, 0.5, heartbeat)
        settle()
        opened: list = []
        view.file_opened.connect(opened.append)
        started = time.perf_counter()
        view.open_file(path)
        shown = run_until(lambda: bool(opened) and not opened[0].session._incoming, 120, heartbeat)
        ended = time.perf_counter()
        run_until(lambda: False, 0.3, heartbeat)  # the last rows painted
        stall = heartbeat.stall(started, ended)
        tab = opened[0] if opened else None
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"a session of {args.frames:,} frames ({size_mb:.1f} MB)")
    if not shown or tab is None:
        print("NOT met: the file was not shown within 120 s")
        return 1
    print(
        f"  opened and filed in {ended - started:.2f} s: {len(tab.session.rows):,} rows kept "
        f"({tab.session.dropped:,} let go by the cap), {len(tab.board.timeline):,} whiteboard "
        "messages on the board's timeline"
    )
    print(f"  GUI stall: longest {stall['stall_ms']} ms, {stall['over_goal']} gaps over "
          f"{GOAL_STALL_MS} ms in {stall['ticks']} ticks")  # fmt: skip
    met = stall["stall_ms"] < GOAL_STALL_MS
    print(f"{'met' if met else 'NOT met'}: no GUI stall over {GOAL_STALL_MS} ms while opening")
    return 0


if __name__ == "__main__":
    sys.exit(main())
