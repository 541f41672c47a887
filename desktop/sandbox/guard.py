"""Who may use the sandbox's console endpoints (``/_admin``, ``/_metrics``), as plain checks.

Loopback is not a boundary on its own: every user of the machine, and every web page open in
its browsers, can reach 127.0.0.1. So a request must also

- come from loopback, unless the sandbox was explicitly bound beyond it;
- carry no ``Origin`` header: browsers send one on cross-site requests (and on every POST); the
  console, boto3 and urllib never do;
- name the sandbox itself in ``Host`` (``127.0.0.1:PORT``, ``localhost:PORT``, ``[::1]:PORT``,
  or the address it was bound to): a DNS-rebinding page reaches 127.0.0.1 under its own name;
- present the admin key (``desktop.sandbox.secret.load_admin_key``) as
  ``Authorization: Bearer <key>``, compared in constant time: only the user's own processes
  can read the key's file;
- send ``application/json`` (``charset=utf-8`` allowed) when it POSTs: a form or ``text/plain``
  post is what a page can send cross-site without a CORS preflight.

Each check returns None or a ``Refusal`` (status and one sentence); ``check`` runs them all, the
ones that need no secret first. aiohttp refuses a request with two ``Host`` headers itself, so
one value per header is all a check needs.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

AUTH_SCHEME = "Bearer"
WILDCARDS = ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)


def is_loopback(address: str | None) -> bool:
    """127.0.0.0/8, ::1, IPv4 loopback mapped into IPv6 (a dual-stack socket's view), and the
    name ``localhost``."""
    if address == "localhost":
        return True
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _authority(host: str, port: int) -> list[str]:
    name = f"[{host}]" if ":" in host else host
    return [f"{name}:{port}", name] if port == 80 else [f"{name}:{port}"]


def allowed_hosts(port: int, bound_host: str = "127.0.0.1", also: Iterable[str] = ()) -> frozenset:
    """The ``Host`` values that name this sandbox: loopback's names on ``port`` (the port it
    actually listens on, never 0), the address it is bound to when that is a specific one, and
    ``also`` (names or addresses the user exposed it under, e.g. a LAN address when bound to
    ``0.0.0.0``; a wildcard itself is never a name a client should use)."""
    names = ["127.0.0.1", "localhost", "::1"]
    if bound_host not in WILDCARDS:
        names.append(bound_host)
    names.extend(also)
    return frozenset(a.lower() for name in names for a in _authority(name, port))


def exposed(bound_host: str) -> bool:
    """Bound beyond loopback: the user asked for other machines to reach it."""
    return bound_host in WILDCARDS or not is_loopback(bound_host)


def check_remote(remote: str | None, bound_host: str = "127.0.0.1") -> Refusal | None:
    if is_loopback(remote) or exposed(bound_host):
        return None
    return Refusal(403, "The console endpoints answer clients on this machine only.")


def check_origin(origin: str | None) -> Refusal | None:
    if origin is None:
        return None
    return Refusal(403, "The console endpoints refuse requests from web pages (an Origin header).")


def check_host(host: str | None, allowed: frozenset) -> Refusal | None:
    if host is not None and host.strip().lower() in allowed:
        return None
    return Refusal(403, "The Host header does not name this sandbox.")


def presented_key(authorization: str | None) -> str | None:
    """The key in ``Authorization: Bearer <key>`` (the scheme is case-insensitive), or None."""
    scheme, _, key = (authorization or "").strip().partition(" ")
    key = key.strip()
    return key if scheme.lower() == AUTH_SCHEME.lower() and key else None


def check_key(authorization: str | None, admin_key: str) -> Refusal | None:
    challenge = {"WWW-Authenticate": f'{AUTH_SCHEME} realm="classroom-sandbox"'}
    key = presented_key(authorization)
    if key is None:
        return Refusal(401, "The console endpoints need the sandbox's admin key.", challenge)
    # Bytes: compare_digest refuses str that is not ASCII, and a header may hold anything.
    if not hmac.compare_digest(key.encode("utf-8", "surrogateescape"), admin_key.encode()):
        return Refusal(401, "The admin key presented is not this sandbox's.", challenge)
    return None


def check_content_type(method: str, content_type: str | None) -> Refusal | None:
    """A POST is JSON: ``application/json``, optionally with ``charset=utf-8`` (RFC 8259's
    only encoding); any other media type or parameter is refused."""
    if method != "POST":
        return None
    media, *parameters = (content_type or "").split(";")
    if media.strip().lower() == "application/json" and all(
        _is_utf8_charset(parameter) for parameter in parameters
    ):
        return None
    return Refusal(415, "The console endpoints take JSON (Content-Type: application/json).")


def _is_utf8_charset(parameter: str) -> bool:
    name, _, value = parameter.partition("=")
    return name.strip().lower() == "charset" and value.strip().strip('"').lower() == "utf-8"


def check(
    *,
    method: str,
    host: str | None,
    origin: str | None,
    content_type: str | None,
    remote: str | None,
    authorization: str | None,
    admin_key: str,
    port: int,
    bound_host: str = "127.0.0.1",
    also_hosts: Iterable[str] = (),
) -> Refusal | None:
    """The first refusal for a console request, or None when it may be served."""
    return (
        check_remote(remote, bound_host)
        or check_origin(origin)
        or check_host(host, allowed_hosts(port, bound_host, also_hosts))
        or check_key(authorization, admin_key)
        or check_content_type(method, content_type)
    )
