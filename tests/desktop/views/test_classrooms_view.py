"""The Classrooms section on the console's own sandbox, with real members connected over
WebSocket: what support staff see, and what their actions really do to the members."""

from __future__ import annotations

import getpass

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from backend.registry import Member, Registry
from desktop.models.classrooms import (
    COPY_CHOICES_ROLE,
    COPY_ROLE,
    USER_ROLE,
    ClassroomColumn,
    MemberColumn,
)

WAIT = 20_000


@pytest.fixture
def console(console):
    """The console on its running sandbox, showing the Classrooms section."""
    console.show_section(1)
    return console


def listed(qtbot, window, condition) -> None:
    """Refreshes until ``condition(rooms)`` holds for the rooms the list shows."""
    presenter = window.classrooms_presenter

    def check() -> bool:
        presenter.refresh()  # ignored while a walk is under way
        return condition({row.room: row for row in window.classrooms_view.classrooms.rows})

    qtbot.waitUntil(check, timeout=WAIT)


def select(qtbot, window, room: str) -> None:
    view = window.classrooms_view
    row = next(n for n, c in enumerate(view.classrooms.rows) if c.room == room)
    view.rooms_table.selectRow(row)
    qtbot.waitUntil(lambda: window.classrooms_presenter.members_loaded, timeout=WAIT)


def members_shown(window) -> dict[str, object]:
    return {m.user_id: m for m in window.classrooms_view.members.rows}


def answer(qtbot, window, button: str) -> None:
    box = window.classrooms_view.confirmation
    assert box is not None and box.isVisible()
    with qtbot.waitSignal(box.finished):
        next(b for b in box.buttons() if b.text() == button).click()
    assert window.classrooms_view.confirmation is None


def test_classrooms_and_members_come_and_go_with_the_clients(qtbot, console, join, room):
    view = console.classrooms_view
    teacher = join(console.supervisor, room, "ms-lee", "teacher")
    student = join(console.supervisor, room, "sam")
    support = join(console.supervisor, room, "ana@support", "support")
    join(console.supervisor, f"{room}-next-door", "kim")
    listed(qtbot, console, lambda rooms: room in rooms and rooms[room].students == 1)
    row = next(r for r in view.classrooms.rows if r.room == room)
    assert (row.teachers, row.students, row.hidden) == (1, 1, 1)
    assert row.connected_since > 0
    assert view.rooms_pages.currentWidget() is view.rooms_table
    assert "classroom" in view.status.full_text() and "refreshed" in view.status.full_text()

    select(qtbot, console, room)
    shown = members_shown(console)
    assert set(shown) == {"ms-lee", "sam", "ana@support"}
    assert shown["ana@support"].hidden and not shown["sam"].hidden
    assert shown["sam"].source_ip == "127.0.0.1" and shown["sam"].user_agent
    assert shown["sam"].last_seen is not None and shown["sam"].connection_id
    model = view.members
    hidden_row = next(n for n, m in enumerate(model.rows) if m.hidden)
    assert model.index(hidden_row, MemberColumn.ROLE).data() == "support (hidden)"

    student.close()
    teacher.receive_event("join")
    teacher.receive_event("leave")
    listed(qtbot, console, lambda rooms: rooms.get(room) and rooms[room].students == 0)
    qtbot.waitUntil(lambda: set(members_shown(console)) == {"ms-lee", "ana@support"}, timeout=WAIT)

    # The last members leave: the classroom goes from the list, and stays the one looked at
    # (no neighbour is picked in its place).
    teacher.close()
    support.close()
    listed(qtbot, console, lambda rooms: room not in rooms and f"{room}-next-door" in rooms)
    qtbot.waitUntil(lambda: members_shown(console) == {}, timeout=WAIT)
    assert console.classrooms_presenter.selected == room
    assert not view.rooms_table.selectionModel().hasSelection()
    assert view.members_note.text() == "No one is connected to this classroom now."


