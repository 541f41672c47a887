"""A fan-out with the lean poster: many posts from one thread over pooled keep-alive sockets.

``LeanPoster.post_many`` writes a request on each of up to ``concurrency`` connections, reads
whichever answers first and gives that connection the next request; ``fanout.deliver`` retries
the throttled posts together and posts the sender's ack (``lead``) first. Every test here runs
against the scripted raw HTTP server of test_poster, so each byte a socket sees is real.
"""

# The fixtures imported from test_poster are parameters of the tests here.
# ruff: noqa: F811

from __future__ import annotations

import datetime
import ssl
import threading
import time
from collections import Counter

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from backend import fanout
from backend.fanout import deliver
from backend.poster import Boto3Poster, Gone, LeanPoster, PostFailed, Throttled, Timeout
from tests.backend.test_poster import (  # noqa: F401  (fixtures, re-exported for pytest)
    CLOSE,
    CREDENTIALS,
    HANG,
    OK,
    RESET,
    certificate,
    http,
    lean,
    raw_server,
    tls_server,
)
from tests.waiting import eventually


def members(count: int, prefix: str = "member") -> list[tuple[str, bytes]]:
    """(connection id, frame) posts, each frame its own, so a duplicate or a loss shows."""
    return [(f"{prefix}-{n}", b'{"n":%d}' % n) for n in range(count)]


def connection_id(request) -> str:
    return request.path.rpartition("/")[2]


@pytest.fixture
def quick_backoff(monkeypatch):
    """Throttling backoff in milliseconds: the retries are what is tested, not the wait."""
    monkeypatch.setattr(fanout, "THROTTLE_BASE_DELAY", 0.001)


# ----- lanes: how many connections, how many requests in flight ----------------------------------


def test_each_frame_goes_once_to_its_connection_over_the_lanes_and_they_are_kept(raw_server):
    server = raw_server()
    poster = lean(server)
    posts = members(10)
    assert poster.post_many(posts, 4) == [None] * len(posts)
    # Each frame reached its own connection's path, once.
    assert sorted((r.path, r.body) for r in server.requests) == sorted(
        (f"/prod/@connections/{cid}", frame) for cid, frame in posts
    )
    assert server.connections == 4  # one per lane; an answered lane carried the next request
    assert len(poster.pool._idle) == 4
    # The next fan-out starts on the kept sockets.
    assert poster.post_many(posts, 4) == [None] * len(posts)
    assert server.connections == 4
    assert Counter(server.posted()) == Counter({frame: 2 for _, frame in posts})


def test_an_empty_fan_out_opens_nothing(raw_server):
    server = raw_server()
    poster = lean(server)
    assert poster.post_many([], 4) == []
    assert server.connections == 0


def test_more_posts_than_lanes_never_have_more_in_flight_than_the_concurrency(raw_server):
    lock = threading.Lock()
    in_flight = 0
    peak = 0

    def answer(request):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.01)  # the scenario: a slow answer, so lanes in flight together overlap here
        with lock:
            in_flight -= 1
        return OK

    server = raw_server(answer)
    poster = lean(server)
    posts = members(50)
    assert poster.post_many(posts, 4) == [None] * len(posts)
    assert Counter(server.posted()) == Counter(frame for _, frame in posts)  # each exactly once
    assert server.connections == 4
    assert peak <= 4
    assert peak >= 2  # the lanes do run together, not one after another


def test_a_fan_out_is_no_wider_than_the_pool(raw_server):
    server = raw_server()
    poster = lean(server)  # a pool of 8
    posts = members(16)
    assert poster.post_many(posts, 16) == [None] * len(posts)
    assert server.connections == poster.pool.maxsize
    assert len(poster.pool._idle) == poster.pool.maxsize


def test_concurrent_fan_outs_share_the_pools_connections(raw_server):
    # Two fan-outs at once (the sandbox's handler threads): the second gets what the first
    # left, at least one lane, instead of opening connections of its own to close after.
    def slowly(request):
        time.sleep(0.01)  # the scenario: slow answers, so the two fan-outs overlap
        return OK

    server = raw_server(slowly)
    poster = lean(server)  # a pool of 8
    outcomes: dict[str, list] = {}
    fan_outs = [
        threading.Thread(
            target=lambda name=name: outcomes.update({name: poster.post_many(members(20, name), 8)})
        )
        for name in ("first", "second")
    ]
    for thread in fan_outs:
        thread.start()
    for thread in fan_outs:
        thread.join(30)
    assert outcomes == {"first": [None] * 20, "second": [None] * 20}
    assert server.connections <= poster.pool.maxsize + 1
    assert len(server.posted()) == 40
    assert poster.pool._lent == 0


