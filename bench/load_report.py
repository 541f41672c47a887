"""What a run counted and the report made of it: one process's tally, the school's figures, and
the printed and JSON report ``--check`` reads."""

from __future__ import annotations

import collections
import itertools
import math
import os
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench.processes import SANDBOX_ROLES, cpu_between

if TYPE_CHECKING:
    from bench.load import Plan, Sampler

# Answers that mean "not now, slow down": API Gateway's throttling frame and the backend's own.
THROTTLE_FAILURES = ("Too Many Requests",)
THROTTLE_ERRORS = ("rate_limited",)


@dataclass
class FleetResult:
    """What one client process saw; ``merge`` adds several up."""

    attempts: int = 0
    failed: collections.Counter = field(default_factory=collections.Counter)
    connect_ms: array = field(default_factory=lambda: array("d"))
    dropped: collections.Counter = field(default_factory=collections.Counter)
    # one row per send: (scheduled second, answer kind, answer detail, ms to the answer)
    sends: list[tuple[int, str, str, float]] = field(default_factory=list)
    late_acks: int = 0
    ack_ms: array = field(default_factory=lambda: array("d"))
    throttle_ms: array = field(default_factory=lambda: array("d"))
    delivery_ms: array = field(default_factory=lambda: array("d"))
    recovered_ms: array = field(default_factory=lambda: array("d"))
    received_per_second: list[int] = field(default_factory=list)
    direct: int = 0
    recovered: int = 0
    recovered_at_end: int = 0
    lost: int = 0
    lost_while_syncing: int = 0  # of the lost: the member's sync was still unanswered at the end
    lost_examples: list[str] = field(default_factory=list)
    unacked_held: int = 0
    duplicates: int = 0
    gaps_seen: int = 0
    syncs: int = 0
    syncs_at_end: int = 0
    sync_answers: collections.Counter = field(default_factory=collections.Counter)
    truncated_histories: int = 0
    unmatched_answers: collections.Counter = field(default_factory=collections.Counter)
    lag_ms: array = field(default_factory=lambda: array("d"))
    stall_ms: array = field(default_factory=lambda: array("d"))
    drain_s: float = 0.0

    def merge(self, other: FleetResult) -> None:
        for name, value in vars(other).items():
            mine = getattr(self, name)
            if isinstance(mine, collections.Counter):
                mine.update(value)
            elif isinstance(mine, array | list) and name != "received_per_second":
                mine.extend(value)
            elif name == "received_per_second":
                mine.extend([0] * (len(value) - len(mine)))
                for second, count in enumerate(value):
                    mine[second] += count
            elif name == "drain_s":
                self.drain_s = max(self.drain_s, value)
            else:
                setattr(self, name, mine + value)


def figures(values, digits: int = 1) -> dict:
    import numpy

    if len(values) == 0:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    data = numpy.frombuffer(values, dtype=float) if isinstance(values, array) else values
    return {
        "count": int(len(data)),
        "p50": round(float(numpy.percentile(data, 50, method="nearest")), digits),
        "p99": round(float(numpy.percentile(data, 99, method="nearest")), digits),
        "max": round(float(numpy.max(data)), digits),
    }


def is_throttle(kind: str, detail: str) -> bool:
    return (kind == "failure" and detail in THROTTLE_FAILURES) or (
        kind == "error" and detail in THROTTLE_ERRORS
    )


