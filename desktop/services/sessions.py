"""Inspector sessions on disk, for a ticket: every frame received, one JSON line each.

A session file starts with a header line, then one line per frame in the order it arrived:

    {"format": "classroom-console-inspector-session", "version": 1, "room": r,
     "environment": e, "startedAt": ms}
    {"receivedAt": ms, "kind": "live" | "history" | "filled", "frame": {...}}

While a classroom is open the console spools its frames to such a file as they arrive (from
the connection's worker thread), so an export holds the whole session however many frames the
table had to let go. ``read`` opens one again, offline.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop.services.errors import ConfigurationError
from desktop.services.room import Received

FORMAT = "classroom-console-inspector-session"
VERSION = 1
SUFFIX = ".jsonl"


@dataclass(frozen=True)
class Session:
    room: str
    environment: str
    started_at: int  # epoch ms
    frames: list[Any]  # Received, or what ``read``'s ``prepare`` made of each
    unreadable: int  # lines that were not a frame (counted, skipped)


class Spool:
    """The frames of one open classroom, written as they arrive to a file of its own."""

    def __init__(self, room: str, environment: str, folder: Path | None = None) -> None:
        handle, name = tempfile.mkstemp(prefix=f"inspector-{room}-", suffix=SUFFIX, dir=folder)
        self.path = Path(name)
        self._file = os.fdopen(handle, "w", encoding="utf-8")
        self._lock = threading.Lock()
        self.frames = 0
        self._line(
            {
                "format": FORMAT,
                "version": VERSION,
                "room": room,
                "environment": environment,
                "startedAt": int(time.time() * 1000),
            }
        )

    def _line(self, record: dict) -> None:
        self._write(json.dumps(record, separators=(",", ":")))

    def _write(self, line: str) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.write(line + "\n")

    def write(self, received: Received) -> None:
        # The frame's own line of JSON, not written out again (one line: see Received.json).
        self._write(
            f'{{"receivedAt":{int(received.at * 1000)},"kind":{json.dumps(received.kind)},'
            f'"frame":{received.json}}}'
        )
        self.frames += 1

    def export(self, destination: Path) -> int:
        """Copies the session so far to ``destination``; returns how many frames it holds."""
        with self._lock:
            self._file.flush()
            try:
                shutil.copyfile(self.path, destination)
            except OSError as error:
                raise ConfigurationError(
                    f"Could not write the session to {destination} ({error.strerror}).",
                    hint="Choose a folder you can write to.",
                ) from None
            return self.frames

    def close(self) -> None:
        with self._lock:
            self._file.close()
        self.path.unlink(missing_ok=True)


def read(path: Path, prepare: Callable[[Received], Any] | None = None) -> Session:
    """A session file as it was exported; a file that is not one is a sentence.

    ``prepare`` stands in for each frame with what it returns, as the file is read, so that
    tens of thousands of parsed frames need not all be alive at once (every one is dozens of
    objects the garbage collector walks while they live)."""
    try:
        # JSON lines end at a newline only: a frame's text may hold a line separator (U+2028)
        # that splitlines would break it at. A file written on Windows ends them with \r\n.
        lines = [line.rstrip("\r") for line in path.read_text(encoding="utf-8").split("\n")]
        lines = lines[:-1] if lines and not lines[-1] else lines
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "it is not text"
        raise ConfigurationError(f"Could not read {path.name} ({reason}).") from None
    header = _json(lines[0]) if lines else None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ConfigurationError(
            f"{path.name} is not an Inspector session.",
            hint="Open a file the Inspector exported (Export Session…).",
        )
    if header.get("version") != VERSION:
        raise ConfigurationError(
            f"{path.name} is an Inspector session of version {header.get('version')}; this "
            f"console reads version {VERSION}.",
            hint="Open it with the console that exported it.",
        )
    frames, unreadable = [], 0
    for line in lines[1:]:
        record = _json(line)
        frame = record.get("frame") if isinstance(record, dict) else None
        at = record.get("receivedAt") if isinstance(record, dict) else None
        if not isinstance(frame, dict) or not isinstance(at, int | float):
            unreadable += 1
            continue
        kind = record.get("kind") if record.get("kind") in ("live", "history", "filled") else "live"
        text = json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
        received = Received(at / 1000, frame, len(text.encode("utf-8")), kind, text)
        frames.append(received if prepare is None else prepare(received))
    return Session(
        room=str(header.get("room", "")),
        environment=str(header.get("environment", "")),
        started_at=int(header.get("startedAt") or 0),
        frames=frames,
        unreadable=unreadable,
    )


def _json(line: str):
    try:
        return json.loads(line)
    except ValueError:
        return None