def test_a_cold_start_opens_its_connections_in_parallel(raw_server, certificate):
    # TLS handshakes need the server: it counts how many it is in at once. Opened one after
    # another, they would never overlap.
    lock = threading.Lock()
    handshaking = 0
    peak = 0

    def during_handshake(tls_socket, server_name, context):
        nonlocal handshaking, peak
        with lock:
            handshaking += 1
            peak = max(peak, handshaking)
        time.sleep(0.05)  # the scenario: a slow handshake, so handshakes at once overlap
        with lock:
            handshaking -= 1

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    context.sni_callback = during_handshake  # called even without SNI (an IP address)
    server = raw_server(tls=context)
    poster = lean(server, ssl_context=ssl.create_default_context(cafile=certificate[0]))
    posts = members(8)
    assert poster.post_many(posts, 8) == [None] * len(posts)
    assert server.connections == 8
    assert Counter(server.posted()) == Counter(frame for _, frame in posts)
    assert peak >= 2


def test_each_request_of_a_fan_out_is_signed_for_its_own_frame(raw_server, monkeypatch):
    # post_many hashes a frame once per bytes object: a shared frame and frames of their own
    # must each be signed with their own digest.
    server = raw_server()
    poster = lean(server)
    shared = b'{"event":"message","text":"hello"}'
    posts = [(f"member-{n}", shared) for n in range(3)] + members(3, "other") + [("empty", b"")]
    assert poster.post_many(posts, 3) == [None] * len(posts)
    assert len(server.requests) == len(posts)
    for request in server.requests:
        when = datetime.datetime.strptime(request.headers["x-amz-date"], "%Y%m%dT%H%M%SZ")
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda when=when: when)
        expected = AWSRequest(
            method="POST", url=server.url.replace("/prod", request.path), data=request.body
        )
        SigV4Auth(CREDENTIALS, "execute-api", "us-east-1").add_auth(expected)
        assert request.headers["authorization"] == expected.headers["Authorization"]
        assert request.headers["content-length"] == str(len(request.body))


# ----- outcomes, one per post, where the post is -------------------------------------------------

OUTCOMES = {
    "gone-1": (http(410, b'{"message":"Gone"}', ("x-amzn-ErrorType: GoneException",)), Gone),
    "slow-1": (
        http(429, b'{"message":"Rate"}', ("x-amzn-ErrorType: LimitExceededException",)),
        Throttled,
    ),
    "broken-1": (http(500, b'{"message":"Internal"}'), PostFailed),
}


def test_each_post_gets_its_own_outcome_in_its_own_place(raw_server):
    posts = members(3) + [(cid, b"{}") for cid in OUTCOMES] + members(3, "late")
    all_received = threading.Event()

    def answer(request):
        # Whichever request arrives last says so, the first post too: on a loaded machine its
        # lane may connect after the others have sent everything.
        if len(server.requests) == len(posts):
            all_received.set()
        if request.body == b'{"n":0}':
            # The first post is answered once every other one has reached the server, so
            # after them: places are not answer order.
            all_received.wait(10)
        return OUTCOMES.get(connection_id(request), (OK, None))[0]

    server = raw_server(answer)
    poster = lean(server)
    errors = poster.post_many(posts, 3)
    expected = [OUTCOMES.get(cid, (OK, None))[1] for cid, _ in posts]
    assert [type(error) if error else None for error in errors] == expected
    gone = errors[[cid for cid, _ in posts].index("gone-1")]
    assert gone.args == ("gone-1",)  # the registration to remove
    assert "500" in str(errors[[cid for cid, _ in posts].index("broken-1")])
    assert len(poster.pool._idle) == 3  # error answers do not cost their connection


