"""Inspector session files: written as frames arrive, read back whole, refused when not one."""

from __future__ import annotations

import json

import pytest

from desktop.services import sessions
from desktop.services.errors import ConfigurationError
from desktop.services.room import Received


def test_a_spooled_session_reads_back_as_it_came(tmp_path):
    spool = sessions.Spool("physics-101", "Local sandbox", folder=tmp_path)
    frames = [
        Received(
            1796000000.5, {"event": "message", "seq": 7, "type": "chat.message"}, 50, "history"
        ),
        Received(1796000001.25, {"event": "join", "userId": "sam", "role": "student"}, 40),
    ]
    for frame in frames:
        spool.write(frame)
    exported = tmp_path / "ticket.jsonl"
    assert spool.export(exported) == 2
    spool.close()
    assert not spool.path.exists()  # the spool goes with its tab; the export stays
    session = sessions.read(exported)
    assert (session.room, session.environment, session.unreadable) == (
        "physics-101",
        "Local sandbox",
        0,
    )
    assert [(f.frame, f.kind) for f in session.frames] == [(f.frame, f.kind) for f in frames]
    assert session.frames[1].at == pytest.approx(1796000001.25, abs=0.001)


def test_a_frame_spooled_as_its_own_text_reads_back_whole(tmp_path):
    """The spool writes a frame's text as it came; a line separator inside a string (the
    backend does not escape it) or a Windows line ending must not split a record."""
    text = '{"event":"message","seq":8,"type":"chat.message","data":{"text":"caf\u00e9\u2028next"}}'
    spool = sessions.Spool("physics-101", "Local sandbox", folder=tmp_path)
    spool.write(Received(1796000002.0, json.loads(text), len(text.encode()), "live", text))
    exported = tmp_path / "ticket.jsonl"
    spool.export(exported)
    spool.close()
    raw = exported.read_text(encoding="utf-8")
    assert text in raw  # not written out again
    for content in (raw, raw.replace("\n", "\r\n")):
        exported.write_text(content, encoding="utf-8", newline="")
        session = sessions.read(exported)
        assert session.unreadable == 0
        assert [f.frame for f in session.frames] == [json.loads(text)]


def test_lines_that_are_not_frames_are_counted_and_skipped(tmp_path):
    path = tmp_path / "edited.jsonl"
    header = {
        "format": sessions.FORMAT,
        "version": 1,
        "room": "r",
        "environment": "e",
        "startedAt": 1,
    }
    good = {"receivedAt": 5, "kind": "live", "frame": {"event": "pong", "ts": 5}}
    path.write_text("\n".join([json.dumps(header), json.dumps(good), "{broken", '{"frame": 3}']))
    session = sessions.read(path)
    assert len(session.frames) == 1 and session.unreadable == 2


@pytest.mark.parametrize(
    ("content", "sentence"),
    [
        ("", "is not an Inspector session"),
        ('{"format": "something-else"}\n', "is not an Inspector session"),
        (json.dumps({"format": sessions.FORMAT, "version": 9}) + "\n", "of version 9"),
    ],
)
def test_a_file_that_is_not_a_session_says_so(tmp_path, content, sentence):
    path = tmp_path / "x.jsonl"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=sentence):
        sessions.read(path)


def test_a_missing_file_is_a_sentence(tmp_path):
    with pytest.raises(ConfigurationError, match="Could not read gone.jsonl"):
        sessions.read(tmp_path / "gone.jsonl")
