"""The Inspector on the console's own sandbox, with real members in the classroom: what support
sees, what the class does not see, what support sends, and sessions exported and opened."""

from __future__ import annotations

import json
import logging
import socket
import uuid

from PySide6.QtCore import Qt

from desktop import messages
from desktop.models.inspector import StreamColumn

WAIT = 20_000


def live(qtbot, tab) -> None:
    qtbot.waitUntil(lambda: tab.session.status.phase == "live", timeout=WAIT)


def frames(tab, event: str = "message") -> list[dict]:
    return [r.frame for r in tab.session.rows if r.frame.get("event") == event]


def say(member, text: str, kind: str = "chat.message") -> int:
    """A member sends; returns the seq its ack gives it."""
    member.send({"action": "send", "type": kind, "data": {"text": text}, "id": uuid.uuid4().hex})
    while (frame := member.receive()).get("event") != "ack":
        pass
    return frame["seq"]


def test_the_inspector_sees_the_class_unseen(qtbot, console, join, room):
    teacher = join(console.supervisor, room, "ms-lee", "teacher")
    student = join(console.supervisor, room, "sam")
    teacher.receive_event("join")
    first = say(student, "before the inspector came")
    console.show_section(3)
    view = console.inspector_view
    view.room.setText(room)
    view.join_button.click()
    (tab,) = view.open_tabs
    live(qtbot, tab)
    # The log first, marked as history...
    qtbot.waitUntil(lambda: any(r.kind == "history" for r in tab.session.rows), timeout=WAIT)
    history = [r for r in tab.session.rows if r.kind == "history"]
    assert [r.seq for r in history] == [first] and history[0].sender == "sam"
    # ...then live, with the right sender and role.
    second = say(teacher, "live now")
    qtbot.waitUntil(lambda: any(r.seq == second for r in tab.model.rows), timeout=WAIT)
    row = next(r for r in tab.model.rows if r.seq == second)
    assert (row.kind, row.sender, row.role, row.type) == (
        "live",
        "ms-lee",
        "teacher",
        "chat.message",
    )
    n = tab.model.rows.index(row)
    assert tab.model.index(n, StreamColumn.PREVIEW).data() == '{"text":"live now"}'

    # The class never heard of the inspector: no join; who lists only the two of them.
    teacher.send({"action": "who"})
    while (frame := teacher.receive()).get("event") != "presence":
        assert frame.get("event") != "join", frame
    assert {m["userId"] for m in frame["members"]} == {"ms-lee", "sam"}

    # Members, with the inspector marked hidden; a join and a leave show in the stream.
    qtbot.waitUntil(lambda: len(tab.session.members) == 3, timeout=WAIT)
    hidden = [m for m in tab.session.members if m.hidden]
    assert len(hidden) == 1 and hidden[0].role == "support"
    kim = join(console.supervisor, room, "kim")
    kim.close()
    qtbot.waitUntil(lambda: bool(frames(tab, "leave")), timeout=WAIT)
    assert [f["userId"] for f in frames(tab, "join")] == ["kim"]
    # The selected frame, in full.
    tab.table.selectRow(n)
    assert json.loads(tab.detail.toPlainText())["seq"] == second


