"""The $connect authorizer: every forged or unfit token is a Deny, never an exception."""

from __future__ import annotations

import base64
import json
import logging
import time

import jwt
import pytest

from backend.handlers import authorizer
from tests.backend.conftest import SECRET, LambdaContext, load_event, token


def authorize(token_value: str | None, room: str | None = "physics-101") -> dict:
    event = load_event("authorizer")
    query = {}
    if token_value is not None:
        query["token"] = token_value
    if room is not None:
        query["room"] = room
    event["queryStringParameters"] = query
    return authorizer.handler(event, LambdaContext())


def effect(answer: dict) -> str:
    return answer["policyDocument"]["Statement"][0]["Effect"]


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_valid_token_allows_with_context(backend_env):
    answer = authorize(token(name="Ada"))
    assert effect(answer) == "Allow"
    assert answer["principalId"] == "student-1"
    assert answer["context"] == {
        "userId": "student-1",
        "role": "student",
        "room": "physics-101",
        "name": "Ada",
    }
    statement = answer["policyDocument"]["Statement"][0]
    assert statement["Resource"] == load_event("authorizer")["methodArn"]
    assert statement["Action"] == "execute-api:Invoke"


def test_support_may_join_any_room_with_star(backend_env):
    answer = authorize(token(sub="staff@example.com", role="support", rooms=["*"]), room="any-room")
    assert effect(answer) == "Allow"
    assert answer["context"]["role"] == "support"


now = int(time.time())


def claims(**changes) -> dict:
    base = {"sub": "student-1", "role": "student", "rooms": ["physics-101"], "exp": now + 600}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


FORGED = {
    "no token": None,
    "empty token": "",
    "garbage": "not-a-jwt",
    "wrong secret": jwt.encode(claims(), SECRET[::-1], algorithm="HS256"),
    "alg none": b64({"alg": "none", "typ": "JWT"}) + "." + b64(claims()) + ".",
    "alg none with signature": b64({"alg": "none"}) + "." + b64(claims()) + ".c2ln",
    "HS512 with the secret": jwt.encode(claims(), SECRET, algorithm="HS512"),
    "HS384 with the secret": jwt.encode(claims(), SECRET, algorithm="HS384"),
    "tampered payload": None,  # filled below
    "expired": jwt.encode(claims(exp=now - 10), SECRET, algorithm="HS256"),
    "not yet valid": jwt.encode(claims(nbf=now + 600), SECRET, algorithm="HS256"),
    "missing sub": jwt.encode(claims(sub=None), SECRET, algorithm="HS256"),
    "missing role": jwt.encode(claims(role=None), SECRET, algorithm="HS256"),
    "missing rooms": jwt.encode(claims(rooms=None), SECRET, algorithm="HS256"),
    "missing exp": jwt.encode(claims(exp=None), SECRET, algorithm="HS256"),
    "unknown role": jwt.encode(claims(role="admin"), SECRET, algorithm="HS256"),
    "room not allowed": jwt.encode(claims(rooms=["chemistry-2"]), SECRET, algorithm="HS256"),
    "star for a student": jwt.encode(claims(rooms=["*"]), SECRET, algorithm="HS256"),
    "rooms not a list": jwt.encode(claims(rooms="physics-101"), SECRET, algorithm="HS256"),
    "sub not a string": jwt.encode(claims(sub=42), SECRET, algorithm="HS256"),
}
_header, _payload, _signature = jwt.encode(claims(), SECRET, algorithm="HS256").split(".")
FORGED["tampered payload"] = ".".join([_header, b64(claims(role="teacher")), _signature])


@pytest.mark.parametrize("variant", sorted(FORGED))
def test_forged_tokens_are_denied(backend_env, variant, caplog):
    value = FORGED[variant]
    with caplog.at_level(logging.DEBUG):
        answer = authorize(value)
    assert effect(answer) == "Deny"
    assert "context" not in answer
    if value:
        assert value not in caplog.text


@pytest.mark.parametrize("room", [None, "", "a" * 65, "bad room", "physics/101", "ü", "room;drop"])
def test_malformed_room_ids_are_denied(backend_env, room):
    # The token names the malformed room too, so only the room id format can deny it.
    signed = jwt.encode(claims(rooms=[room or "", "physics-101"]), SECRET, algorithm="HS256")
    answer = authorize(signed, room=room)
    assert effect(answer) == "Deny"


def test_longest_valid_room_is_allowed(backend_env):
    room = "A-z_0" + "x" * 59
    assert effect(authorize(token(rooms=[room]), room=room)) == "Allow"


def test_missing_secret_denies_instead_of_raising(monkeypatch, backend_env):
    monkeypatch.delenv("TOKEN_SECRET")
    monkeypatch.delenv("TOKEN_SECRET_ARN", raising=False)
    from backend import runtime

    runtime.reset()
    assert effect(authorize(token())) == "Deny"
