"""One classroom open in the Inspector: its connection in a worker, and what the tab shows.

``InspectorSession`` holds the stream's rows (capped: the oldest go, and the tab says how many),
the filters, pause and what waits while paused, the members, and what was sent. The connection
(``RoomClient.batches``) runs in a ``GeneratorWorker`` and hands over a batch of events at a
time; a timer moves them into the table a few times a second, so a fast classroom costs one
insert a tick, never one a frame. Every frame is spooled to disk as it arrives (in the worker),
so an export holds the whole session however many rows the cap let go. A session opened from
a file has no connection: the same table and board, offline.
"""

from __future__ import annotations

import bisect
import itertools
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from PySide6.QtCore import QObject, QTimer, Signal

from desktop import messages
from desktop.services import composer, sessions, whiteboard
from desktop.services.classrooms import Classrooms, Member
from desktop.services.errors import ConsoleError
from desktop.services.room import Gap, Received, RoomClient, Status
from desktop.services.stream import StreamRow, note_row, row_for
from desktop.workers.worker import FunctionWorker, GeneratorWorker, start

CAP = 20_000  # rows kept in a tab; the spool keeps every frame for an export
FLUSH_MS = 250  # the table takes a fast classroom's frames four times a second
# Events filed at once: a burst (a catch-up after a reconnect, a sender that stalled and then
# sent what it owed) is filed in shares this big, REST_MS apart, so that a paint and whatever
# else waits (a click) run between them rather than after all of it.
TAKE_MAX = 1_000
REST_MS = 30
GATEWAY_RETRY = ("Internal server error", "Endpoint request timed out")


@dataclass(frozen=True)
class Filters:
    type: str = ""  # "" for every type
    sender: str = ""
    text: str = ""
    regex: bool = False

    def matcher(self) -> Callable[[StreamRow], bool]:
        """The test a row must pass; raises ``re.error`` for a regular expression that is not."""
        pattern = re.compile(self.text) if self.regex and self.text else None
        needle = self.text.casefold()
        sender = self.sender.casefold()

        def passes(row: StreamRow) -> bool:
            if row.kind in ("gap", "note"):
                return not (self.type or self.sender)  # marks show unless narrowed to frames
            if self.type and row.type != self.type:
                return False
            if sender and sender not in row.sender.casefold():
                return False
            if pattern is not None:
                return pattern.search(row.text) is not None
            return not needle or needle in row.text.casefold()

        return passes


@dataclass(frozen=True)
class SendOutcome:
    id: str
    ok: bool
    text: str  # what happened, as a sentence
    retry: bool = False  # a resend with the same id is the safe next step


class Arrival(NamedTuple):
    """A frame as the session files it: its row, its whiteboard reading, and the frame itself
    only when the session acts on it (an ack, an error, a join; not a classroom's messages,
    nearly all of a stream). The connection's worker makes these as each frame arrives, so a
    parsed frame dies there at once instead of waiting for the GUI thread's next tick (a tick
    of frames was enough objects to make the garbage collector's passes stall the console)."""

    row: StreamRow
    board: whiteboard.ReadEntry | None
    frame: dict | None


def arrival(number: int, event: Received) -> Arrival:
    frame = event.frame
    row = row_for(number, event.at, frame, event.size, event.kind, event.json)
    if row.event == "message":
        return Arrival(row, whiteboard.read_message(frame), None)
    return Arrival(row, None, frame)


def _number(row: StreamRow) -> int:
    return row.number


@dataclass(frozen=True)
class OpenedFile:
    """A session file read, its rows made and its board read: what ``load_offline`` files."""

    path: Path
    session: sessions.Session  # its frames are the arrivals, numbered from 1

    @property
    def arrivals(self) -> list[Arrival]:
        return self.session.frames


def _open(path: Path) -> OpenedFile:
    numbers = itertools.count(1)
    return OpenedFile(path, sessions.read(path, lambda event: arrival(next(numbers), event)))


def open_file(path: Path, opened: Callable[[OpenedFile], None], done: Callable[[], None]) -> None:
    """Reads a session file in a worker (a ticket's file may hold tens of thousands of frames,
    each made into a row and read for the board): ``opened`` gets it on the GUI thread; a file
    that is not a session is a sentence to the user; ``done`` is called either way."""
    worker = FunctionWorker(_open, path)
    worker.signals.returned.connect(opened)
    worker.signals.errored.connect(messages.report_error)
    worker.signals.finished.connect(done)  # connected before it starts: it may be quick
    start(worker, report_errors=False)


