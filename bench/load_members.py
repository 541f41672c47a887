"""The members of some classrooms, in one process: each connection keeps the seqs it holds and
recovers a gap with ``sync`` as PROTOCOL.md says clients do, so the run measures the sandbox
under the clients it will really have."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench.load_report import THROTTLE_ERRORS, THROTTLE_FAILURES, FleetResult
from bench.processes import SECRET

if TYPE_CHECKING:
    from bench.load import Plan

OPEN_TIMEOUT = 30.0  # seconds for one handshake
CLOSE_TIMEOUT = 30.0  # seconds for the members' closes at the end
TAIL_WAIT = 1.0  # after the last send: seconds a member lacks an acked seq before it asks sync
POLL = 0.1  # seconds between looks at the drain's condition
MESSAGE_TYPE = "whiteboard.stroke"


class Request:
    """A ``send`` or ``sync`` a member made, and the first answer it got."""

    __slots__ = ("kind", "id", "member", "second", "sent_at", "answer", "latency_ms", "at_end")

    def __init__(self, kind: str, request_id: str, member: Member, second: int = -1) -> None:
        self.kind = kind
        self.id = request_id
        self.member = member
        self.second = second  # the send's scheduled second of the send phase
        self.sent_at = 0.0
        self.answer: tuple[str, str] | None = (
            None  # ("ack", ""), ("error", code), ("failure", text)
        )
        self.latency_ms = math.nan
        self.at_end = False


class Member:
    """One connection: the seqs it holds (all up to ``low``, and ``above``), what it asked."""

    __slots__ = (
        "number",
        "room",
        "role",
        "url",
        "ws",
        "dropped",
        "low",
        "above",
        "recovered",
        "recovered_at_end",
        "unrecoverable",
        "outstanding",
        "sync",
        "syncs",
        "gap_timer",
        "lacking_since",
    )

    def __init__(self, number: int, room: Room, role: str, url: str) -> None:
        self.number = number
        self.room = room
        self.role = role
        self.url = url
        self.ws = None
        self.dropped: tuple[int | None, float] | None = None  # close code, seconds into the run
        self.low = 0
        self.above: set[int] = set()
        self.recovered: set[int] = set()
        self.recovered_at_end: set[int] = set()
        self.unrecoverable: set[int] = set()  # out of retention when asked for
        self.outstanding: collections.deque[Request] = collections.deque()
        self.sync: Request | None = None
        self.syncs = 0
        self.gap_timer: asyncio.TimerHandle | None = None
        self.lacking_since: float | None = None

    def hold(self, seq: int) -> bool:
        """Notes that the member holds ``seq``; False when it already did."""
        low = self.low
        if seq <= low:
            return False
        above = self.above
        if seq == low + 1:
            low = seq
            while low + 1 in above:
                low += 1
                above.remove(low)
            self.low = low
            return True
        if seq in above:
            return False
        above.add(seq)
        return True

    def holds(self, seq: int) -> bool:
        return seq <= self.low or seq in self.above

    @property
    def live(self) -> bool:
        return self.ws is not None and self.dropped is None


@dataclass
class Room:
    index: int
    name: str
    members: list[Member] = field(default_factory=list)
    sends: dict[str, Request] = field(default_factory=dict)
    acked: dict[int, Member] = field(default_factory=dict)  # seq -> its sender
    max_acked: int = 0
    rotation: int = 0
    # The room's latest seq when its members joined: what they hold without having been sent.
    baseline: int = 0


class Fleet:
    """The members of some classrooms, in one process: opens them, sends, keeps the tally."""

    def __init__(self, plan: Plan, rooms: list[int], base_url: str) -> None:
        from backend import tokens

        self.plan = plan
        self.rooms = [Room(index, plan.room_name(index)) for index in rooms]
        self.members: list[Member] = []
        for room in self.rooms:
            for rank, number in enumerate(plan.members_of(room.index)):
                role = "teacher" if rank == 0 else "student"
                token = tokens.mint(SECRET, sub=f"member-{number}", role=role, rooms=[room.name])
                url = f"{base_url}?room={room.name}&token={token}"
                room.members.append(Member(number, room, role, url))
        self.members = sorted(
            (m for room in self.rooms for m in room.members), key=lambda m: m.number
        )
        self.result = FleetResult()
        self.session = None
        self.readers: list[asyncio.Task] = []
        self.tasks: set[asyncio.Task] = set()
        self.closing = False
        self.start = math.inf  # monotonic time the send phase starts
        self.outstanding_sends = 0
        self.at_end = False
        self.payload = {"points": [[120 + n, 340 - n] for n in range(8)], "color": "#1f77b4"}

    # -- opening

    async def open(self, at: float) -> None:
        """Opens this fleet's members, member ``i`` of the school at ``at + i / open_rate``."""
        import aiohttp

        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
        )
        opening = []
        for member in self.members:
            await sleep_until(at + member.number / self.plan.open_rate)
            opening.append(asyncio.create_task(self._open(member)))
        await asyncio.gather(*opening)
        await self._join_syncs()
        # The members live as long as the run: the collector's full passes skip them.
        gc.collect()
        gc.freeze()

    async def _join_syncs(self) -> None:
        """Each room's state before anything is sent, as a client asks ``sync`` when it joins: a
        room's seqs start above its floor, not at 1 (PROTOCOL.md), so a member holds every seq
        up to the ``latest`` this answers and counts gaps from there."""
        joins = []
        for room in self.rooms:
            member = next((m for m in room.members if m.live), None)
            if member is None:
                continue
            request = Request("join", f"join-{member.number}", member)
            member.sync = request
            joins.append(request)
            self._spawn(self._transmit(request, json.dumps({"action": "sync", "id": request.id})))
        deadline = time.monotonic() + OPEN_TIMEOUT
        while any(r.answer is None for r in joins) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def _open(self, member: Member) -> None:
        import aiohttp

        self.result.attempts += 1
        started = time.monotonic()
        try:
            ws = await asyncio.wait_for(
                self.session.ws_connect(
                    member.url, autoping=True, compress=0, max_msg_size=0, heartbeat=None
                ),
                OPEN_TIMEOUT,
            )
        except aiohttp.WSServerHandshakeError as error:
            self.result.failed[f"HTTP {error.status}"] += 1
            return
        except TimeoutError:
            self.result.failed["no handshake within 30 s"] += 1
            return
        except (aiohttp.ClientError, OSError) as error:
            self.result.failed[type(error).__name__] += 1
            return
        self.result.connect_ms.append((time.monotonic() - started) * 1000)
        member.ws = ws
        self.readers.append(asyncio.create_task(self._read(member)))

    # -- what members receive

    async def _read(self, member: Member) -> None:
        from aiohttp import WSMsgType

        ws = member.ws
        on_frame = self._on_frame
        monotonic = time.monotonic
        text = WSMsgType.TEXT
        while True:
            message = await ws.receive()
            if message.type is text:
                on_frame(member, message.data, monotonic())
            elif message.type is not WSMsgType.BINARY:
                break
        if not self.closing:
            member.dropped = (ws.close_code, time.monotonic() - self.start)
            self.result.dropped[f"close {ws.close_code}"] += 1
            for request in list(member.outstanding):
                self._answer(request, ("failure", "connection dropped"), time.monotonic())

    def _on_frame(self, member: Member, text: str, now: float) -> None:
        frame = json.loads(text)
        event = frame.get("event")
        if event == "message":
            seq = frame["seq"]
            gap_before = bool(member.above)
            if not member.hold(seq):
                self.result.duplicates += 1
                return
            request = member.room.sends.get(frame.get("id"))
            if request is not None and request.sent_at:
                self.result.delivery_ms.append((now - request.sent_at) * 1000)
            second = int(now - self.start)
            if second >= 0:
                per_second = self.result.received_per_second
                if second >= len(per_second):
                    per_second.extend([0] * (second + 1 - len(per_second)))
                per_second[second] += 1
            if member.above and not gap_before:
                self.result.gaps_seen += 1
                self._watch_gap(member)
        elif event == "ack":
            request = member.room.sends.get(frame.get("id"))
            if request is None or request.member is not member:
                self.result.unmatched_answers["ack"] += 1
                return
            seq = frame["seq"]
            room = member.room
            room.acked[seq] = member
            room.max_acked = max(room.max_acked, seq)
            member.hold(seq)
            if request.answer is None:
                self._answer(request, ("ack", ""), now)
            else:
                self.result.late_acks += 1
        elif event == "history":
            self._on_history(member, frame, now)
        elif event == "error":
            self._on_answer(member, frame.get("id"), ("error", str(frame.get("code"))), now)
        elif event is None and "message" in frame:
            # API Gateway's own failure frame; after the sandbox's redesign it names the frame.
            self._on_answer(member, frame.get("id"), ("failure", str(frame["message"])), now)
        # join, leave, presence and pong need nothing here

    def _on_answer(
        self, member: Member, request_id: str | None, answer: tuple[str, str], now: float
    ) -> None:
        """An error or failure frame: for the request it names, else the oldest unanswered."""
        request = None
        if request_id is not None:
            request = member.room.sends.get(request_id)
            if request is None and member.sync is not None and member.sync.id == request_id:
                request = member.sync
        elif member.outstanding:
            request = member.outstanding[0]
        if request is None or request.member is not member:
            self.result.unmatched_answers[":".join(answer)] += 1
            return
        if request.answer is None:
            self._answer(request, answer, now)

    def _answer(self, request: Request, answer: tuple[str, str], now: float) -> None:
        request.answer = answer
        request.latency_ms = (now - request.sent_at) * 1000
        member = request.member
        with contextlib.suppress(ValueError):
            member.outstanding.remove(request)
        if request.kind == "send":
            self.outstanding_sends -= 1
            if answer[0] == "ack":
                self.result.ack_ms.append(request.latency_ms)
            elif answer[1] in THROTTLE_FAILURES or answer[1] in THROTTLE_ERRORS:
                self.result.throttle_ms.append(request.latency_ms)
            return
        self.result.sync_answers["history" if answer[0] == "ack" else ":".join(answer)] += 1
        if member.sync is request:
            member.sync = None
            if member.above:
                self._watch_gap(member)

    def _on_history(self, member: Member, frame: dict, now: float) -> None:
        request = member.sync
        messages = frame.get("messages") or []
        if request is not None and request.kind == "join":
            latest = frame.get("latest", 0)
            member.room.baseline = latest
            for other in member.room.members:
                other.low = max(other.low, latest)
            request.answer = ("ack", "")
            member.sync = None
            with contextlib.suppress(ValueError):
                member.outstanding.remove(request)
            return
        if frame.get("truncated") and messages:
            self.result.truncated_histories += 1
            for seq in range(member.low + 1, messages[0]["seq"]):
                if member.hold(seq):
                    member.unrecoverable.add(seq)
        sends = member.room.sends
        for message in messages:
            seq = message["seq"]
            if member.hold(seq):
                member.recovered.add(seq)
                if request is not None and request.at_end:
                    member.recovered_at_end.add(seq)
                sent = sends.get(message.get("id"))
                if sent is not None and sent.sent_at:
                    self.result.recovered_ms.append((now - sent.sent_at) * 1000)
        latest = frame.get("latest", 0)
        complete = not messages or messages[-1]["seq"] >= latest
        if request is None:
            self.result.unmatched_answers["history"] += 1
        elif complete and request.answer is None:
            self._answer(request, ("ack", ""), now)

    # -- gaps and sync

    def _watch_gap(self, member: Member) -> None:
        if member.gap_timer is None and member.sync is None and not self.closing:
            loop = asyncio.get_running_loop()
            member.gap_timer = loop.call_later(self.plan.gap_wait, self._gap_check, member)

    def _gap_check(self, member: Member) -> None:
        member.gap_timer = None
        if member.above and member.sync is None and member.live:
            self._ask_sync(member, at_end=False)

    def _ask_sync(self, member: Member, at_end: bool) -> None:
        member.syncs += 1
        request = Request("sync", f"sync-{member.number}-{member.syncs}", member)
        request.at_end = at_end
        member.sync = request
        self.result.syncs += 1
        self.result.syncs_at_end += at_end
        frame = {"action": "sync", "since": member.low, "id": request.id}
        self._spawn(self._transmit(request, json.dumps(frame)))

    # -- sending

    async def _transmit(self, request: Request, text: str) -> None:
        member = request.member
        request.sent_at = time.monotonic()
        member.outstanding.append(request)
        try:
            await member.ws.send_str(text)
        except Exception as error:  # the connection went away under us: an answer of sorts
            if request.answer is None and not self.closing:
                self._answer(
                    request, ("failure", f"client: {type(error).__name__}"), time.monotonic()
                )

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _send_from(self, room: Room, second: int) -> None:
        """The room's next sender in rotation (among members still connected) sends."""
        live = [m for m in room.members if m.live]
        if not live:
            return
        member = live[room.rotation % len(live)]
        request_id = f"{room.index}.{room.rotation}"
        room.rotation += 1
        request = Request("send", request_id, member, second)
        room.sends[request_id] = request
        self.outstanding_sends += 1
        frame = {"action": "send", "type": MESSAGE_TYPE, "id": request_id, "data": self.payload}
        self._spawn(self._transmit(request, json.dumps(frame, separators=(",", ":"))))

    async def run(self, start: float) -> FleetResult:
        """Sends on the plan's timeline from ``start`` (monotonic), then drains; the tally."""
        self.start = start
        by_index = {room.index: room for room in self.rooms}
        lag = self.result.lag_ms
        probe = asyncio.create_task(self._probe_loop(start + self.plan.duration))
        for offset, index in self.plan.timeline([room.index for room in self.rooms]):
            due = start + offset
            await sleep_until(due)
            lag.append((time.monotonic() - due) * 1000)
            self._send_from(by_index[index], int(offset))
        await self._drain(start + self.plan.duration)
        await probe
        return self._tally()

    async def _probe_loop(self, until: float) -> None:
        """How late a 10 ms timer fires in this process's loop over the send phase: a loop
        that is late here is late reading members' frames too (CPU, or the kernel's scheduler
        giving the CPUs to the sandbox)."""
        stalls = self.result.stall_ms
        while True:
            due = time.monotonic() + 0.01
            if due > until:
                return
            await asyncio.sleep(0.01)
            stalls.append((time.monotonic() - due) * 1000)

    async def _drain(self, scheduled_end: float) -> None:
        """Until every send is answered and every member holds every acked seq (or the grace)."""
        await sleep_until(scheduled_end)
        self.at_end = True
        deadline = time.monotonic() + self.plan.grace
        while True:
            now = time.monotonic()
            lacking = []
            for member in self.members:
                if member.live and (member.low < member.room.max_acked or member.above):
                    lacking.append(member)
                else:
                    member.lacking_since = None
            if (not lacking and self.outstanding_sends == 0) or now >= deadline:
                break
            for member in lacking:
                if member.lacking_since is None:
                    member.lacking_since = now
                elif now - member.lacking_since >= TAIL_WAIT and member.sync is None:
                    member.lacking_since = now
                    if member.gap_timer is not None:
                        member.gap_timer.cancel()
                        member.gap_timer = None
                    self._ask_sync(member, at_end=True)
            await asyncio.sleep(POLL)
        self.result.drain_s = time.monotonic() - scheduled_end

    def _tally(self) -> FleetResult:
        result = self.result
        for room in self.rooms:
            for request in room.sends.values():
                kind, detail = request.answer or ("unanswered", "")
                result.sends.append((request.second, kind, detail, request.latency_ms))
            opened = [m for m in room.members if m.ws is not None]
            for member in opened:
                held_acked = 0
                for seq, sender in room.acked.items():
                    held = member.holds(seq) and seq not in member.unrecoverable
                    held_acked += held
                    if sender is member:
                        continue
                    if not held:
                        result.lost += 1
                        result.lost_while_syncing += member.sync is not None
                        if len(result.lost_examples) < 5:
                            result.lost_examples.append(
                                f"{room.name} seq {seq} never reached member-{member.number}"
                            )
                    elif seq in member.recovered:
                        result.recovered += 1
                        result.recovered_at_end += seq in member.recovered_at_end
                    else:
                        result.direct += 1
                result.unacked_held += member.low - room.baseline + len(member.above) - held_acked
        return result

    async def close(self) -> None:
        self.closing = True
        for member in self.members:
            if member.gap_timer is not None:
                member.gap_timer.cancel()
        live = [m.ws for m in self.members if m.ws is not None and not m.ws.closed]
        if live:
            await asyncio.wait(
                [asyncio.create_task(ws.close()) for ws in live], timeout=CLOSE_TIMEOUT
            )
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        if self.session is not None:
            await self.session.close()


async def sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
