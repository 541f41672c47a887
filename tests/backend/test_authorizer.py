"""The $connect authorizer: every forged or unfit token is a Deny, never an exception."""

from __future__ import annotations

import base64
import json
import logging
import time

import jwt
import pytest

from backend import tokens
from backend.handlers import authorizer
from desktop.sandbox import policy
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
    # PyJWT reads a string of digits as a number; PROTOCOL.md's NumericDates are numbers.
    "exp as a string": jwt.encode(claims(exp=str(now + 600)), SECRET, algorithm="HS256"),
    "nbf as a string": jwt.encode(claims(nbf=str(now - 60)), SECRET, algorithm="HS256"),
    "iat as a string": jwt.encode(claims(iat=str(now)), SECRET, algorithm="HS256"),
    "nbf as a bool": jwt.encode(claims(nbf=True), SECRET, algorithm="HS256"),
    "iat as a bool": jwt.encode(claims(iat=False), SECRET, algorithm="HS256"),
    "exp as a list": jwt.encode(claims(exp=[now + 600]), SECRET, algorithm="HS256"),
    "a 4 KB sub": jwt.encode(claims(sub="s" * 4096), SECRET, algorithm="HS256"),
    "a sub one byte past the bound": jwt.encode(claims(sub="é" * 128 + "s"), SECRET),
    "a 4 KB name": jwt.encode(claims(name="n" * 4096), SECRET, algorithm="HS256"),
    "a name one byte past the bound": jwt.encode(claims(name="n" * 257), SECRET),
    "a name that is not a string": jwt.encode(claims(name=["Ada"]), SECRET),
    "a sub with a lone surrogate": jwt.encode(claims(sub="eve\ud800"), SECRET),
    "a name with a lone surrogate": jwt.encode(claims(name="\udc00"), SECRET),
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


@pytest.mark.parametrize("room", ["r1\n", "physics-101\n", "r1\r\n", "\nr1"])
def test_a_room_with_a_newline_is_denied_even_to_a_star_token(backend_env, room):
    support = token(sub="staff@example.com", role="support", rooms=["*"])
    assert effect(authorize(support, room=room)) == "Deny"
    signed = jwt.encode(claims(rooms=[room]), SECRET, algorithm="HS256")
    assert effect(authorize(signed, room=room)) == "Deny"


@pytest.mark.parametrize("moment", [now + 600.5, now + 600])
def test_numeric_dates_may_be_floats(backend_env, moment):
    signed = jwt.encode(claims(exp=moment, nbf=now - 60.25, iat=float(now)), SECRET)
    assert effect(authorize(signed)) == "Allow"


# Each of these is 256 bytes of UTF-8, the bound, and costs the most once JSON-escaped.
LONGEST_CLAIMS = {
    "ascii": "s" * 256,
    "control characters": "\x01" * 256,
    "astral": "\U0001f600" * 64,
    "two-byte": "é" * 128,
}


@pytest.mark.parametrize("variant", sorted(LONGEST_CLAIMS))
def test_the_longest_sub_and_name_are_allowed_and_fit_api_gateways_8_kb(backend_env, variant):
    value = LONGEST_CLAIMS[variant]
    assert len(value.encode()) == 256
    # The longest stage name API Gateway allows, so the method ARN is as long as it gets.
    method_arn = "arn:aws-us-gov:execute-api:us-gov-west-1:123456789012:abcdef1234/" + "s" * 128
    event = load_event("authorizer")
    event["methodArn"] = method_arn + "/$connect"
    event["queryStringParameters"] = {
        "room": "r" * 64,
        "token": token(sub=value, name=value, rooms=["r" * 64]),
    }
    answer = authorizer.handler(event, LambdaContext())
    assert effect(answer) == "Allow"
    assert answer["context"]["userId"] == value and answer["context"]["name"] == value
    decision = policy.evaluate(answer, event["methodArn"])  # raises past 8 KB, as AWS refuses
    assert decision.allowed
    assert len(json.dumps(answer).encode()) <= policy.MAX_RESULT_BYTES


def test_a_4_kb_sub_is_denied_not_an_answer_api_gateway_refuses(backend_env):
    answer = authorize(jwt.encode(claims(sub="s" * 4096), SECRET, algorithm="HS256"))
    assert effect(answer) == "Deny"
    assert not policy.evaluate(answer, load_event("authorizer")["methodArn"]).allowed


def test_an_allow_that_would_not_fit_8_kb_is_a_deny(monkeypatch, backend_env):
    """The last line of defence, should the claim bounds ever be raised past what fits."""
    monkeypatch.setattr(tokens, "MAX_SUB_BYTES", 10_000)
    answer = authorize(jwt.encode(claims(sub="s" * 4096), SECRET, algorithm="HS256"))
    assert effect(answer) == "Deny"
    assert not policy.evaluate(answer, load_event("authorizer")["methodArn"]).allowed


def test_mint_refuses_what_verify_would_deny():
    for sub, name in [("s" * 257, None), ("", None), ("eve\ud800", None), ("eve", "n" * 257)]:
        with pytest.raises(ValueError):
            tokens.mint(SECRET, sub=sub, role="student", rooms=["physics-101"], name=name)