def test_an_injection_reaches_every_member_as_support_and_is_audited(
    qtbot, console, join, room, posted
):
    teacher = join(console.supervisor, room, "ms-lee", "teacher")
    student = join(console.supervisor, room, "sam")
    teacher.receive_event("join")
    tab = console.inspector_view.open_room(room)
    live(qtbot, tab)
    assert tab.compose.toPlainText() == tab.templates[0].text  # the first template, chat

    # Read-only mode: nothing leaves the console, and Send says so.
    assert not tab.send_button.isEnabled() and "Read-only" in tab.send_button.toolTip()
    tab.send()
    assert any(m.text.startswith("Read-only mode: nothing was sent") for m in posted)
    assert not frames(tab, "ack")

    console.allow_changes_action.trigger()
    assert tab.send_button.isEnabled()
    tab.compose.setPlainText('{"action": "send", "type": "Bad Type", "data": {}}')
    tab.send_button.click()
    assert any("type must be" in m.text for m in posted)
    tab.template.setCurrentIndex(tab.template.findData("classroom-state"))
    tab.template.setCurrentIndex(tab.template.findData("chat-message"))  # its text again
    with qtbot.waitSignal(tab.session.sent, timeout=WAIT) as outcome:
        tab.send_button.click()
    assert outcome.args[0].ok and "stored as seq" in outcome.args[0].text
    for member in (teacher, student):
        while (frame := member.receive()).get("event") != "message":
            pass
        assert frame["from"]["role"] == "support" and frame["type"] == "chat.message"
    # The same id again: the backend answers the original ack and stores nothing new.
    sent = tab._last_sent
    with qtbot.waitSignal(tab.session.sent, timeout=WAIT) as again:
        tab.session.resend(sent)
    assert again.args[0].text == outcome.args[0].text

    audit = console.classrooms_presenter
    console.show_section(1)
    audit.set_service(audit.service, audit.environment)
    qtbot.waitUntil(lambda: audit.service is not None, timeout=WAIT)
    entries = audit.service.audit()
    mine = [e for e in entries if e.room == room and e.action == "inject"]
    assert len(mine) == 1 and mine[0].staff.endswith("@sandbox")


def test_a_cut_connection_comes_back_and_catches_up_marked(qtbot, console, join, room, caplog):
    caplog.set_level(logging.DEBUG)
    teacher = join(console.supervisor, room, "ms-lee", "teacher")
    urls: list[str] = []
    service = console.inspector_view.service
    join_url = service.join_url
    service.join_url = lambda r, **kw: urls.append(join_url(r, **kw)) or urls[-1]
    tab = console.inspector_view.open_room(room)
    live(qtbot, tab)
    before = say(teacher, "one")
    qtbot.waitUntil(lambda: any(r.seq == before for r in tab.session.rows), timeout=WAIT)
    # The network drops under the inspector (its socket cut, no close frame).
    tab.session._client._ws.sock.shutdown(socket.SHUT_RDWR)
    qtbot.waitUntil(lambda: tab.session.status.phase == "reconnecting", timeout=WAIT)
    missed = [say(teacher, f"while away {n}") for n in range(3)]
    live(qtbot, tab)
    qtbot.waitUntil(
        lambda: {r.seq for r in tab.session.rows if r.kind == "filled"} >= set(missed),
        timeout=WAIT,
    )
    notes = [r.frame["note"] for r in tab.session.rows if r.kind == "note"]
    assert any(n.startswith("Connection lost") for n in notes)
    assert any(n.startswith("Caught up") for n in notes)
    after = say(teacher, "back")
    qtbot.waitUntil(
        lambda: any(r.seq == after and r.kind == "live" for r in tab.session.rows), timeout=WAIT
    )
    seqs = [r.seq for r in tab.session.rows if r.seq is not None]
    assert sorted(seqs) == sorted(set(seqs))  # every message once
    # A fresh token for each connection, and none of them in any log line or on screen.
    tokens = [url.split("token=", 1)[1] for url in urls]
    assert len(tokens) >= 2 and len(set(tokens)) == len(tokens)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    shown = tab.state.state + tab.counts.full_text() + tab.detail.toPlainText()
    assert not any(token in logged or token in shown for token in tokens)


