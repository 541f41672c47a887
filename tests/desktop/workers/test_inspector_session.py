"""The Inspector's session files what its connection hands over: a burst goes in a share at a
time, in order, so the console keeps painting while a catch-up arrives."""

from __future__ import annotations

import itertools

from desktop.services.room import Received
from desktop.workers.inspector import TAKE_MAX, InspectorSession, arrival


def test_a_burst_is_filed_a_share_at_a_time_in_order(qtbot) -> None:
    session = InspectorSession("physics-101", None, "test")
    batches: list[list] = []
    session.rows_added.connect(batches.append)
    numbers = itertools.count(1)
    total = TAKE_MAX * 2 + 500  # a reconnect's catch-up, say
    frames = [
        {
            "event": "message",
            "room": "physics-101",
            "seq": 1_000 + n,
            "ts": 1_712_000_000_000 + n,
            "from": {"userId": "ms-lee", "role": "teacher"},
            "type": "chat.message",
            "data": {"text": f"line {n}"},
        }
        for n in range(total)
    ]
    # What the connection's worker hands over, as it would: one batch, arrivals made already.
    session._arrived(
        [arrival(next(numbers), Received(0.0, frame, 100, "live")) for frame in frames]
    )
    session._take()
    assert len(session.rows) == TAKE_MAX  # the first turn's share, the rest still waiting
    qtbot.waitUntil(lambda: not session._incoming, timeout=5_000)
    assert [len(batch) for batch in batches] == [TAKE_MAX, TAKE_MAX, 500]
    assert [row.seq for row in session.rows if row.seq is not None] == [f["seq"] for f in frames]
