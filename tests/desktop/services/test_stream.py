"""The Inspector's rows: what a line shows and searches, read once from its frame."""

from __future__ import annotations

import gc

from desktop.services.stream import note_row, row_for
from desktop.workers.inspector import Filters

FRAME = {
    "event": "message",
    "room": "français-2",
    "seq": 12,
    "ts": 1_712_000_000_000,
    "from": {"userId": "élodie", "role": "student"},
    "type": "chat.message",
    "data": {"text": "Où est la règle ?"},
}


def test_a_row_searches_the_text_as_written_not_escaped() -> None:
    row = row_for(1, 1.0, FRAME, 120, "live")
    assert "règle" in row.text and row.sender == "élodie" and row.preview.startswith('{"text":"Où')
    assert Filters(text="RÈGLE").matcher()(row)  # case-insensitive, accents as typed
    assert Filters(text=r"r.gle", regex=True).matcher()(row)
    assert row.frame == FRAME


def test_a_row_keeps_the_text_it_was_given() -> None:
    text = '{"event":"message","seq":12,"data":{"text":"as sent"}}'
    assert row_for(1, 1.0, {"event": "message", "seq": 12}, 50, "live", text).text == text


def test_a_rows_fields_are_in_a_tuple_the_collector_lets_go_of() -> None:
    """Full collections visit each of 20,000 rows a tab keeps: what a row shows is a plain tuple
    of strings and numbers, which the collector stops tracking once it has seen it."""
    rows = [
        row_for(1, 1.0, FRAME, 120, "live"),
        note_row(2, 2.0, "gap", "Seqs 3-4 missing", after=2, before=5),
    ]
    gc.collect()
    assert not any(gc.is_tracked(row.line) for row in rows)
    assert (rows[1].after, rows[1].before, rows[1].seq) == (2, 5, None)