def test_pause_filters_regex_and_the_cap(qtbot, console, join, room):
    teacher = join(console.supervisor, room, "ms-lee", "teacher")
    student = join(console.supervisor, room, "sam")
    teacher.receive_event("join")
    tab = console.inspector_view.open_room(room)
    live(qtbot, tab)
    session = tab.session
    say(teacher, "hello class")
    say(student, "board is blank", "chat.message")
    say(student, "x", "whiteboard.clear")
    qtbot.waitUntil(lambda: len(frames(tab)) == 3, timeout=WAIT)

    tab.pause_button.click()
    say(teacher, "while paused")
    qtbot.waitUntil(lambda: len(session.waiting) == 1, timeout=WAIT)
    shown = tab.model.rowCount()
    assert "paused: 1 waiting" in tab.counts.full_text()
    tab.pause_button.click()
    assert tab.model.rowCount() == shown + 1

    tab.sender_filter.setText("sam")
    assert {r.sender for r in tab.model.rows} == {"sam"}
    tab.sender_filter.clear()
    tab.type_filter.setCurrentText("whiteboard.clear")
    assert [r.type for r in tab.model.rows] == ["whiteboard.clear"]
    tab.type_filter.setCurrentIndex(0)
    tab.regex.setChecked(True)
    tab.text_filter.setText(r"board\s+is")
    assert [r.frame["data"]["text"] for r in tab.model.rows] == ["board is blank"]
    tab.text_filter.setText("(unclosed")
    assert "Not a regular expression" in tab.text_filter.toolTip()
    assert [r.frame["data"]["text"] for r in tab.model.rows] == ["board is blank"]  # kept
    tab.text_filter.clear()
    tab.regex.setChecked(False)

    # The cap: the oldest rows go, the view says how many, the newest stay.
    session.cap = 3
    for n in range(4):
        say(teacher, f"more {n}")
    qtbot.waitUntil(lambda: any(r.frame.get("data") == {"text": "more 3"} for r in session.rows))
    assert len(session.rows) == 3 and session.dropped > 0
    assert "older ones let go" in tab.counts.full_text()
    assert tab.model.rowCount() <= 3


def test_an_exported_session_opens_again_offline(qtbot, console, join, room, tmp_path):
    teacher = join(console.supervisor, room, "ms-lee", "teacher")
    first = say(teacher, "before")
    tab = console.inspector_view.open_room(room)
    live(qtbot, tab)
    stroke = {
        "action": "send",
        "type": "whiteboard.stroke",
        "data": {"id": "s1", "points": [[100, 100], [700, 100]], "color": "#d62828", "width": 8},
        "id": "stroke-1",
    }
    teacher.send(stroke)
    qtbot.waitUntil(lambda: len(frames(tab)) == 2, timeout=WAIT)
    assert tab.board.board.shapes  # the stroke is on the board
    path = tmp_path / "ticket.jsonl"
    tab.export_to(path)
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["room"] == room and len(lines) >= 3

    view = console.inspector_view
    with qtbot.waitSignal(view.file_opened, timeout=WAIT) as signal:
        view.open_file(path)  # read in a worker: the tab comes when it has been
    opened = signal.args[0]
    qtbot.waitUntil(lambda: not opened.session._incoming, timeout=WAIT)
    assert opened.session.offline and opened.session.status.phase == "closed"
    assert opened.model.rowCount() == len(opened.session.rows)
    assert view.open_button.isEnabled()
    assert [r.seq for r in opened.session.rows if r.seq] == [
        r.seq for r in tab.session.rows if r.seq
    ]
    assert opened.session.rows[0].seq == first
    assert set(opened.board.board.shapes) == set(tab.board.board.shapes)
    assert not opened.send_button.isEnabled()

    bad = tmp_path / "notes.jsonl"
    bad.write_text('{"hello": 1}\n')
    tabs = view.tabs.count()
    posted = []
    messages.bus().posted.connect(posted.append)
    view.open_file(bad)
    qtbot.waitUntil(
        lambda: any("is not an Inspector session" in m.text for m in posted), timeout=WAIT
    )
    qtbot.waitUntil(view.open_button.isEnabled, timeout=WAIT)
    assert view.tabs.count() == tabs  # a sentence, and no tab


def test_open_in_inspector_from_classrooms(qtbot, console, join, room):
    join(console.supervisor, room, "ms-lee", "teacher")
    console.show_section(1)
    presenter = console.classrooms_presenter

    def listed() -> bool:
        presenter.refresh()
        return room in presenter.rooms

    qtbot.waitUntil(listed, timeout=WAIT)
    presenter.select(room)
    qtbot.waitUntil(lambda: console.classrooms_view.inspector_button.isEnabled(), timeout=WAIT)
    console.classrooms_view.inspector_button.click()
    assert console.sections.currentWidget() is console.inspector_view
    (tab,) = console.inspector_view.open_tabs
    assert tab.session.room == room
    live(qtbot, tab)
    # A second classroom by its id, in a tab of its own; the first one again is the same tab.
    view = console.inspector_view
    view.room.setText(f"{room}-b")
    qtbot.keyClick(view.room, Qt.Key.Key_Return)
    assert [t.session.room for t in view.open_tabs] == [room, f"{room}-b"]
    assert view.open_room(room) is tab and view.tabs.currentIndex() == 0
    assert view.open_room("not a room!") is None
    view.close_tab(1)
    view.close_tab(0)
    assert console.inspector_view.open_tabs == []
    assert console.inspector_view.pages.currentWidget() is console.inspector_view.empty