def summarize(plan: Plan, total: FleetResult, sampler: Sampler, sandbox_alive: bool) -> dict:
    sends = total.sends
    answers = collections.Counter(kind for _, kind, _, _ in sends)
    errors = collections.Counter(detail for _, kind, detail, _ in sends if kind == "error")
    failures = collections.Counter(detail for _, kind, detail, _ in sends if kind == "failure")
    seconds = []
    phase_starts = list(itertools.accumulate([0.0] + [s for _, s in plan.phases]))
    rates = []
    for rate, length in plan.phases:
        rates += [rate] * math.ceil(length)
    by_second = collections.defaultdict(list)
    for row in sends:
        by_second[row[0]].append(row)
    for second in range(math.ceil(plan.duration)):
        rows = by_second.get(second, [])
        acked_ms = [ms for _, kind, _, ms in rows if kind == "ack"]
        entry = {
            "second": second,
            "rate": rates[second] if second < len(rates) else 0,
            "sent": len(rows),
            "acked": len(acked_ms),
            "throttled": sum(is_throttle(kind, detail) for _, kind, detail, _ in rows),
            "failed": sum(
                kind in ("error", "failure") and not is_throttle(kind, detail)
                for _, kind, detail, _ in rows
            ),
            "unanswered": sum(kind == "unanswered" for _, kind, _, _ in rows),
            "ack_ms": figures(array("d", acked_ms)),
            "delivered": (
                total.received_per_second[second] if second < len(total.received_per_second) else 0
            ),
        }
        if second + 1 < len(sampler.seconds):
            share = cpu_between(sampler.seconds[second], sampler.seconds[second + 1])
            entry["sandbox_cpu"] = round(share["sandbox"], 2)
            entry["client_cpu"] = round(share.get("client", 0.0), 2)
        seconds.append(entry)

    recovery = []
    for number, start in enumerate(phase_starts[1:-1], start=1):
        if plan.phases[number][0] >= plan.phases[number - 1][0]:
            continue
        end = phase_starts[number + 1]
        troubled = [
            entry["second"]
            for entry in seconds
            if start <= entry["second"] < end
            and (entry["throttled"] or entry["failed"] or entry["unanswered"])
        ]
        last = max(troubled, default=None)
        recovery.append(
            {
                "phase": number + 1,
                "from_rate": plan.phases[number - 1][0],
                "to_rate": plan.phases[number][0],
                # None: sends were still throttled or failing in the phase's last second
                "seconds_until_no_throttling": (
                    0 if last is None else None if last + 1 >= end else last + 1 - start
                ),
            }
        )

    phase_cpu = {}
    send_end = int(math.ceil(plan.duration))
    if len(sampler.seconds) > send_end:
        phase_cpu = cpu_between(sampler.seconds[0], sampler.seconds[send_end])
    open_cpu = cpu_between(sampler.marks["open"], sampler.marks["opened"])
    expected = total.direct + total.recovered + total.lost
    return {
        "plan": {
            "connections": plan.connections,
            "rooms": plan.rooms,
            "open_rate": plan.open_rate,
            "phases": [list(phase) for phase in plan.phases],
            "gap_wait": plan.gap_wait,
            "grace": plan.grace,
            "client_processes": plan.client_processes,
        },
        "connections": {
            "attempted": total.attempts,
            "opened": total.attempts - sum(total.failed.values()),
            "failed": dict(total.failed),
            "dropped": dict(total.dropped),
            "handshake_ms": figures(total.connect_ms),
        },
        "sends": {
            "sent": len(sends),
            "acked": answers["ack"],
            "errored": answers["error"] + answers["failure"],
            "errors": dict(errors),
            "failures": dict(failures),
            "unanswered": answers["unanswered"],
            "late_acks": total.late_acks,
            "unmatched_answers": dict(total.unmatched_answers),
            "ack_ms": figures(total.ack_ms),
            "throttle_ms": figures(total.throttle_ms),
        },
        "deliveries": {
            "expected": expected,
            "direct": total.direct,
            "recovered": total.recovered,
            "recovered_at_end": total.recovered_at_end,
            "lost": total.lost,
            "lost_while_syncing": total.lost_while_syncing,
            "lost_examples": total.lost_examples,
            "unacked_held": total.unacked_held,
            "duplicates": total.duplicates,
            "delivery_ms": figures(total.delivery_ms),
            "recovered_ms": figures(total.recovered_ms),
            "per_second_mean": round(expected / plan.duration) if plan.duration else 0,
        },
        "syncs": {
            "gaps_seen": total.gaps_seen,
            "sent": total.syncs,
            "at_end": total.syncs_at_end,
            "answers": dict(total.sync_answers),
            "truncated_histories": total.truncated_histories,
        },
        "cpu": {
            "open": {role: round(v, 3) for role, v in open_cpu.items()},
            "send": {role: round(v, 3) for role, v in phase_cpu.items()},
            "peak_rss_mb": {
                **{role: round(v / 2**20) for role, v in sampler.peak_rss.items()},
                "sandbox": round(
                    sum(sampler.peak_rss.get(role, 0) for role in SANDBOX_ROLES) / 2**20
                ),
            },
            "cpus": os.cpu_count(),
        },
        "client": {
            "schedule_lag_ms": figures(total.lag_ms, 2),
            "loop_late_ms": figures(total.stall_ms, 2),
            "loop_late_over_50ms": sum(1 for ms in total.stall_ms if ms > 50),
            "drain_s": round(total.drain_s, 1),
        },
        "per_second": seconds,
        "recovery": recovery,
        "sandbox_alive": sandbox_alive,
    }


def goals(report: dict) -> list[tuple[str, bool]]:
    """What ``--check`` asserts: nothing lost, nothing unanswered, everyone connected."""
    connections = report["connections"]
    return [
        (
            f"every member connected ({connections['opened']} of {connections['attempted']})",
            connections["opened"] == connections["attempted"],
        ),
        (
            f"no member dropped during the run ({sum(connections['dropped'].values())} dropped)",
            not connections["dropped"],
        ),
        (
            f"no delivery lost ({report['deliveries']['lost']} lost)",
            report["deliveries"]["lost"] == 0,
        ),
        (
            f"every send answered ({report['sends']['unanswered']} unanswered)",
            report["sends"]["unanswered"] == 0,
        ),
    ]