def throttling_server(raw_server, throttled: dict[str, int]):
    """429 for a connection id that many times (-1: always), else 410 for gone-*, 500 for
    broken-*, 200 otherwise."""
    lock = threading.Lock()
    left = dict(throttled)

    def answer(request):
        cid = connection_id(request)
        with lock:
            if left.get(cid, 0) != 0:
                left[cid] -= 1
                return OUTCOMES["slow-1"][0]
        if cid.startswith("gone-"):
            return OUTCOMES["gone-1"][0]
        if cid.startswith("broken-"):
            return OUTCOMES["broken-1"][0]
        return OK

    return raw_server(answer)


def test_deliver_reports_each_outcome_and_retries_the_throttled_together(
    raw_server, quick_backoff, monkeypatch
):
    server = throttling_server(raw_server, {"slow-1": 2, "flooded-1": -1})
    poster = lean(server)
    batches = []
    post_many = poster.post_many

    def recording(posts, concurrency):
        batches.append([cid for cid, _ in posts])
        return post_many(posts, concurrency)

    monkeypatch.setattr(poster, "post_many", recording)
    ok = [f"ok-{n}" for n in range(10)]
    targets = ok + ["gone-1", "broken-1", "slow-1", "flooded-1"]
    result = deliver(poster, targets, '{"event":"x"}', concurrency=4)
    assert result.delivered == len(ok) + 1
    assert result.gone == ["gone-1"]
    assert set(result.failed) == {"broken-1", "flooded-1"}
    assert "500" in result.failed["broken-1"]
    assert result.failed["flooded-1"] == "throttled after retries"
    assert result.throttled_retries == 2
    # One fan-out, then the throttled ones again, together, until each is done.
    assert batches[0] == targets
    assert batches[1:] == [["slow-1", "flooded-1"]] * 2 + [["flooded-1"]] * (
        fanout.THROTTLE_ATTEMPTS - 3
    )
    posted = Counter(connection_id(r) for r in server.requests)
    once = dict.fromkeys(ok + ["gone-1", "broken-1"], 1)  # 410 and 500 are not retried
    assert posted == Counter({**once, "slow-1": 3, "flooded-1": fanout.THROTTLE_ATTEMPTS})


# ----- connections that end --------------------------------------------------------------------


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_stale_keep_alive_lane_is_retried_once_on_a_new_connection(raw_server, how):
    # Every connection answers once, then ends (FIN or RST) without "Connection: close": each
    # lane's next request meets a dead socket and is sent again on a new one.
    server = raw_server(lambda request: (OK, how))
    poster = lean(server)
    posts = members(12)
    assert poster.post_many(posts, 3) == [None] * len(posts)
    assert Counter(server.posted()) == Counter(frame for _, frame in posts)  # each once
    assert server.connections == len(posts)


def test_lanes_the_server_closed_while_idle_are_replaced_in_the_next_fan_out(raw_server):
    server = raw_server(idle_close=0.3)
    poster = lean(server)
    posts = members(8)
    assert poster.post_many(posts, 4) == [None] * len(posts)
    assert len(poster.pool._idle) == 4
    eventually(lambda: server.idle_closed == 4, message="the server to close the kept connections")
    assert poster.post_many(posts, 4) == [None] * len(posts)
    assert Counter(server.posted()) == Counter({frame: 2 for _, frame in posts})
    assert server.connections == 8  # each stale lane replaced once


def test_a_server_that_keeps_ending_connections_still_gets_each_frame_once(raw_server):
    served: Counter[int] = Counter()
    lock = threading.Lock()

    def answer(request):
        with lock:
            served[request.connection] += 1
            last = served[request.connection] == 3
        return (OK, "close") if last else OK

    server = raw_server(answer)
    poster = lean(server)
    posts = members(100)
    assert poster.post_many(posts, 8) == [None] * len(posts)
    assert Counter(server.posted()) == Counter(frame for _, frame in posts)


@pytest.mark.parametrize("how", [CLOSE, RESET])
def test_a_request_dropped_on_a_new_connection_fails_only_that_post(raw_server, how):
    server = raw_server(lambda request: how if request.body == b"drop" else OK)
    poster = lean(server)
    posts = [("member-0", b"0"), ("member-1", b"drop"), ("member-2", b"2")]
    errors = poster.post_many(posts, 3)  # three new connections: nothing was reused
    assert errors[0] is None and errors[2] is None
    assert isinstance(errors[1], PostFailed)
    assert "closed the connection without answering" in str(errors[1])
    assert sorted(server.posted()) == sorted(frame for _, frame in posts)  # not sent again