def test_stream_model_passes_qtmodeltester(qtmodeltester):
    from desktop.models.inspector import StreamModel
    from desktop.services.stream import note_row, row_for

    model = StreamModel()
    model.append_rows(
        [
            row_for(
                1,
                1.0,
                {
                    "event": "message",
                    "seq": 5,
                    "from": {"userId": "a", "role": "student"},
                    "type": "chat.message",
                    "data": {"t": 1},
                    "ts": 1000,
                },
                90,
                "history",
            ),
            note_row(2, 2.0, "gap", "Seqs 6-7 missing", after=5, before=8),
            row_for(3, 3.0, {"message": "Too Many Requests", "connectionId": "c"}, 40, "live"),
        ]
    )
    qtmodeltester.check(model)
    model.drop_first(1)
    assert model.rowCount() == 2
    assert model.index(0, StreamColumn.SEQ).data() == "gap"
    assert model.index(1, StreamColumn.TYPE).data() == "gateway"
    assert model.index(0, 0).data(Qt.ItemDataRole.ForegroundRole) is not None


def test_a_message_whose_fan_out_was_lost_is_a_gap_filled_by_sync(
    qtbot, console, join, room, redis_client
):
    from backend import frames as wire
    from backend.registry import Member, Registry

    teacher = join(console.supervisor, room, "ms-lee", "teacher")
    tab = console.inspector_view.open_room(room)
    live(qtbot, tab)
    first = say(teacher, "one")
    qtbot.waitUntil(lambda: any(r.seq == first for r in tab.session.rows), timeout=WAIT)
    # Stored in the log, never fanned out (its handler died after Redis answered).
    lost = Member("lost-conn-0000=", "ms-lee", "teacher", connectedAt=1)
    head, tail = wire.message_parts(
        room, 1, "ms-lee", "teacher", wire.Send("chat.message", {"text": "lost"}, "lost-1")
    )
    stored = Registry(redis_client).store(room, lost, head, tail)
    third = say(teacher, "three")
    assert stored.seq == first + 1 and third == first + 2
    qtbot.waitUntil(lambda: any(r.seq == stored.seq for r in tab.session.rows), timeout=WAIT)
    gap = next(r for r in tab.session.rows if r.kind == "gap")
    assert (gap.frame["after"], gap.frame["before"]) == (first, third)
    filled = next(r for r in tab.session.rows if r.seq == stored.seq)
    assert filled.kind == "filled" and filled.frame["data"] == {"text": "lost"}
    shown = [r.kind for r in tab.model.rows]
    assert "gap" in shown and "filled" in shown
    gap_row = shown.index("gap")
    assert tab.model.index(gap_row, StreamColumn.SEQ).data() == "gap"


def test_the_connection_is_renewed_before_the_gateways_limit_without_a_gap(
    qtbot, console, join, room
):
    teacher = join(console.supervisor, room, "ms-lee", "teacher")
    view = console.inspector_view
    tab = view.open_room(room)
    live(qtbot, tab)
    client = tab.session._client
    first_socket = client._ws
    client.max_age = 0.5  # API Gateway's two hours, shortened
    qtbot.waitUntil(lambda: client._ws is not None and client._ws is not first_socket, timeout=WAIT)
    client.max_age = 3600
    sent = [say(teacher, f"after renewal {n}") for n in range(3)]
    qtbot.waitUntil(lambda: {r.seq for r in tab.session.rows} >= set(sent), timeout=WAIT)
    assert not [r for r in tab.session.rows if r.kind == "gap"]
    assert not [r for r in tab.session.rows if r.kind == "note" and "lost" in r.text]
    assert tab.session.status.phase == "live"