def _ms(f: dict) -> str:
    if not f["count"]:
        return "none"
    return f"p50 {f['p50']:g} / p99 {f['p99']:g} / max {f['max']:g} ms"


def _counts(counter: dict) -> str:
    return ", ".join(f"{name!r} {n}" for name, n in sorted(counter.items())) or "none"


def print_report(report: dict, per_second: bool) -> None:
    plan, connections, sends = report["plan"], report["connections"], report["sends"]
    deliveries, syncs, cpu = report["deliveries"], report["syncs"], report["cpu"]
    print(
        f"connections: {connections['opened']} opened, "
        f"{connections['attempted'] - connections['opened']} failed ({_counts(connections['failed'])}); "
        f"handshake {_ms(connections['handshake_ms'])}; dropped during the run: "
        f"{_counts(connections['dropped'])}"
    )
    print(
        f"sends: {sends['sent']}; {sends['acked']} acked, {sends['errored']} errored "
        f"(error codes: {_counts(sends['errors'])}; gateway frames: {_counts(sends['failures'])}), "
        f"{sends['unanswered']} unanswered; {sends['late_acks']} acks after a failure; "
        f"unmatched answers: {_counts(sends['unmatched_answers'])}"
    )
    print(
        f"deliveries: {deliveries['expected']} expected ({deliveries['per_second_mean']}/s); "
        f"{deliveries['direct']} direct, {deliveries['recovered']} recovered by sync "
        f"({deliveries['recovered_at_end']} after the last send), {deliveries['lost']} lost "
        f"({deliveries['lost_while_syncing']} with the member's sync still unanswered); "
        f"{deliveries['duplicates']} duplicates, {deliveries['unacked_held']} held of sends "
        f"never acked"
    )
    for example in deliveries["lost_examples"]:
        print(f"  lost: {example}")
    print(f"latency: delivery {_ms(deliveries['delivery_ms'])}")
    print(f"         ack      {_ms(sends['ack_ms'])}")
    print(f"         recovered by sync {_ms(deliveries['recovered_ms'])}")
    print(f"         throttle answer   {_ms(sends['throttle_ms'])}")
    print(
        f"syncs: {syncs['gaps_seen']} gaps seen, {syncs['sent']} syncs ({syncs['at_end']} after "
        f"the last send), answers {_counts(syncs['answers'])}, "
        f"{syncs['truncated_histories']} truncated histories"
    )
    send, rss = cpu["send"], cpu["peak_rss_mb"]
    if send:
        print(
            f"sandbox CPU over the send phase: {send['sandbox']:.2f} of {cpu['cpus']} CPUs "
            f"(gateway {send.get('gateway', 0):.2f}, workers {send.get('workers', 0):.2f}, "
            f"redis {send.get('redis', 0):.2f}, other {send.get('other', 0):.2f}); "
            f"peak RSS {rss['sandbox']} MB (gateway {rss.get('gateway', 0)}, "
            f"workers {rss.get('workers', 0)}, redis {rss.get('redis', 0)})"
        )
        print(
            f"client CPU over the send phase: {send.get('client', 0):.2f} of a CPU in "
            f"{plan['client_processes']} process(es), peak RSS {rss.get('client', 0)} MB; "
            f"schedule lag {_ms(report['client']['schedule_lag_ms'])}; a 10 ms timer late by "
            f"{_ms(report['client']['loop_late_ms'])} "
            f"({report['client']['loop_late_over_50ms']} times over 50 ms)"
        )
    opening = cpu["open"]
    print(
        f"while opening: sandbox {opening['sandbox']:.2f} CPUs, client "
        f"{opening.get('client', 0):.2f}; drain after the last send {report['client']['drain_s']} s"
    )
    for row in report["recovery"]:
        after = row["seconds_until_no_throttling"]
        print(
            f"phase {row['phase']} ({row['from_rate']:g} -> {row['to_rate']:g} msg/s per room): "
            + (
                "sends were still throttled or failing in the phase's last second"
                if after is None
                else f"throttled or failed sends stopped {after:g} s after the rate dropped"
            )
        )
    if not report["sandbox_alive"]:
        print("the sandbox exited during the run")
    if per_second:
        print(
            "  s  rate  sent  acked  thrtl  fail  unans  ack p50   ack p99  delivered  "
            "sandbox CPU  client CPU"
        )
        for row in report["per_second"]:
            ack = row["ack_ms"]
            p50 = f"{ack['p50']:8.1f}" if ack["count"] else "       -"
            p99 = f"{ack['p99']:8.1f}" if ack["count"] else "       -"
            print(
                f"{row['second']:3d} {row['rate']:5g} {row['sent']:5d} {row['acked']:6d} "
                f"{row['throttled']:6d} {row['failed']:5d} {row['unanswered']:6d} {p50}  {p99}  "
                f"{row['delivered']:9d}  {row.get('sandbox_cpu', 0):11.2f}  "
                f"{row.get('client_cpu', 0):10.2f}"
            )
