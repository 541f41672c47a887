"""A school's load on the sandbox: ``bench/load.py``'s small version, as CI runs it.

200 members in 10 classrooms connect at 100 a second, then every classroom sends 10 messages a
second for 10 seconds (about 1,900 deliveries a second), each member recovering gaps with
``sync`` as PROTOCOL.md says clients do. The sandbox is the command, in its own process, on the
session's redis-server. Timings are reported by the benchmark, never asserted here.
"""

from __future__ import annotations

import pytest

from bench import load

pytestmark = pytest.mark.slow


def test_a_school_loses_no_delivery_and_leaves_no_send_unanswered(redis_server, tmp_path):
    plan = load.Plan(
        connections=200,
        rooms=10,
        open_rate=100.0,
        phases=((10.0, 10.0),),
        grace=30.0,
        client_processes=1,
    )
    log = tmp_path / "sandbox.log"
    report = load.run_loop(
        load.run(plan, ["--redis-url", redis_server], log=log, progress=lambda *_, **__: None)
    )
    connections, sends, deliveries = (
        report["connections"],
        report["sends"],
        report["deliveries"],
    )
    assert connections["opened"] == 200, connections
    assert not connections["dropped"], connections
    assert sends["sent"] == 1000
    assert deliveries["lost"] == 0, deliveries
    assert sends["unanswered"] == 0, sends
    assert deliveries["direct"] + deliveries["recovered"] == deliveries["expected"] > 0
