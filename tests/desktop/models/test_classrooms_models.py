"""The Classrooms section's models: Qt's model rules, merging by identity, their own sort."""

from __future__ import annotations

from PySide6.QtCore import QPersistentModelIndex, Qt

from desktop.models.classrooms import (
    COPY_ROLE,
    AuditModel,
    ClassroomColumn,
    ClassroomsModel,
    GhostsModel,
    MemberColumn,
    MembersModel,
    age,
)
from desktop.services.classrooms import (
    AuditEntry,
    Classroom,
    Ghost,
    Member,
    audit_from,
    classroom_from,
)

NOW = 1_796_000_000_000


def rooms(*names: str, students: int = 1) -> list[Classroom]:
    return [Classroom(name, students=students, members=students, latest_seq=7) for name in names]


def test_models_pass_qtmodeltester(qtmodeltester):
    classrooms = ClassroomsModel()
    classrooms.show(rooms("b", "a", "c"), NOW)
    qtmodeltester.check(classrooms)
    members = MembersModel()
    members.show(
        [
            Member("C1", "sam", "student", NOW - 5000, name="Sam", last_seen=NOW),
            Member("C2", "ana", "support", NOW - 9000, hidden=True),
        ],
        NOW,
    )
    members.mark(ghosts=["C1"], highlighted_user="sam")
    qtmodeltester.check(members)
    ghosts = GhostsModel()
    ghosts.show([Ghost("r", "C1", "sam", "student", NOW)], NOW)
    qtmodeltester.check(ghosts)
    audit = AuditModel()
    audit.show([AuditEntry("1-0", NOW, "ana@sandbox", "disconnect", "r", "C1", "done")], NOW)
    qtmodeltester.check(audit)


def test_a_merge_keeps_the_selection_and_the_sort_while_rows_come_and_go(qtmodeltester):
    model = ClassroomsModel()
    model.show(rooms("b", "d", "a"), NOW)
    assert [r.room for r in model.rows] == ["a", "b", "d"]
    selected = QPersistentModelIndex(model.index(1, 0))  # "b"
    qtmodeltester.check(model)  # the tester watches every signal of what follows

    model.show(rooms("d", "c", "b", students=3), NOW)  # "a" went, "c" came, counts changed
    assert [r.room for r in model.rows] == ["b", "c", "d"]
    assert selected.isValid() and selected.data() == "b"
    assert model.index(0, ClassroomColumn.STUDENTS).data() == 3

    model.sort(ClassroomColumn.ROOM, Qt.SortOrder.DescendingOrder)
    assert [r.room for r in model.rows] == ["d", "c", "b"]
    assert selected.row() == 2
    model.show(rooms("a", "b", "c", "d"), NOW)  # later rows keep the chosen order
    assert [r.room for r in model.rows] == ["d", "c", "b", "a"]


def test_a_merge_of_scattered_removals_is_one_reset(qtbot):
    model = ClassroomsModel()
    model.show(rooms(*(f"r{n:03d}" for n in range(200))), NOW)
    with qtbot.waitSignal(model.modelReset):
        model.show(rooms(*(f"r{n:03d}" for n in range(0, 200, 2))), NOW)
    assert model.rowCount() == 100


def test_what_the_rows_say():
    model = ClassroomsModel()
    model.show([Classroom("quiet", teachers=0, students=2, members=2)], NOW)
    assert model.index(0, ClassroomColumn.LAST_ACTIVITY).data() == "never"
    assert model.index(0, ClassroomColumn.TEACHERS).data(Qt.ItemDataRole.ForegroundRole)
    assert "No teacher" in model.index(0, ClassroomColumn.TEACHERS).data(
        Qt.ItemDataRole.ToolTipRole
    )
    assert model.index(0, ClassroomColumn.MESSAGES).data(COPY_ROLE) == "quiet"
    members = MembersModel()
    members.show([Member("C9", "sam", "student", NOW, user_agent="Whiteboard/3")], NOW)
    assert members.index(0, MemberColumn.USER).data(COPY_ROLE) == "sam"
    assert members.index(0, MemberColumn.CONNECTION).data(COPY_ROLE) == "C9"
    assert members.index(0, MemberColumn.LAST_SEEN).data() == ""
    assert [age(NOW - n, NOW) for n in (4_000, 720_000, 10_800_000)] == [
        "4 s ago",
        "12 min ago",
        "3 h ago",
    ]


def test_an_unchanged_room_keeps_its_counts_and_takes_the_new_activity():
    known = classroom_from(
        {
            "room": "r",
            "teachers": 1,
            "students": 20,
            "members": 21,
            "hidden": 1,
            "connectedSince": 5,
            "latestSeq": 10,
            "version": "3.22",
        }
    )
    again = classroom_from(
        {
            "room": "r",
            "unchanged": True,
            "version": "3.22",
            "latestSeq": 12,
            "messagesLastMinute": 4,
            "lastActivity": 99,
        },
        known,
    )
    assert (again.students, again.hidden, again.connected_since) == (20, 1, 5)
    assert (again.latest_seq, again.messages_last_minute, again.last_activity) == (12, 4, 99)


def test_audit_entries_of_both_kinds_read_as_sentences():
    injected = audit_from(
        {
            "auditId": "1-0",
            "staff": "ana@sandbox",
            "room": "r",
            "seq": "17",
            "type": "chat.message",
            "connectionId": "C1",
            "ts": "1796000000000",
        }
    )
    assert (injected.action, injected.outcome) == ("inject", "sent chat.message as seq 17")
    kicked = audit_from(
        {
            "auditId": "2-0",
            "staff": "arn:aws:iam::1:user/ana",
            "action": "disconnect",
            "room": "r",
            "connectionId": "C2",
            "outcome": "disconnected",
            "ts": "5",
        }
    )
    assert (kicked.target, kicked.when, kicked.outcome) == ("C2", 5, "disconnected")