def test_sort_and_filter_and_copy(qtbot, console, join, room):
    view = console.classrooms_view
    for n, suffix in enumerate(("a", "b", "c")):
        for k in range(n + 1):
            join(console.supervisor, f"{room}-{suffix}", f"student-{suffix}{k}")
    mine = {f"{room}-{s}" for s in "abc"}
    listed(qtbot, console, lambda rooms: all(rooms.get(r) for r in mine))
    view.room_filter.setText(room)
    assert {r.room for r in view.classrooms.rows} == mine

    view.rooms_table.sortByColumn(ClassroomColumn.STUDENTS, Qt.SortOrder.DescendingOrder)
    assert [r.room for r in view.classrooms.rows] == [f"{room}-c", f"{room}-b", f"{room}-a"]
    view.rooms_table.sortByColumn(ClassroomColumn.ROOM, Qt.SortOrder.AscendingOrder)
    assert [r.room for r in view.classrooms.rows] == [f"{room}-a", f"{room}-b", f"{room}-c"]
    # A refresh keeps the order and the selection.
    view.rooms_table.selectRow(1)
    console.classrooms_presenter.refresh()
    qtbot.waitUntil(lambda: console.classrooms_presenter.status().loading is False, timeout=WAIT)
    assert [r.room for r in view.classrooms.rows] == [f"{room}-a", f"{room}-b", f"{room}-c"]
    assert view.rooms_table.selectionModel().selectedRows()[0].row() == 1

    view.room_filter.setText(f"{room}-B")  # case does not matter
    assert [r.room for r in view.classrooms.rows] == [f"{room}-b"]
    view.rooms_table.setCurrentIndex(view.classrooms.index(0, ClassroomColumn.STUDENTS))
    QApplication.clipboard().clear()
    qtbot.keyClick(view.rooms_table, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.clipboard().text() == f"{room}-b"

    view.room_filter.setText("no-such-classroom-anywhere")
    assert view.classrooms.rowCount() == 0
    assert view.rooms_pages.currentWidget() is view.empty
    assert view.empty.text() == "No classroom matches the filters."


def test_find_a_user_shows_their_classrooms(qtbot, console, join, room):
    view = console.classrooms_view
    join(console.supervisor, f"{room}-maths", "zoe")
    join(console.supervisor, f"{room}-maths", "max")
    join(console.supervisor, f"{room}-art", "max")
    listed(qtbot, console, lambda rooms: f"{room}-art" in rooms and f"{room}-maths" in rooms)

    view.user_search.setText("max")
    qtbot.keyClick(view.user_search, Qt.Key.Key_Return)
    qtbot.waitUntil(
        lambda: {r.room for r in view.classrooms.rows} == {f"{room}-maths", f"{room}-art"},
        timeout=WAIT,
    )
    view.user_search.setText("zoe")
    qtbot.keyClick(view.user_search, Qt.Key.Key_Return)
    # One classroom: it is selected, and the user stands out among its members.
    qtbot.waitUntil(lambda: console.classrooms_presenter.selected == f"{room}-maths", timeout=WAIT)
    qtbot.waitUntil(lambda: set(members_shown(console)) == {"zoe", "max"}, timeout=WAIT)
    zoe = next(n for n, m in enumerate(view.members.rows) if m.user_id == "zoe")
    max_ = 1 - zoe
    assert view.members.index(zoe, 0).data(Qt.ItemDataRole.ForegroundRole) is not None
    assert view.members.index(max_, 0).data(Qt.ItemDataRole.ForegroundRole) is None

    # From a member's row (its menu): the classrooms of that member, here two.
    max_id = view.members.index(max_, 0).data(USER_ROLE)
    view.members_table.find_user_requested.emit(max_id)
    assert view.user_search.text() == "max"
    qtbot.waitUntil(
        lambda: {r.room for r in view.classrooms.rows} == {f"{room}-maths", f"{room}-art"},
        timeout=WAIT,
    )
    choices = dict(view.members.index(max_, 3).data(COPY_CHOICES_ROLE))
    assert set(choices) == {"user id", "connection id", "source IP", "user agent"}

    view.user_search.clear()
    assert len(view.classrooms.rows) >= 2


def test_read_only_mode_refuses_every_action(qtbot, console, join, room, posted, redis_client):
    view = console.classrooms_view
    presenter = console.classrooms_presenter
    member = join(console.supervisor, room, "sam")
    listed(qtbot, console, lambda rooms: room in rooms)
    select(qtbot, console, room)
    view.members_table.selectRow(0)
    assert presenter.read_only and console.mode_label.state == "Read-only"
    for button in (view.disconnect_button, view.close_button, view.prune_button):
        assert not button.isEnabled()
    assert view.check_button.isEnabled()  # a check only reads

    audited_before = redis_client.xlen("audit:support")
    view.disconnect_member()
    view.close_classroom()
    view.prune()
    presenter.disconnect(presenter.members[0])
    presenter.close(room)
    presenter.prune(room)
    assert view.confirmation is None  # nothing was even asked
    refusals = [m.text for m in posted if m.text.startswith("Read-only mode")]
    assert len(refusals) == 6 and all("Allow Changes" in text for text in refusals)
    assert member.ping()["ts"] > 0  # still connected
    assert redis_client.xlen("audit:support") == audited_before

    console.allow_changes_action.trigger()
    assert not presenter.read_only and console.mode_label.state == "Changes allowed"
    assert view.disconnect_button.isEnabled() and view.close_button.isEnabled()
    console.allow_changes_action.trigger()
    assert presenter.read_only and not view.close_button.isEnabled()


def test_disconnect_closes_the_socket_and_is_audited(qtbot, console, join, room):
    view = console.classrooms_view
    teacher = join(console.supervisor, room, "ms-lee", "teacher")
    student = join(console.supervisor, room, "sam")
    teacher.receive_event("join")
    listed(qtbot, console, lambda rooms: room in rooms and rooms[room].students == 1)
    select(qtbot, console, room)
    console.allow_changes_action.trigger()
    sam = next(n for n, m in enumerate(view.members.rows) if m.user_id == "sam")
    view.members_table.selectRow(sam)

    view.disconnect_button.click()
    assert "Disconnect sam from" in view.confirmation.text()
    box = view.confirmation
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)
    answer(qtbot, console, "Cancel")
    assert student.ping()["ts"] > 0

    view.disconnect_button.click()
    with qtbot.waitSignal(console.classrooms_presenter.action_finished, timeout=WAIT) as done:
        answer(qtbot, console, "Disconnect")
    assert done.args[0].startswith("Disconnected sam")
    assert student.wait_closed()[0] == 1000
    assert teacher.receive_event("leave")["userId"] == "sam"
    qtbot.waitUntil(lambda: set(members_shown(console)) == {"ms-lee"}, timeout=WAIT)
    assert view.banner.text.startswith("Disconnected sam")
    # The row that went leaves nobody picked in its place: a second click cannot hit the teacher.
    assert view.selected_member() is None and not view.disconnect_button.isEnabled()

    view.tabs.setCurrentIndex(2)
    staff = f"{getpass.getuser()}@sandbox"

    def audited() -> bool:
        return any(
            e.action == "disconnect" and e.room == room and e.staff == staff
            for e in view.audit.rows
        )

    qtbot.waitUntil(audited, timeout=WAIT)
    row = next(n for n, e in enumerate(view.audit.rows) if e.room == room)
    assert view.audit.index(row, 2).data() == "Disconnect"


