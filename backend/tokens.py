"""Classroom tokens: HS256 JWTs as PROTOCOL.md defines them, minted and verified here only.

A token never reaches a log: errors name the rule that failed, not the token.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import TypeGuard

import jwt

ROLES = ("student", "teacher", "support")
ROOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
ALGORITHM = "HS256"
# ``sub`` and ``name`` go into the authorizer's context (``sub`` twice, as the principal too),
# and API Gateway refuses an answer over 8 KB with a 500. At 256 bytes of UTF-8 each, even the
# costliest escaping (6 bytes a control character) and the longest method ARN make an answer
# of 5,092 bytes; 256 still holds any e-mail address (254 at most).
MAX_SUB_BYTES = 256
MAX_NAME_BYTES = 256
NUMERIC_DATES = ("exp", "nbf", "iat")


class TokenRejected(Exception):
    """A token or room that must be denied; ``str()`` is the reason, safe to log."""


@dataclass(frozen=True)
class Identity:
    user_id: str
    role: str
    room: str
    name: str | None = None


def valid_room(room: object) -> TypeGuard[str]:
    """Whether ``room`` is a room id, the whole string (``r1\\n`` is not)."""
    return isinstance(room, str) and ROOM_ID.fullmatch(room) is not None


def _text_within(value: object, limit: int) -> bool:
    """Whether ``value`` is a string of at most ``limit`` bytes of UTF-8 (so Unicode text)."""
    if not isinstance(value, str):
        return False
    try:
        return len(value.encode("utf-8")) <= limit
    except UnicodeEncodeError:  # a lone surrogate
        return False


def _numeric_date(value: object) -> bool:
    """A JWT NumericDate: an int or a finite float, never a bool or a string of digits."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def mint(
    secret: str,
    *,
    sub: str,
    role: str,
    rooms: list[str],
    ttl: int = 3600,
    name: str | None = None,
    now: float | None = None,
) -> str:
    """A signed token for ``sub`` in ``rooms``, valid for ``ttl`` seconds."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if "*" in rooms and role != "support":
        raise ValueError('only support tokens may name the room "*"')
    for room in rooms:
        if room != "*" and not valid_room(room):
            raise ValueError(f"room id {room!r} must be 1-64 characters of A-Z a-z 0-9 _ -")
    if ttl <= 0:
        raise ValueError("ttl must be a positive number of seconds")
    if not sub or not _text_within(sub, MAX_SUB_BYTES):
        raise ValueError(f"sub must be text of 1 to {MAX_SUB_BYTES} bytes of UTF-8")
    if name and not _text_within(name, MAX_NAME_BYTES):
        raise ValueError(f"name must be text of at most {MAX_NAME_BYTES} bytes of UTF-8")
    issued = int(now if now is not None else time.time())
    claims = {"sub": sub, "role": role, "rooms": list(rooms), "iat": issued, "exp": issued + ttl}
    if name:
        claims["name"] = name
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(token: str | None, room: str | None, secret: str) -> Identity:
    """The identity a token grants in ``room``, or ``TokenRejected`` with the reason."""
    if not token:
        raise TokenRejected("no token")
    if not valid_room(room):
        raise TokenRejected("malformed room id")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "role", "rooms", "exp"]},
        )
    except jwt.ExpiredSignatureError as error:
        raise TokenRejected("token expired") from error
    except jwt.ImmatureSignatureError as error:
        raise TokenRejected("token not yet valid") from error
    except jwt.MissingRequiredClaimError as error:
        raise TokenRejected(f"missing claim {error.claim}") from error
    except jwt.InvalidSignatureError as error:
        raise TokenRejected("bad signature") from error
    except jwt.InvalidAlgorithmError as error:
        raise TokenRejected("algorithm not allowed") from error
    except jwt.PyJWTError as error:
        raise TokenRejected(f"invalid token ({type(error).__name__})") from error
    for claim in NUMERIC_DATES:
        # PyJWT reads "exp": "1700000000" as a number; PROTOCOL.md's dates are numbers.
        if claim in claims and not _numeric_date(claims[claim]):
            raise TokenRejected(f"{claim} must be a number")
    sub, role, rooms = claims["sub"], claims["role"], claims["rooms"]
    if not isinstance(sub, str) or not sub:
        raise TokenRejected("sub must be a non-empty string")
    if not _text_within(sub, MAX_SUB_BYTES):
        raise TokenRejected(f"sub must be text of at most {MAX_SUB_BYTES} bytes of UTF-8")
    if role not in ROLES:
        raise TokenRejected("unknown role")
    if not isinstance(rooms, list) or not all(isinstance(r, str) for r in rooms):
        raise TokenRejected("rooms must be a list of strings")
    if "*" in rooms and role != "support":
        raise TokenRejected('only support tokens may name the room "*"')
    if room not in rooms and "*" not in rooms:
        raise TokenRejected("room not allowed by token")
    name = claims.get("name")
    if name is not None and not _text_within(name, MAX_NAME_BYTES):
        raise TokenRejected(f"name must be text of at most {MAX_NAME_BYTES} bytes of UTF-8")
    return Identity(sub, role, room, name or None)
