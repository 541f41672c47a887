"""The console endpoints' checks: each refusal, and the requests the console itself sends."""

from __future__ import annotations

import pytest

from desktop.sandbox import guard

KEY = "k3y-0123456789abcdefghijklmnopqrstuvwxyzABCD"
PORT = 8765


def console_request(**changes):
    """What the console sends to ``POST /_admin`` on a loopback sandbox, with changes."""
    request = {
        "method": "POST",
        "host": f"127.0.0.1:{PORT}",
        "origin": None,
        "content_type": "application/json",
        "remote": "127.0.0.1",
        "authorization": f"Bearer {KEY}",
        "admin_key": KEY,
        "port": PORT,
    }
    request.update(changes)
    return guard.check(**request)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"host": f"localhost:{PORT}"},
        {"host": f"LOCALHOST:{PORT}"},
        {"host": f"[::1]:{PORT}", "remote": "::1"},
        {"remote": "::ffff:127.0.0.1"},
        {"remote": "127.0.0.2"},
        {"content_type": "application/json; charset=utf-8"},
        {"content_type": 'Application/JSON;charset="UTF-8"'},
        {"authorization": f"bearer {KEY}"},
        {"method": "GET", "content_type": None},
        {"method": "HEAD", "content_type": "text/plain"},
        {"host": "localhost", "port": 80},
    ],
)
def test_the_consoles_own_requests_are_served(changes):
    assert console_request(**changes) is None


@pytest.mark.parametrize(
    ("changes", "status", "says"),
    [
        ({"remote": "192.168.1.20"}, 403, "this machine only"),
        ({"remote": None}, 403, "this machine only"),
        ({"origin": "https://evil.example"}, 403, "Origin"),
        ({"origin": "null"}, 403, "Origin"),
        ({"origin": f"http://127.0.0.1:{PORT}"}, 403, "Origin"),  # even our own
        ({"host": f"evil.example:{PORT}"}, 403, "Host"),  # DNS rebinding
        ({"host": "127.0.0.1:9999"}, 403, "Host"),
        ({"host": "127.0.0.1"}, 403, "Host"),
        ({"host": f"0.0.0.0:{PORT}"}, 403, "Host"),
        ({"host": None}, 403, "Host"),
        ({"authorization": None}, 401, "need"),
        ({"authorization": KEY}, 401, "need"),
        ({"authorization": "Basic dXNlcjpwYXNz"}, 401, "need"),
        ({"authorization": "Bearer "}, 401, "need"),
        ({"authorization": "Bearer wrong"}, 401, "not this sandbox's"),
        ({"authorization": f"Bearer {KEY}x"}, 401, "not this sandbox's"),
        ({"authorization": "Bearer k\u00e9y"}, 401, "not this sandbox's"),
        ({"authorization": "Bearer k\udcffy"}, 401, "not this sandbox's"),  # surrogateescape
        ({"content_type": None}, 415, "JSON"),
        ({"content_type": "text/plain"}, 415, "JSON"),
        ({"content_type": "application/x-www-form-urlencoded"}, 415, "JSON"),
        ({"content_type": "multipart/form-data; boundary=x"}, 415, "JSON"),
        ({"content_type": "application/json; charset=latin-1"}, 415, "JSON"),
        ({"content_type": "application/json; boundary=x"}, 415, "JSON"),
        ({"content_type": "application/jsonx"}, 415, "JSON"),
    ],
)
def test_each_refusal(changes, status, says):
    refusal = console_request(**changes)
    assert refusal is not None
    assert refusal.status == status
    assert says in refusal.reason
    assert refusal.reason.endswith(".") and refusal.reason.count(". ") == 0  # one sentence
    if status == 401:
        assert refusal.headers["WWW-Authenticate"].startswith("Bearer ")


def test_refusals_that_need_no_secret_come_first():
    """A page probing the sandbox learns nothing about the key: it is refused before."""
    refusal = console_request(origin="https://evil.example", authorization="Bearer wrong")
    assert refusal.status == 403
    refusal = console_request(host="evil.example:8765", authorization=None)
    assert refusal.status == 403


def test_a_sandbox_bound_to_a_lan_address_is_named_by_it():
    lan = {"bound_host": "192.168.1.5", "remote": "192.168.1.20"}
    assert console_request(host=f"192.168.1.5:{PORT}", **lan) is None
    assert console_request(host=f"127.0.0.1:{PORT}", **lan) is None
    assert console_request(host=f"evil.example:{PORT}", **lan).status == 403
    # Reachable from elsewhere, but still only with the key.
    assert console_request(host=f"192.168.1.5:{PORT}", authorization=None, **lan).status == 401


def test_a_wildcard_bound_sandbox_is_named_by_what_the_user_exposed_it_as():
    wild = {"bound_host": "0.0.0.0", "remote": "10.0.0.7"}
    assert console_request(host=f"10.0.0.2:{PORT}", **wild).status == 403
    assert console_request(host=f"10.0.0.2:{PORT}", also_hosts=["10.0.0.2"], **wild) is None
    ipv6 = {"bound_host": "::", "remote": "fd00::7", "also_hosts": ["fd00::2"]}
    assert console_request(host=f"[fd00::2]:{PORT}", **ipv6) is None


def test_loopback_bound_sandboxes_are_not_exposed():
    for bound in ("127.0.0.1", "::1", "127.0.0.5"):
        assert not guard.exposed(bound)
        assert console_request(bound_host=bound, remote="192.168.1.20").status == 403
    for bound in ("0.0.0.0", "::", "192.168.1.5"):
        assert guard.exposed(bound)


def test_allowed_hosts_lists_loopbacks_names():
    assert guard.allowed_hosts(4000) == {"127.0.0.1:4000", "localhost:4000", "[::1]:4000"}


def test_presented_key():
    assert guard.presented_key(f"Bearer  {KEY} ") == KEY
    assert guard.presented_key("Bearer") is None
    assert guard.presented_key(None) is None