def test_close_classroom_closes_every_member(qtbot, console, join, room):
    view = console.classrooms_view
    members = [join(console.supervisor, room, sub) for sub in ("ms-lee", "sam", "kim")]
    listed(qtbot, console, lambda rooms: room in rooms and rooms[room].students == 3)
    select(qtbot, console, room)
    console.allow_changes_action.trigger()
    view.close_button.click()
    assert "3 connections" in view.confirmation.text()
    with qtbot.waitSignal(console.classrooms_presenter.action_finished, timeout=WAIT) as done:
        answer(qtbot, console, "Close Classroom")
    assert done.args[0] == f"Closed {room}: 3 connections closed."
    assert all(member.wait_closed()[0] == 1000 for member in members)
    listed(qtbot, console, lambda rooms: room not in rooms)
    assert console.classrooms_presenter.selected is None
    assert not view.rooms_table.selectionModel().hasSelection()
    console.classrooms_presenter.load_audit()
    qtbot.waitUntil(
        lambda: any(e.action == "close_room" and e.room == room for e in view.audit.rows),
        timeout=WAIT,
    )


def test_a_ghost_is_found_and_pruned(qtbot, console, join, room, redis_client):
    view = console.classrooms_view
    presenter = console.classrooms_presenter
    teacher = join(console.supervisor, room, "ms-lee", "teacher")
    # A connection cut without its $disconnect (a crashed tablet, a lost invocation) leaves
    # its registration behind: the gateway has never heard of this one.
    Registry(redis_client).join(room, Member("gone-sam-0000=", "sam", "student", connectedAt=1))
    listed(qtbot, console, lambda rooms: room in rooms and rooms[room].students == 1)
    select(qtbot, console, room)
    sam = next(m for m in view.members.rows if m.user_id == "sam")

    with qtbot.waitSignal(presenter.check_finished, timeout=WAIT) as checked:
        view.check_button.click()
    assert [g.connection_id for g in checked.args[0].ghosts] == [sam.connection_id]
    ghost_row = next(n for n, m in enumerate(view.members.rows) if m.user_id == "sam")
    assert "ghost" in view.members.index(ghost_row, MemberColumn.ROLE).data()
    assert "1 of 2 connections checked is a ghost" in view.banner.text
    assert view.banner.kind == "warning" and "Prune Ghosts removes them" in view.banner.text

    # Check all lists it too.
    with qtbot.waitSignal(presenter.action_finished, timeout=WAIT * 3):
        view.check_all_button.click()
    assert sam.connection_id in {g.connection_id for g in view.ghosts.rows}

    console.allow_changes_action.trigger()
    view.prune_button.click()
    with qtbot.waitSignal(presenter.action_finished, timeout=WAIT) as done:
        answer(qtbot, console, "Prune Ghosts")
    assert done.args[0] == f"Pruned 1 ghost connection from {room}."
    assert teacher.receive_event("leave")["userId"] == "sam"
    qtbot.waitUntil(lambda: set(members_shown(console)) == {"ms-lee"}, timeout=WAIT)
    assert view.members.index(0, MemberColumn.CONNECTION).data(COPY_ROLE) != sam.connection_id
    assert [m.userId for m in Registry(redis_client).members(room)] == ["ms-lee"]