class InspectorSession(QObject):
    status_changed = Signal(object)  # room.Status
    rows_added = Signal(object)  # list[StreamRow] passing the filters, at the end
    rows_reset = Signal(object)  # list[StreamRow]: the filters changed, cleared, opened
    rows_dropped = Signal(int)  # shown rows the cap let go, from the start
    counts_changed = Signal()  # waiting, dropped, kept
    members_changed = Signal(object)  # list[Member]
    board_read = Signal(object)  # whiteboard.ReadBatch: the new whiteboard messages, read
    sent = Signal(object)  # SendOutcome
    types_changed = Signal(object)  # sorted list of the types seen

    def __init__(
        self,
        room: str,
        service: Classrooms | None,
        environment: str,
        *,
        cap: int = CAP,
        client: RoomClient | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.room = room
        self.service = service
        self.environment = environment
        self.cap = cap
        self.read_only = True
        self.status = Status("closed", "Not joined.")
        self.rows: list[StreamRow] = []  # every row kept, in arrival order
        self.shown: list[StreamRow] = []  # those that pass the filters
        self.waiting: list[StreamRow] = []  # held while paused
        self.dropped = 0
        self.paused = False
        self.filters = Filters()
        self._passes = self.filters.matcher()
        self.members: list[Member] = []
        self.types: set[str] = set()
        self.pending: dict[str, dict] = {}  # sent frames by id, until their answer
        self._numbers = itertools.count(1)
        self._incoming: list = []
        self._worker: GeneratorWorker | None = None
        self.spool: sessions.Spool | None = None
        # ``client`` without a service (a benchmark's feeder): live, members not loaded.
        self.offline = service is None and client is None
        self._client = client
        if not self.offline and client is None:
            self._client = RoomClient(room, lambda: service.join_url(room))
        self._flush = QTimer(self)
        self._flush.setInterval(FLUSH_MS)
        self._flush.timeout.connect(self._take)
        self._rest = QTimer(self)  # the rest of a burst, a share at a time
        self._rest.setSingleShot(True)
        self._rest.setInterval(REST_MS)
        self._rest.timeout.connect(self._take)
        self._members_timer = QTimer(self)
        self._members_timer.setSingleShot(True)
        self._members_timer.setInterval(300)
        self._members_timer.timeout.connect(self.load_members)

    # Life

    def start(self) -> None:
        """Join the classroom unseen: history first, then live."""
        if self.offline or self._worker is not None:
            return
        self.spool = sessions.Spool(self.room, self.environment)
        worker = GeneratorWorker(self._prepared, self.spool.write)
        worker.signals.yielded.connect(self._arrived)
        worker.signals.errored.connect(self._failed)
        worker.signals.finished.connect(self._ended)
        self._worker = worker
        start(worker, report_errors=False)
        self._flush.start()
        self.load_members()

    def stop(self) -> None:
        """Leave the classroom (the tab closes, or the console quits)."""
        self._flush.stop()
        if self._worker is not None:
            self._worker.abort()
        self._take()

    def _ended(self) -> None:
        self._worker = None
        self._take()
        self._flush.stop()

    def close(self) -> None:
        """The tab closes: leave, and forget the spooled session (export it first to keep it)."""
        self.stop()
        if self.spool is not None:
            self.spool.close()
            self.spool = None

    def _failed(self, error: BaseException) -> None:
        messages.report_error(error, context=f"The Inspector's connection to {self.room}")
        self._set_status(Status("closed", messages.sentence(error)))

    def load_offline(self, opened: OpenedFile) -> None:
        """A session from a file (``open_file``): its frames as they came, no connection,
        filed a share at a time like a live burst."""
        count = len(opened.arrivals)
        self.status = Status("closed", f"Opened from a file ({count:,} frames).")
        self.status_changed.emit(self.status)
        self._numbers = itertools.count(count + 1)  # the file's rows are numbered 1 to count
        self._incoming.extend(opened.arrivals)
        self._take()

    # The stream

    def _prepared(self, spool, abort) -> Iterator[list]:
        """In the worker thread: each frame made into its row and read for the board as it
        arrives, so the GUI thread only files them (making rows is most of a fast classroom's
        cost, and the frames need not live until it does)."""
        numbers = self._numbers
        yield from self._client.batches(
            abort, spool=spool, prepare=lambda event: arrival(next(numbers), event)
        )

    def _arrived(self, batch: list) -> None:
        self._incoming.extend(batch)

    def _take(self) -> None:
        """What arrived since the last tick, into the table in one go: up to ``TAKE_MAX``
        events, and the rest ``REST_MS`` later."""
        if not self._incoming:
            return
        if len(self._incoming) > TAKE_MAX:
            events = self._incoming[:TAKE_MAX]
            del self._incoming[:TAKE_MAX]
            self._rest.start()
        else:
            events, self._incoming = self._incoming, []
        added = self._ingest(events)
        if added:
            self.rows_added.emit(added)

    def _ingest(self, events: list[Arrival | Status | Gap]) -> list[StreamRow]:
        new_rows: list[StreamRow] = []
        filled = []
        board: list[whiteboard.ReadEntry] = []
        for event in events:
            if isinstance(event, Arrival):
                row = event.row
                new_rows.append(row)
                if row.kind == "filled":
                    filled.append(row)
                if event.board is not None:
                    board.append(event.board)
                if row.event == "message":
                    if row.type not in self.types:
                        self.types.add(row.type)
                        self.types_changed.emit(sorted(self.types))
                elif row.event in ("join", "leave", "presence"):
                    self._members_timer.start()
                if event.frame is not None:
                    self._answer(event.frame)
            elif isinstance(event, Status):
                note = self._status_note(event)
                self._set_status(event)
                if event.phase == "live":
                    self._members_timer.start()  # with this connection among them
                if note is not None:
                    new_rows.append(note)
            elif isinstance(event, Gap):
                new_rows.append(
                    self._note(
                        "gap",
                        f"Seqs {event.after + 1}-{event.before - 1} missing: asked sync from "
                        f"{event.after}",
                        after=event.after,
                        before=event.before,
                    )
                )
        if filled:
            seqs = [r.seq for r in filled if r.seq is not None]
            span = f" (seqs {min(seqs)}-{max(seqs)})" if seqs else ""
            new_rows.append(self._note("note", f"Caught up {len(filled)} messages with sync{span}"))
        if board:
            self.board_read.emit(whiteboard.ReadBatch(tuple(board)))
        return self._keep(new_rows)

    def _keep(self, new_rows: list[StreamRow]) -> list[StreamRow]:
        """Adds rows, applies the cap; returns the new rows to show (none while paused)."""
        self.rows.extend(new_rows)
        over = len(self.rows) - self.cap
        if over > 0:
            oldest = self.rows[over].number
            del self.rows[:over]
            self.dropped += over
            gone = bisect.bisect_left(self.shown, oldest, key=_number)
            if gone:
                del self.shown[:gone]
                self.rows_dropped.emit(gone)
            del self.waiting[: bisect.bisect_left(self.waiting, oldest, key=_number)]
        oldest = self._oldest()
        visible = [row for row in new_rows if row.number >= oldest and self._passes(row)]
        if self.paused:
            self.waiting.extend(visible)
            visible = []
        else:
            self.shown.extend(visible)
        self.counts_changed.emit()
        return visible

    def _oldest(self) -> int:
        return self.rows[0].number if self.rows else 0

    def _status_note(self, status: Status) -> StreamRow | None:
        previous = self.status.phase
        if status.phase == "reconnecting" and previous == "live":
            when = f"; trying again in {status.retry_in:.0f} s" if status.retry_in else ""
            return self._note("note", f"Connection lost: {status.detail}{when}")
        if status.phase == "live" and previous == "reconnecting":
            return self._note("note", "Connected again: catching up with sync")
        return None

    def _note(self, kind: str, text: str, **fields) -> StreamRow:
        return note_row(self._next(), time.time(), kind, text, **fields)

    def _next(self) -> int:
        return next(self._numbers)  # shared with the worker thread; ``next`` holds the GIL

    def _set_status(self, status: Status) -> None:
        self.status = status
        self.status_changed.emit(status)

    # Pause, filters, clear

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        if not paused and self.waiting:
            resumed, self.waiting = self.waiting, []
            self.shown.extend(resumed)
            self.rows_added.emit(resumed)
        self.counts_changed.emit()

    def set_filters(self, filters: Filters) -> None:
        """Filter the stream; a regular expression that is not one raises ``re.error``."""
        passes = filters.matcher()
        self.filters, self._passes = filters, passes
        if filters == Filters():  # every row: no test of 20,000 rows to say so
            self.shown = list(self.rows)
        else:
            self.shown = [row for row in self.rows if passes(row)]
        self.waiting = []
        self.rows_reset.emit(list(self.shown))
        self.counts_changed.emit()

    def clear(self) -> None:
        """Empties the table (the spool, and so an export, keeps everything)."""
        self.rows, self.shown, self.waiting = [], [], []
        self.dropped = 0
        self.rows_reset.emit([])
        self.counts_changed.emit()

    # Members

    def load_members(self) -> None:
        if self.service is None:
            return
        worker = FunctionWorker(self.service.members, self.room)
        worker.signals.returned.connect(self._members_loaded)
        start(worker, report_errors=False)  # a refresh that fails is tried again at the next join

    def _members_loaded(self, members: list[Member]) -> None:
        self.members = members
        self.members_changed.emit(members)

    # Sending

    def send(self, text: str) -> dict | None:
        """Sends the frame in ``text`` into the classroom (not in read-only mode); returns the
        frame as sent (with its ``id``), or None when it was refused before leaving."""
        if not self._may_send():
            return None
        try:
            frame = composer.checked(text, self.room)
        except composer.FrameRefused as refused:
            messages.error(f"Not sent: {refused}")
            return None
        return self._send(frame)

    def resend(self, frame: dict) -> dict | None:
        """The same frame again, with the same ``id``: stored at most once by the backend."""
        return self._send(frame) if self._may_send() else None

    def _may_send(self) -> bool:
        """False, with a sentence to the user, in read-only mode or for a session from a file."""
        if self.read_only:
            messages.error(
                "Read-only mode: nothing was sent. Unlock changes (Allow Changes in the toolbar) "
                "first."
            )
            return False
        if self.offline or self._client is None:
            messages.error("This session was opened from a file: there is no classroom to send to.")
            return False
        return True

    def _send(self, frame: dict) -> dict:
        client = self._client
        if "id" in frame:
            self.pending[str(frame["id"])] = frame
        worker = FunctionWorker(client.send, frame)
        worker.signals.errored.connect(lambda error: self._send_failed(frame, error))
        start(worker, report_errors=False)
        row = row_for(self._next(), time.time(), frame, 0, "sent")
        added = self._keep([row])
        if added:
            self.rows_added.emit(added)
        return frame

    def _send_failed(self, frame: dict, error: BaseException) -> None:
        frame_id = str(frame.get("id", ""))
        self.pending.pop(frame_id, None)
        text = messages.sentence(error) if isinstance(error, ConsoleError) else str(error)
        self.sent.emit(SendOutcome(frame_id, False, f"Not sent: {text}", retry=True))

    def _answer(self, frame: dict) -> None:
        """An ``ack``, ``error`` or gateway frame for something sent: its outcome."""
        frame_id = frame.get("id")
        if not isinstance(frame_id, str) or frame_id not in self.pending:
            return
        if frame.get("event") == "ack":
            self.pending.pop(frame_id)
            self.sent.emit(
                SendOutcome(frame_id, True, f"Delivered: stored as seq {frame.get('seq')}.")
            )
        elif frame.get("event") == "error":
            self.pending.pop(frame_id)
            code = frame.get("code")
            retry = code in ("unavailable", "internal", "rate_limited")
            advice = " Resend keeps its id, so it is stored at most once." if retry else ""
            self.sent.emit(
                SendOutcome(
                    frame_id, False, f"Refused ({code}): {frame.get('message')}.{advice}", retry
                )
            )
        elif "event" not in frame and "message" in frame:
            retry = True
            self.sent.emit(
                SendOutcome(
                    frame_id,
                    False,
                    f"The gateway answered “{frame.get('message')}”: it may or may not be "
                    "stored. Resend keeps its id, so it is stored at most once.",
                    retry,
                )
            )

    # Export

    def export(self, path: Path) -> int:
        """The whole session (every frame received, not only those kept) to ``path``."""
        if self.spool is None:
            raise ConsoleError("The classroom's stream is closed: there is nothing to export now.")
        return self.spool.export(path)
