"""The Classrooms section's state and its calls to the admin function, off the GUI thread.

``ClassroomsPresenter`` holds what the section shows that is not a widget's: the classrooms
found by the last walk of the index, the filters (a room id, a user found by id), the selected
classroom and its members, the ghosts of the last check, the refresh interval and pause, and
read-only mode. Every admin call runs in a worker; results arrive as plain data in signals the
view connects to its models. A result of an environment the console has since left is dropped.

Read-only mode is the default and is enforced here, not only in the buttons: an action asked
for while it is on is refused with a sentence and reaches no backend.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from PySide6.QtCore import QObject, QTimer, Signal

from desktop import messages
from desktop.services.classrooms import (
    CheckResult,
    Classroom,
    Classrooms,
    Ghost,
    Member,
    RoomsPage,
)
from desktop.services.errors import ConsoleError
from desktop.workers.worker import FunctionWorker, GeneratorWorker, start

INTERVALS = (2, 5, 10, 30, 60)
DEFAULT_INTERVAL = 5


@dataclass(frozen=True)
class ListStatus:
    """What the classrooms list is doing, for its status line and empty states."""

    environment: str = ""
    unavailable: str | None = None  # why there is nothing to ask (e.g. the sandbox is stopped)
    loading: bool = False  # a walk is under way
    loaded: int = 0  # classrooms read so far in this walk, or in the last
    total: int = 0  # classrooms in the index
    connections: int = 0
    shown: int = 0  # after the filters
    last_refresh: datetime | None = None
    error: str | None = None
    paused: bool = False


class ClassroomsPresenter(QObject):
    classrooms_changed = Signal(object)  # list[Classroom], filtered, in no particular order
    status_changed = Signal(object)  # ListStatus
    selection_changed = Signal(object)  # str | None
    members_changed = Signal(object, object)  # room, list[Member]
    check_finished = Signal(object)  # CheckResult of the selected classroom
    check_all_progress = Signal(int, int, object)  # checked, of, list[Ghost] found so far
    user_found = Signal(str, object)  # user id, {room: [connection ids]}
    audit_changed = Signal(object)  # list[AuditEntry]
    read_only_changed = Signal(bool)
    action_finished = Signal(str)  # what happened, as a sentence
    busy_changed = Signal(bool)  # an action is running

    def __init__(self, parent: QObject | None = None, *, clock: Callable[[], float] = time.time):
        super().__init__(parent)
        self._clock = clock
        self.service: Classrooms | None = None
        self.environment = ""
        self.unavailable: str | None = "No environment is selected."
        self.rooms: dict[str, Classroom] = {}
        self.totals = (0, 0)
        self.room_filter = ""
        self.user_filter: str | None = None
        self.user_rooms: dict[str, list[str]] | None = None
        self.selected: str | None = None
        self.members: list[Member] = []
        self.members_loaded = False  # the selected classroom's members have been read
        self.ghosts: CheckResult | None = None
        self.interval = DEFAULT_INTERVAL
        self.paused = False
        self.read_only = True
        self.active = False
        self.last_refresh: datetime | None = None
        self.error: str | None = None
        self._generation = 0
        self._walk: GeneratorWorker | None = None
        self._walk_seen: dict[str, Classroom] = {}
        self._check_all: GeneratorWorker | None = None
        self._busy = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)
        # Every outcome also reaches the status bar and the console's log.
        self.action_finished.connect(messages.info)
        # A walk's pages are shown once the pages already waiting have all been read: when the
        # GUI thread falls behind a fast walk (a refresh of unchanged rooms), several pages cost
        # one merge of the list, not one each back to back.
        self._pages_shown = QTimer(self)
        self._pages_shown.setSingleShot(True)
        self._pages_shown.setInterval(0)
        self._pages_shown.timeout.connect(self._emit_rooms)

    # The environment

    def set_service(self, service: Classrooms | None, environment: str, unavailable: str = ""):
        """Operate on ``service`` from now on (None: ``unavailable`` says why there is none)."""
        self._generation += 1
        self._abort_walk()
        self.abort_check_all()
        self.service = service
        self.environment = environment
        self.unavailable = None if service is not None else unavailable or "Not available."
        self.rooms = {}
        self.totals = (0, 0)
        self.last_refresh = None
        self.error = None
        self.user_rooms = None
        self.ghosts = None
        self._select(None)
        self._emit_rooms()
        if service is not None and self.active:
            self.refresh()

    def set_active(self, active: bool) -> None:
        """The section is on screen (refreshes run) or not (they wait)."""
        self.active = active
        if active and self._walk is None:
            self.refresh()
        elif not active:
            self._timer.stop()

    # Refreshing

    def refresh(self) -> None:
        """Walk the classrooms index now (unless a walk is under way)."""
        self._timer.stop()
        if self.service is None or self._walk is not None:
            return
        generation = self._generation
        self._walk_seen = {}
        worker = GeneratorWorker(self.service.walk, dict(self.rooms))
        worker.signals.yielded.connect(lambda page: self._page(generation, page))
        worker.signals.errored.connect(lambda error: self._walk_failed(generation, error))
        worker.signals.finished.connect(lambda: self._walk_ended(generation, worker))
        worker.signals.returned.connect(lambda _: self._walk_done(generation))
        self._walk = worker
        start(worker, report_errors=False)
        self._emit_status()
        if self.selected:
            self._load_members(self.selected)

    def set_interval(self, seconds: int) -> None:
        self.interval = seconds
        self._schedule()

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        if paused:
            self._timer.stop()
        else:
            self._schedule()
        self._emit_status()

    def _page(self, generation: int, page: RoomsPage) -> None:
        if generation != self._generation:
            return
        for row in page.classrooms:
            self._walk_seen[row.room] = row
        self.totals = (page.total_classrooms, page.total_connections)
        # Rooms read in this walk replace what the last one said; the rest stay until it ends.
        self.rooms.update((row.room, row) for row in page.classrooms)
        self._pages_shown.start()

    def _walk_done(self, generation: int) -> None:
        if generation != self._generation:
            return
        self.rooms = dict(self._walk_seen)
        self.last_refresh = datetime.now()
        self.error = None
        self._emit_rooms()

    def _walk_failed(self, generation: int, error: BaseException) -> None:
        if generation != self._generation:
            return
        self.error = messages.sentence(error)
        if not isinstance(error, ConsoleError):
            messages.report_error(error, context="Reading the classrooms failed")

    def _walk_ended(self, generation: int, worker: GeneratorWorker) -> None:
        if self._walk is worker:
            self._walk = None
        if generation == self._generation:
            self._emit_status()
            self._schedule()

    def _schedule(self) -> None:
        if self.service is not None and self.active and not self.paused and self._walk is None:
            self._timer.start(self.interval * 1000)

    def _abort_walk(self) -> None:
        if self._walk is not None:
            self._walk.abort()
            self._walk = None
        self._timer.stop()

    # Filters and selection

    def set_room_filter(self, text: str) -> None:
        self.room_filter = text.strip()
        self._emit_rooms()

    def find_user(self, user_id: str) -> None:
        """Show only the classrooms ``user_id`` is in ("" shows all again)."""
        user_id = user_id.strip()
        self.user_filter = user_id or None
        self.user_rooms = None
        if not user_id:
            self._emit_rooms()
            self._mark_members()
            return
        if self.service is None:
            return
        self._read(self.service.find_user, user_id, done=lambda f: self._user_found(user_id, f))
        self._emit_rooms()

    def _user_found(self, user_id: str, found: dict[str, list[str]]) -> None:
        if user_id != self.user_filter:
            return
        self.user_rooms = found
        self.user_found.emit(user_id, found)
        self._emit_rooms()
        if len(found) == 1:
            self.select(next(iter(found)))
        else:
            self._mark_members()

    def visible(self) -> list[Classroom]:
        """The classrooms that pass the filters."""
        rows = self.rooms.values()
        if self.user_filter is not None:
            found = self.user_rooms or {}
            # A classroom the user is in shows even before a walk has read it.
            rows = [self.rooms.get(room) or Classroom(room) for room in found]
        if self.room_filter:
            needle = self.room_filter.casefold()
            rows = [row for row in rows if needle in row.room.casefold()]
        return list(rows)

    def select(self, room: str | None) -> None:
        if room == self.selected:
            return
        self._select(room)
        if room is not None:
            self._load_members(room)

    def _select(self, room: str | None) -> None:
        self.selected = room
        self.members = []
        self.members_loaded = False
        if self.ghosts is not None and self.ghosts.room != room:
            self.ghosts = None
        self.selection_changed.emit(room)
        self.members_changed.emit(room, [])

    def _load_members(self, room: str) -> None:
        if self.service is not None:
            self._read(self.service.members, room, done=lambda found: self._members(room, found))

    def _members(self, room: str, found: list[Member]) -> None:
        if room != self.selected:
            return
        self.members = found
        self.members_loaded = True
        self.members_changed.emit(room, found)

    def _mark_members(self) -> None:
        if self.selected is not None:
            self.members_changed.emit(self.selected, self.members)

    # Ghosts

    def check(self) -> None:
        """Ask the gateway about every connection of the selected classroom (reads only)."""
        room = self.selected
        if self.service is None or room is None:
            return
        self._run(self.service.check, room, done=self._checked, what="Checking connections")

    def _checked(self, result: CheckResult) -> None:
        self.action_finished.emit(check_sentence(result))
        if result.room == self.selected:
            self.ghosts = result
            self.check_finished.emit(result)
        if result.pruned is not None:
            self.refresh_now()

    def check_all(self) -> None:
        """Check every classroom in the list, a few a second; progress as it goes."""
        if self.service is None or self._check_all is not None:
            return
        rooms = sorted(self.rooms)
        generation = self._generation
        found: list[Ghost] = []
        checked = [0]
        worker = GeneratorWorker(self.service.check_all, rooms)

        def one(result: CheckResult) -> None:
            if generation != self._generation:
                return
            checked[0] += 1
            found.extend(result.ghosts)
            self.check_all_progress.emit(checked[0], len(rooms), list(found))

        def ended() -> None:
            if self._check_all is worker:
                self._check_all = None
            if generation == self._generation:
                ghosts = len(found)
                self.action_finished.emit(
                    f"Checked {checked[0]} of {len(rooms)} classrooms: "
                    + (
                        f"{ghosts} ghost connection{'s' if ghosts != 1 else ''} found."
                        if ghosts
                        else "no ghost connections."
                    )
                )
                self.check_all_progress.emit(checked[0], len(rooms), list(found))

        worker.signals.yielded.connect(one)
        worker.signals.errored.connect(lambda error: self._failed(generation, error))
        worker.signals.finished.connect(ended)
        self._check_all = worker
        start(worker, report_errors=False)
        self.check_all_progress.emit(0, len(rooms), [])

    @property
    def checking_all(self) -> bool:
        return self._check_all is not None

    def abort_check_all(self) -> None:
        if self._check_all is not None:
            self._check_all.abort()

    # Actions (refused in read-only mode)

    def set_read_only(self, read_only: bool) -> None:
        if read_only != self.read_only:
            self.read_only = read_only
            self.read_only_changed.emit(read_only)

    def allowed(self, what: str) -> bool:
        """False, with a sentence to the user, while read-only mode is on."""
        if self.read_only or self.service is None:
            if self.read_only:
                messages.error(
                    f"Read-only mode: {what} was not done. Unlock changes (Allow Changes in the "
                    "toolbar) first."
                )
            return False
        return True

    def prune(self, room: str) -> None:
        if self.allowed(f"pruning the ghosts of {room}"):
            self._run(self.service.prune, room, done=self._checked, what="Pruning ghosts")

    def prune_found(self, ghosts: list[Ghost]) -> None:
        """Prune every classroom that a check of all found ghosts in."""
        rooms = sorted({g.room for g in ghosts})
        if rooms and self.allowed("pruning the ghosts found"):
            service = self.service

            def prune_all() -> list[CheckResult]:
                return [service.prune(room) for room in rooms]

            self._run(prune_all, done=self._pruned_all, what="Pruning ghosts")

    def _pruned_all(self, results: list[CheckResult]) -> None:
        pruned = sum(len(r.pruned or ()) for r in results)
        self.action_finished.emit(
            f"Pruned {pruned} ghost connection{'s' if pruned != 1 else ''} in "
            f"{len(results)} classroom{'s' if len(results) != 1 else ''}."
        )
        self.check_all_progress.emit(0, 0, [])
        self.refresh_now()

    def disconnect(self, member: Member) -> None:
        who = member.name or member.user_id
        if not self.allowed(f"disconnecting {who}"):
            return

        def done(kicked: bool) -> None:
            self.action_finished.emit(
                f"Disconnected {who} ({member.connection_id})."
                if kicked
                else f"{who}'s connection {member.connection_id} was already gone."
            )
            self.refresh_now()

        self._run(self.service.disconnect, member.connection_id, done=done, what="Disconnecting")

    def close(self, room: str) -> None:
        if not self.allowed(f"closing {room}"):
            return

        def done(closed: int) -> None:
            self.action_finished.emit(
                f"Closed {room}: {closed} connection{'s' if closed != 1 else ''} closed."
            )
            if self.selected == room:
                self._select(None)
            self.refresh_now()

        self._run(self.service.close, room, done=done, what="Closing the classroom")

    def load_audit(self) -> None:
        if self.service is not None:
            self._read(self.service.audit, done=self.audit_changed.emit)

    def refresh_now(self) -> None:
        """After a change: the list, the selected classroom and the audit, read again."""
        self.load_audit()
        if self._walk is None:
            self.refresh()
        elif self.selected:
            self._load_members(self.selected)

    @property
    def busy(self) -> bool:
        return self._busy > 0

    def _read(self, fn, *args, done: Callable, what: str | None = None, busy: bool = False) -> None:
        """``fn(*args)`` in a worker; ``done`` gets its value unless the environment changed.
        With ``busy`` it is an action: the action buttons wait for it."""
        generation = self._generation
        worker = FunctionWorker(fn, *args)
        worker.signals.returned.connect(
            lambda value: done(value) if generation == self._generation else None
        )
        worker.signals.errored.connect(lambda error: self._failed(generation, error, what))
        if busy:  # connected before it starts: a fast worker must not finish unheard
            self._busy += 1
            self.busy_changed.emit(True)
            worker.signals.finished.connect(self._unbusy)
        start(worker, report_errors=False)

    def _run(self, fn, *args, done: Callable, what: str) -> None:
        self._read(fn, *args, done=done, what=what, busy=True)

    def _unbusy(self) -> None:
        self._busy -= 1
        if self._busy == 0:
            self.busy_changed.emit(False)

    def _failed(self, generation: int, error: BaseException, what: str | None = None) -> None:
        if generation == self._generation:
            messages.report_error(error, context=what)

    # What the view shows

    def status(self) -> ListStatus:
        classrooms, connections = self.totals
        return ListStatus(
            environment=self.environment,
            unavailable=self.unavailable,
            loading=self._walk is not None,
            loaded=len(self.rooms),
            total=classrooms,
            connections=connections,
            shown=len(self.visible()),
            last_refresh=self.last_refresh,
            error=self.error,
            paused=self.paused,
        )

    def _emit_rooms(self) -> None:
        self._pages_shown.stop()
        self.classrooms_changed.emit(self.visible())
        self._emit_status()

    def _emit_status(self) -> None:
        self.status_changed.emit(self.status())


def check_sentence(result: CheckResult) -> str:
    """A check's or a prune's outcome in a sentence."""
    ghosts = len(result.ghosts)
    checked = f"{result.checked} of {result.members}" if result.truncated else f"{result.checked}"
    if result.pruned is not None:
        pruned = len(result.pruned)
        text = (
            f"Pruned {pruned} ghost connection{'s' if pruned != 1 else ''} from {result.room}."
            if pruned
            else f"{result.room} had no ghost connections to prune."
        )
    elif ghosts:
        text = (
            f"{result.room}: {ghosts} of {checked} connections checked "
            f"{'are ghosts' if ghosts != 1 else 'is a ghost'} (registered, gone at the gateway); "
            "Prune Ghosts removes them."
        )
    else:
        text = f"{result.room}: all {checked} connections checked are live."
    if result.failures:
        text += f" {len(result.failures)} could not be checked ({result.failures[0][1]})."
    return text
