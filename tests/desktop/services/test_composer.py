"""The Inspector's composer refuses, before it leaves, every frame the backend would refuse."""

from __future__ import annotations

import json

import pytest

from desktop.services import composer


def test_every_template_is_a_frame_the_backend_takes():
    names = {t.name for t in composer.templates()}
    assert {"chat-message", "classroom-state", "whiteboard-stroke", "whiteboard-text"} <= names
    for template in composer.templates():
        frame = composer.checked(template.text, "physics-101")
        assert frame["action"] == "send" and frame["id"].startswith("support-")


def test_an_id_given_is_kept_for_a_resend():
    frame = composer.checked('{"action":"send","type":"chat.message","id":"fix-1"}', "r")
    assert frame["id"] == "fix-1"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "one JSON object"),
        ('{"action": "shout"}', "action must be one of"),
        ('{"action": "send", "type": "Chat"}', "type must be"),
        ('{"action": "send", "type": "chat.message\\n"}', "type must be"),
        ('{"action": "send", "type": "a", "data": NaN}', "NaN is not JSON"),
        ('{"action": "send", "type": "a", "data": 1e999}', "beyond a double"),
        ('{"action": "send", "type": "a", "data": "\\ud800"}', "lone surrogate"),
        ('{"action": "send", "type": "a", "room": "other"}', "room must be r"),
        ('{"action": "send", "type": "a", "id": 7}', "id must be a string"),
        ('{"action": "sync", "since": -1}', "since must be"),
        ('{"action": "send", "type": "a", "data": ' + "[" * 32 + "]" * 32 + "}", "nests deeper"),
        (json.dumps({"action": "send", "type": "a", "data": "x" * 140_000}), "128 KB"),
    ],
)
def test_what_the_backend_would_refuse_is_refused_with_its_reason(text, reason):
    with pytest.raises(composer.FrameRefused, match=reason):
        composer.checked(text, "r")


def test_the_deepest_frame_the_backend_takes_is_taken():
    deep = '{"action": "send", "type": "a", "data": ' + "[" * 31 + "]" * 31 + "}"
    assert composer.checked(deep, "r")["type"] == "a"


def test_classroom_ids():
    assert composer.valid_room("physics-101_B")
    assert not composer.valid_room("physics 101") and not composer.valid_room("x" * 65)