@pytest.mark.parametrize("how", [CLOSE, RESET])
def test_a_request_dropped_on_a_kept_connection_is_sent_once_more_then_fails(raw_server, how):
    server = raw_server(lambda request: how if request.body == b"drop" else OK)
    poster = lean(server)
    errors = poster.post_many([("C1", b"first"), ("C2", b"drop"), ("C3", b"third")], 1)
    assert errors[0] is None and errors[2] is None
    assert isinstance(errors[1], PostFailed)
    assert "closed the connection without answering" in str(errors[1])
    # On the kept connection (it may have been closed while idle), then on a new one: no more.
    assert server.posted() == [b"first", b"drop", b"drop", b"third"]


def test_connection_close_answers_are_not_kept(raw_server):
    server = raw_server(lambda request: (http(200, headers=("Connection: close",)), "close"))
    poster = lean(server)
    posts = members(6)
    assert poster.post_many(posts, 2) == [None] * len(posts)
    assert Counter(server.posted()) == Counter(frame for _, frame in posts)
    assert server.connections == len(posts)  # never written to a closing connection
    assert len(poster.pool._idle) == 0


def test_a_server_that_never_answers_fails_those_posts_after_the_read_timeout(raw_server):
    server = raw_server(lambda request: HANG if request.body == b"hang" else OK)
    poster = lean(server, read_timeout=0.3)
    posts = [("hung-0", b"hang")] + members(5) + [("hung-1", b"hang")] + members(3, "late")
    started = time.monotonic()
    errors = poster.post_many(posts, 3)
    elapsed = time.monotonic() - started
    for (_, frame), error in zip(posts, errors, strict=True):
        if frame == b"hang":
            assert isinstance(error, Timeout)
            assert "did not answer within 0.3 s" in str(error)
        else:
            assert error is None
    assert (
        elapsed < 4
    )  # the server holds a hung request 10 s: the timeout, not the server, ended it
    assert Counter(server.posted()) == Counter(frame for _, frame in posts)


@pytest.mark.parametrize(
    ("url", "why"),
    [("http://127.0.0.1:1/prod", "could not connect"), ("ftp://h/prod", "not an http")],
)
def test_an_unreachable_endpoint_fails_every_post_without_raising(url, why):
    poster = LeanPoster(url, "us-east-1", concurrency=8, credentials=CREDENTIALS)
    posts = members(5)
    errors = poster.post_many(posts, 4)
    assert len(errors) == len(posts)
    assert all(isinstance(error, PostFailed) and why in str(error) for error in errors)
    result = deliver(poster, [cid for cid, _ in posts], b"{}", concurrency=4)
    assert result.delivered == 0
    assert list(result.failed) == [cid for cid, _ in posts]


# ----- the sender's ack, first in the same fan-out ----------------------------------------------

ACK = b'{"event":"ack","id":"m-1"}'
FRAME = b'{"event":"message","text":"hi"}'


@pytest.mark.parametrize("kind", [LeanPoster, Boto3Poster])
def test_the_lead_is_written_first_and_is_not_a_delivery(raw_server, aws_environment, kind):
    server = raw_server()
    poster = kind(server.url, "us-east-1", concurrency=1)
    targets = [f"member-{n}" for n in range(5)]
    result = deliver(poster, targets, FRAME, concurrency=1, lead=("sender", ACK))
    first = server.requests[0]
    assert (connection_id(first), first.body) == ("sender", ACK)
    assert sorted(connection_id(r) for r in server.requests[1:]) == targets
    assert all(r.body == FRAME for r in server.requests[1:])
    assert result.delivered == len(targets)
    assert result.lead_failure is None


@pytest.fixture(params=["lean", "boto3"])
def poster(request, management, aws_environment):
    kind = LeanPoster if request.param == "lean" else Boto3Poster
    return kind(management.url, "us-east-1", concurrency=8)