def test_a_stopped_sandbox_says_what_to_do(qtbot, open_window):
    window = open_window()
    window.show_section(1)
    view = window.classrooms_view
    assert view.rooms_pages.currentWidget() is view.empty
    assert "The local sandbox is not running" in view.empty.text()
    assert not view.refresh_button.isEnabled()


def test_an_aws_environment_not_deployed_says_so(qtbot, open_window, engine_factory, staging):
    window = open_window(engine_factory=engine_factory)
    window.show_section(1)
    view = window.classrooms_view
    qtbot.waitUntil(lambda: "Could not read the classrooms" in view.empty.text(), timeout=WAIT)
    assert f"Stack {staging.stack_name} does not exist" in view.empty.text()
    assert view.rooms_pages.currentWidget() is view.empty


def test_a_sandbox_that_stops_answering_says_so_and_keeps_the_list(qtbot, console, join, room):
    view = console.classrooms_view
    presenter = console.classrooms_presenter
    join(console.supervisor, room, "sam")
    listed(qtbot, console, lambda rooms: room in rooms)
    view.pause_button.click()  # no refresh reads the sandbox while it empties and goes
    qtbot.waitUntil(lambda: not presenter.status().loading, timeout=WAIT)
    assert "paused" in view.status.full_text()
    # The sandbox's process goes away under the console (not through its Stop button).
    console.supervisor._sandbox.stop()
    presenter.refresh()
    qtbot.waitUntil(lambda: view.banner.kind == "error", timeout=WAIT)
    assert "Could not refresh the classrooms: The local sandbox is not answering" in (
        view.banner.text
    )
    assert room in {r.room for r in view.classrooms.rows}  # the last list stays