@pytest.mark.parametrize("state", ["answered", "gone", "failing", "throttled"])
def test_the_leads_outcome_is_its_own(poster, management, quick_backoff, state):
    if state == "gone":
        management.gone.add("sender")
    elif state == "failing":
        management.fail.add("sender")
    elif state == "throttled":
        management.throttle["sender"] = 1
    targets = [f"member-{n}" for n in range(12)]
    result = deliver(poster, targets, FRAME, concurrency=8, lead=("sender", ACK))
    # The members' fan-out is the same whatever became of the ack.
    assert result.delivered == len(targets)
    assert result.gone == [] and result.failed == {}
    assert all(management.frames(t) == [{"event": "message", "text": "hi"}] for t in targets)
    assert result.throttled_retries == 0  # the ack's retries are not the members'
    if state == "failing":
        assert "InternalServerError" in result.lead_failure
    else:
        assert result.lead_failure is None  # a gone sender is not a failure: it left
    delivered_ack = state in ("answered", "throttled")
    assert management.frames("sender") == ([{"event": "ack", "id": "m-1"}] if delivered_ack else [])


def test_a_lead_without_members_is_posted_alone(poster, management):
    result = deliver(poster, [], FRAME, lead=("sender", ACK))
    assert management.frames("sender") == [{"event": "ack", "id": "m-1"}]
    assert (result.delivered, result.gone, result.failed, result.lead_failure) == (0, [], {}, None)


# ----- HTTPS --------------------------------------------------------------------------------


def test_a_fan_out_over_https_keeps_its_lanes(tls_server, certificate):
    poster = lean(tls_server, ssl_context=ssl.create_default_context(cafile=certificate[0]))
    posts = members(20)
    for _ in range(2):
        assert poster.post_many(posts, 4) == [None] * len(posts)
    assert Counter(tls_server.posted()) == Counter({frame: 2 for _, frame in posts})
    assert tls_server.connections == 4


def test_a_fan_out_over_https_verifies_the_certificate(tls_server):
    errors = lean(tls_server).post_many(members(4), 4)  # self-signed: not trusted by default
    assert all(
        isinstance(error, PostFailed) and "could not connect" in str(error) for error in errors
    )
    assert tls_server.requests == []


# Regression: over TLS 1.3 the server sends its session tickets after the handshake, so a new
# lane is readable before any answer. A blocking first read there waited out that lane's
# timeout while every other lane queued behind it: hung lanes timed out one after another
# (6 x 0.5 s here) and were reported as "closed the connection without answering".
def test_hung_https_lanes_time_out_together(raw_server, certificate):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = raw_server(lambda request: HANG, tls=context)
    poster = lean(
        server, read_timeout=0.5, ssl_context=ssl.create_default_context(cafile=certificate[0])
    )
    started = time.monotonic()
    errors = poster.post_many(members(6), 6)
    elapsed = time.monotonic() - started
    assert all("did not answer within 0.5 s" in str(error) for error in errors)
    assert elapsed < 2  # six lanes waited together: 0.5 s, not 6 x 0.5 s


def test_a_request_that_cannot_be_built_fails_the_fan_out_without_leaking_connections(
    raw_server, monkeypatch
):
    server = raw_server()
    poster = lean(server)
    poster.post_many(members(4), 4)
    kept = list(poster.pool._idle)
    assert len(kept) == 4
    built = []

    def build(method, connection_id, body, digest):
        if len(built) == 2:
            raise RuntimeError("no signing key")
        built.append(connection_id)
        return LeanPoster._build(poster, method, connection_id, body, digest)

    monkeypatch.setattr(poster, "_build", build)
    with pytest.raises(RuntimeError):
        poster.post_many(members(4), 4)
    # The two sent and the two never used are closed, not left open or half used.
    assert [sock.fileno() for sock in kept] == [-1] * 4
    assert len(poster.pool._idle) == 0
    assert poster.pool._lent == 0


def test_without_epoll_the_fan_out_waits_with_the_selectors_module(raw_server, monkeypatch):
    # macOS and Windows (the sandbox) have no epoll; Lambda (Linux) has.
    import select

    from backend.poster.multiplex import Readable

    monkeypatch.delattr(select, "epoll", raising=False)
    waiting = Readable()
    assert waiting._epoll is None and waiting._selector is not None
    waiting.close()
    server = raw_server(lambda request: http(410) if request.body == b'{"n":3}' else OK)
    poster = lean(server)
    errors = poster.post_many(members(12), 4)
    assert [type(error).__name__ if error else None for error in errors] == [
        None,
        None,
        None,
        "Gone",
    ] + [None] * 8
    assert Counter(server.posted()) == Counter(frame for _, frame in members(12))
