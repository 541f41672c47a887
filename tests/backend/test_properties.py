"""Properties of frames and tokens, searched with hypothesis against the real handlers.

Frames go through ``messages.handler`` on the test Redis and the recording management API,
tokens through ``authorizer.handler`` and the sandbox's policy evaluation: no mocks. Each
property states what PROTOCOL.md promises for any input, and checks it with readers of its own
(``strict_json`` below), not with ``backend.frames``. A fixed seed and bounded example counts
keep the module to a few seconds; raise ``max_examples`` locally to search harder.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import sys
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from backend.handlers import admin, authorizer, connect, messages
from backend.registry import room_keys
from desktop.sandbox import policy
from tests.backend.conftest import SECRET, LambdaContext, load_event

ROOM = "physics-101"
FRAME_LIMIT = 128 * 1024
NESTING_LIMIT = 32  # PROTOCOL.md, the client frame's own object included
# A history frame wraps a message's data two levels deeper than the client frame did.
WRITTEN_NESTING_LIMIT = NESTING_LIMIT + 2
LARGEST_NUMBER = int(sys.float_info.max)
TYPE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
CODES = {"bad_json", "unknown_action", "invalid", "forbidden", "too_large", "rate_limited"}

# Settings: the same examples on every run (derandomize), no example database to carry state
# between runs, no deadline (a handler's HTTP round trips vary on a busy machine). Function-
# scoped fixtures are set up once per test, not per example; each example checks what it
# changed (seq before and after), so sharing the room between examples is intended.
FRAME_SETTINGS = settings(
    max_examples=250,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TOKEN_SETTINGS = settings(
    max_examples=400,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# -- Readers of our own ---------------------------------------------------------------------


class NotStrict(Exception):
    pass


class Deep(NotStrict):
    """Nested past the limit asked for (or past what ``json.loads`` can read at all)."""


def _refuse(name: str) -> object:
    raise NotStrict(name)


def strict_json(text: str | bytes, depth_limit: int) -> object:
    """``text`` as a strict reader (a browser's ``JSON.parse`` plus I-JSON) takes it, else
    ``NotStrict``; deeper than ``depth_limit`` is ``NotStrict`` too."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        value = json.loads(text, parse_constant=_refuse)
    except RecursionError:
        raise Deep("json.loads gave up") from None
    except (ValueError, NotStrict) as error:
        raise NotStrict(repr(error)[:80]) from None
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth + 1 > depth_limit:
                raise Deep(f"deeper than {depth_limit}")
            children = list(item.items()) if isinstance(item, dict) else list(enumerate(item))
            for key, child in children:
                if isinstance(key, str):
                    pending.append((key, depth + 1))
                pending.append((child, depth + 1))
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise NotStrict("lone surrogate") from None
        elif isinstance(item, float) and not math.isfinite(item):
            raise NotStrict("not finite")
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > LARGEST_NUMBER:
            raise NotStrict("past a double")
    return value


def expected_refusal(body: str | bytes) -> str | None:
    """The code PROTOCOL.md gives ``body`` before any field is looked at, or None."""
    size = len(body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass"))
    if size > FRAME_LIMIT:
        return "too_large"
    try:
        frame = strict_json(body, 10**6)
    except Deep:
        return "invalid"  # not strict too, perhaps, but too deep to tell
    except NotStrict:
        return "bad_json"
    if not isinstance(frame, dict):
        return "bad_json"
    try:
        strict_json(body, NESTING_LIMIT)
    except Deep:
        return "invalid"
    return None


# -- The classroom: S1 sends, S2 listens ----------------------------------------------------


def authorizer_context(user_id: str) -> dict:
    return {"userId": user_id, "role": "student", "room": ROOM, "principalId": user_id}


def send_body(connection_id: str, user_id: str, body: str | bytes, route: str = "send") -> dict:
    event = load_event(
        "message",
        connectionId=connection_id,
        routeKey=route,
        body=body,
        authorizer=authorizer_context(user_id),
    )
    return messages.handler(event, LambdaContext())


def ask(**request) -> dict:
    return admin.handler(request, LambdaContext(function_name="classroom-admin"))


@pytest.fixture
def room(monkeypatch, backend_env, management, redis_client):
    """S1 and S2 in physics-101, with no rate limit (examples come faster than 50 a second)."""
    from backend import runtime

    monkeypatch.setenv("RATE_LIMIT_PER_SECOND", "0")
    runtime.reset()
    for connection_id, user_id in (("S1", "student-1"), ("S2", "student-2")):
        event = load_event(
            "connect", connectionId=connection_id, authorizer=authorizer_context(user_id)
        )
        assert connect.handler(event, LambdaContext()) == {"statusCode": 200}
    management.reset()
    return management


def latest_seq(redis_client) -> int:
    return int(redis_client.get(room_keys(ROOM)[3]) or 0)


def stored(redis_client) -> int:
    """Messages in the room's log (a read may set its seq floor, so seq alone says little)."""
    return redis_client.zcard(room_keys(ROOM)[2])


def written(management, connection_id: str) -> list[dict]:
    """Every frame posted to ``connection_id`` since the last reset, each read strictly."""
    with management.lock:
        bodies = list(management.posts.get(connection_id, []))
    frames = []
    for body in bodies:
        assert len(body) <= FRAME_LIMIT
        try:
            frames.append(strict_json(body, WRITTEN_NESTING_LIMIT))
        except NotStrict as error:
            pytest.fail(f"a frame that is not strict JSON was written ({error}): {body[:200]!r}")
    return frames


def reads_back(management, redis_client, message: dict) -> None:
    """A stored ``message`` reads back unchanged through ``sync`` and every admin op."""
    seq = message["seq"]
    management.reset()
    assert send_body("S2", "student-2", json.dumps({"action": "sync", "since": seq - 1}), "sync")
    histories = written(management, "S2")
    # The message first (a resend's original may have later ones after it).
    assert [m for h in histories for m in h["messages"]][:1] == [message]
    answer = ask(op="history", room=ROOM, since=seq - 1)
    assert answer["ok"] is True and answer["messages"][:1] == [message], answer
    for request in ({"op": "rooms"}, {"op": "members", "room": ROOM}, {"op": "stats"}):
        answer = ask(**request)
        assert answer["ok"] is True, (request, answer)
    json.dumps(ask(op="history", room=ROOM), allow_nan=False)  # the whole log, as the console


def check_frame(management, redis_client, body: str | bytes) -> bool:
    """The property every frame must hold, whatever it is; True when it stored a message."""
    management.reset()
    before = latest_seq(redis_client)
    kept = stored(redis_client)
    assert send_body("S1", "student-1", body) == {"statusCode": 200}
    replies = written(management, "S1")
    delivered = written(management, "S2")
    refusal = expected_refusal(body)
    errors = [r for r in replies if r.get("event") == "error"]
    event(errors[0]["code"] if errors else "answered")
    assert all(e["code"] in CODES for e in errors), errors  # never internal nor unavailable
    if errors or refusal is not None:
        codes = [e["code"] for e in errors]
        assert codes == [refusal or errors[0]["code"]], (repr(body)[:300], replies)
        assert len(replies) == 1 and delivered == []
        assert stored(redis_client) == kept
        return False
    acks = [r for r in replies if r.get("event") == "ack"]
    if not acks:  # sync, who, ping: answered, nothing stored or delivered
        assert len(replies) >= 1 and delivered == []
        assert stored(redis_client) == kept
        return False
    frame = strict_json(body, NESTING_LIMIT)
    assert isinstance(frame, dict) and frame["action"] == "send"
    assert isinstance(frame["type"], str) and TYPE.fullmatch(frame["type"])
    (ack,) = acks
    (message,) = delivered
    assert ack["seq"] == message["seq"]
    fresh = ack["seq"] > before
    if fresh:  # the next seq: one past the last, or past the room's floor (PROTOCOL.md)
        assert ack["seq"] == latest_seq(redis_client)
        assert stored(redis_client) == kept + 1
        assert message["type"] == frame["type"]
        assert message["data"] == frame.get("data")
    else:  # a resend of an id the room holds: the original message again, nothing stored
        assert frame.get("id") is not None
        assert stored(redis_client) == kept
    assert message["id"] == frame.get("id") == ack["id"]
    reads_back(management, redis_client, message)
    return fresh


# -- What frames are made of ----------------------------------------------------------------

# Text with every code point hypothesis knows, surrogates and controls included.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**330), max_value=10**330),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, -0.0, 2**53 + 1, LARGEST_NUMBER, LARGEST_NUMBER + 1]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, any_text)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=24,
)
message_types = st.one_of(
    st.from_regex(TYPE, fullmatch=True),
    st.sampled_from(["chat.message", "chat.message\n", "\nchat.message", "Chat", "", "x" * 65]),
    any_text,
)
client_ids = st.one_of(st.none(), any_text, st.integers(), st.sampled_from(["m1", "\n"]))
frames_as_values = st.fixed_dictionaries(
    {"action": st.sampled_from(["send", "send", "send", "sync", "who", "ping", "fly"])},
    optional={
        "type": message_types,
        "data": json_values,
        "id": client_ids,
        "room": st.sampled_from([ROOM, ROOM + "\n", "chemistry-2"]),
        "since": st.one_of(st.integers(min_value=-2, max_value=5), json_values),
    },
)


@st.composite
def json_text(draw, value_strategy=frames_as_values) -> str:
    """A frame written by a client that is not this codebase: escaped or raw, NaN as Python
    writes it, any whitespace."""
    value = draw(value_strategy)
    ensure_ascii = draw(st.booleans())
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (",\n", " :\t")]))
    try:
        return json.dumps(value, ensure_ascii=ensure_ascii, separators=separators)
    except ValueError:  # an integer past the 4,300 digits Python writes
        return json.dumps(value, ensure_ascii=True)


# Data written as text, for what no Python value holds: huge literals, deep nesting.
NASTY_DATA = [
    "NaN",
    "Infinity",
    "-Infinity",
    "[NaN,Infinity]",
    "1e999999",
    "-1e309",
    "1e-999999",
    "9" * 10_000,
    "9" * 4_000,
    "9" * 309,
    "-" + "9" * 310,
    '"\\ud800"',
    '"\\udfff\\ud800"',
    '"\\ud83d\\ude00"',
    '{"\\udc00":1}',
    '"\\u0000\\u001f"',
]


@st.composite
def spliced_frames(draw) -> str:
    """A send whose data is written as text: nasty literals, or arrays and objects nested to a
    depth around the limit, past it, or far past it."""
    kind = draw(st.sampled_from(["nasty", "deep", "deep object"]))
    if kind == "nasty":
        data = draw(st.sampled_from(NASTY_DATA))
    else:
        depth = draw(
            st.one_of(
                st.integers(1, NESTING_LIMIT + 3),
                st.sampled_from([100, 500, 999, 1_000, 5_000, 60_000]),
            )
        )
        leaf = draw(st.sampled_from(["1", '"x"', "[]", "{}", "NaN", '"\\ud800"']))
        if kind == "deep":
            data = "[" * depth + leaf + "]" * depth
        else:
            data = '{"k":' * depth + leaf + "}" * depth
    message_type = draw(st.sampled_from(["whiteboard.stroke", "chat.message\n"]))
    return '{"action":"send","type":' + json.dumps(message_type) + ',"id":"s","data":' + data + "}"


any_frame = st.one_of(
    json_text(),
    spliced_frames(),
    any_text,
    st.binary(max_size=64),
    json_text().map(lambda text: text.encode("utf-8", "surrogatepass")),  # UTF-8 of surrogates
)


# -- Frame properties -----------------------------------------------------------------------


@FRAME_SETTINGS
@given(body=any_frame)
def test_no_frame_crashes_a_handler_earns_internal_or_stores_what_is_not_strict_json(
    room, redis_client, body
):
    check_frame(room, redis_client, body)


strict_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-LARGEST_NUMBER, max_value=LARGEST_NUMBER),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=12),  # no surrogates: strict text
    ),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=24,
)


@st.composite
def valid_sends(draw) -> str:
    """A send PROTOCOL.md accepts: strict JSON data, possibly nested right up to the limit."""
    data = draw(strict_values)
    for _ in range(draw(st.integers(0, NESTING_LIMIT - 1 - depth_of(data)))):
        data = draw(st.sampled_from([[data], {"k": data}]))
    frame = {"action": "send", "type": draw(st.from_regex(TYPE, fullmatch=True)), "data": data}
    if draw(st.booleans()):
        frame["id"] = draw(st.text(max_size=12))
    return json.dumps(frame, ensure_ascii=draw(st.booleans()))


def depth_of(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


@FRAME_SETTINGS
@given(body=valid_sends())
def test_every_send_accepted_reads_back_through_sync_and_every_admin_op(room, redis_client, body):
    before = stored(redis_client)
    fresh = check_frame(room, redis_client, body)  # accepted (check_frame read it back)
    assert stored(redis_client) == before + fresh


# -- Tokens ---------------------------------------------------------------------------------

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
MISSING = object()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def numeric_dates(low: int, high: int):
    """Now plus seconds, never within 5 s of now (the authorizer and the oracle read the clock
    at slightly different moments), as an int or a float."""
    ranges = [st.integers(low, min(high, -5))] if low <= -5 else []
    ranges += [st.integers(max(low, 5), high)] if high >= 5 else []
    offsets = st.one_of(*ranges)
    return offsets.flatmap(lambda offset: st.sampled_from([offset, offset + 0.5])).map(
        lambda offset: int(time.time()) + offset
    )


wrong_scalars = st.one_of(
    st.none(),
    st.booleans(),
    any_text,
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)
# Each claim: a value PROTOCOL.md allows (though perhaps not for this room or this moment),
# and what else a token might hold there.
GOOD = {
    "sub": st.sampled_from(["student-1", "ada@example.com", "é" * 128, "s" * 256]),
    "role": st.sampled_from(["student", "teacher", "support"]),
    "rooms": st.lists(st.sampled_from([ROOM, ROOM, "*", "chemistry-2"]), min_size=1, max_size=3),
    "exp": numeric_dates(5, 3600),
    "nbf": st.one_of(st.just(MISSING), numeric_dates(-3600, -5)),
    "iat": st.one_of(st.just(MISSING), numeric_dates(-3600, -5)),
    "name": st.sampled_from([MISSING, "Ada", "", "n" * 256, None]),
    "aud": st.just(MISSING),
}
BAD = {
    "sub": st.one_of(st.sampled_from(["", "s" * 257, "eve\ud800", "é" * 129]), wrong_scalars),
    "role": st.one_of(st.sampled_from(["admin", "Student", "support\n"]), wrong_scalars),
    "rooms": st.one_of(st.just([ROOM + "\n"]), st.just(ROOM), wrong_scalars),
    "exp": st.one_of(numeric_dates(-3600, -5), numeric_dates(5, 3600).map(str), wrong_scalars),
    "nbf": st.one_of(numeric_dates(5, 3600), numeric_dates(-3600, -5).map(str), wrong_scalars),
    "iat": st.one_of(numeric_dates(5, 3600), numeric_dates(-3600, -5).map(str), wrong_scalars),
    "name": st.one_of(st.just("n" * 257), st.just("\udc00"), wrong_scalars),
    "aud": st.just("classroom"),
}


@st.composite
def token_claims(draw) -> dict:
    """Good claims with none, one or a few of them missing or wrong."""
    claims = {name: draw(strategy) for name, strategy in GOOD.items()}
    for name in draw(st.sets(st.sampled_from(sorted(GOOD)), max_size=3)):
        claims[name] = draw(st.one_of(st.just(MISSING), BAD[name]))
    return claims


# How the token is signed: (the header's alg, how the signature is made).
SIGNINGS = [
    *[("HS256", "hs256")] * 12,  # honest half the time, so that valid tokens come up too
    ("HS256", "hs256-wrong-secret"),
    ("HS256", "hs512"),
    ("HS384", "hs384"),
    ("HS512", "hs512"),
    ("hs256", "hs256"),
    ("none", "empty"),
    ("None", "empty"),
    ("none", "hs256"),
    ("RS256", "rs256"),
    ("RS256", "hs256"),  # the right HMAC under another algorithm's name
    ("HS256", "hs256-public-key"),  # alg confusion: the RSA public key used as the HMAC secret
    ("ES256", "hs256"),
    (None, "hs256"),  # no alg at all
]
header_tricks = st.fixed_dictionaries(
    {},
    optional={
        "kid": st.one_of(st.text(max_size=8), st.integers(), st.none()),
        "jku": st.sampled_from(["https://evil.example/jwks.json", ""]),
        "x5u": st.just("https://evil.example/cert.pem"),
        "jwk": st.just({"kty": "oct", "k": b64(b"attacker-key")}),
        "typ": st.sampled_from(["JWT", "jwt", "at+jwt", 7]),
        "crit": st.sampled_from([["exp"], "b64", []]),
        "b64": st.booleans(),
    },
)
tamperings = st.sampled_from(["none"] * 6 + ["signature", "payload", "truncate", "dots"])


def sign(signing_input: bytes, how: str) -> bytes:
    if how == "empty":
        return b""
    if how == "rs256":
        return RSA_KEY.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    key = {"hs256-wrong-secret": SECRET[::-1].encode(), "hs256-public-key": PUBLIC_PEM}.get(
        how, SECRET.encode()
    )
    digest = {"hs256": hashlib.sha256, "hs384": hashlib.sha384, "hs512": hashlib.sha512}
    return hmac.new(key, signing_input, digest[how.split("-")[0]]).digest()


def build_token(claims: dict, alg, how: str, extra: dict, tamper: str) -> str:
    header = {"typ": "JWT", **extra}
    if alg is not None:
        header["alg"] = alg
    payload = {k: v for k, v in claims.items() if v is not MISSING}
    header_text = b64(json.dumps(header).encode())
    payload_text = b64(json.dumps(payload).encode("utf-8", "surrogatepass"))
    signature = b64(sign(f"{header_text}.{payload_text}".encode(), how))
    if tamper == "signature":
        signature = signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")
    elif tamper == "payload":
        changed = {**payload, "role": "teacher", "rooms": ["*"], "tampered": True}
        payload_text = b64(json.dumps(changed).encode("utf-8", "surrogatepass"))
    elif tamper == "truncate":
        signature = signature[: len(signature) // 2]
    elif tamper == "dots":
        return f"{header_text}.{payload_text}.{signature}.{signature}"
    return f"{header_text}.{payload_text}.{signature}"


def numeric(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def text_within(value, limit: int) -> bool:
    try:
        return isinstance(value, str) and len(value.encode("utf-8")) <= limit
    except UnicodeEncodeError:
        return False


def claims_fit(claims: dict, room: str) -> bool:
    """PROTOCOL.md's claims, for a token asking to join ``room``, as of now."""
    now = time.time()
    sub, role, rooms = claims["sub"], claims["role"], claims["rooms"]
    exp, nbf, iat, name = claims["exp"], claims["nbf"], claims["iat"], claims["name"]
    return (
        text_within(sub, 256)
        and sub != ""
        and role in ("student", "teacher", "support")
        and isinstance(rooms, list)
        and all(isinstance(r, str) for r in rooms)
        and ("*" not in rooms or role == "support")
        and (room in rooms or "*" in rooms)
        and numeric(exp)
        and exp > now
        and (nbf is MISSING or (numeric(nbf) and nbf <= now))
        and (iat is MISSING or (numeric(iat) and iat <= now))
        and (name is MISSING or name is None or text_within(name, 256))
        and claims["aud"] is MISSING
        and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", room) is not None
    )


@TOKEN_SETTINGS
@given(
    claims=token_claims(),
    signing=st.sampled_from(SIGNINGS),
    extra=header_tricks,
    tamper=tamperings,
    room=st.sampled_from([ROOM] * 6 + ["chemistry-2", ROOM + "\n", "", "r" * 65]),
)
def test_the_authorizer_allows_only_a_valid_hs256_token_for_its_own_room(
    backend_env, claims, signing, extra, tamper, room
):
    alg, how = signing
    value = build_token(claims, alg, how, extra, tamper)
    request = load_event("authorizer")
    request["queryStringParameters"] = {"token": value, "room": room}
    answer = authorizer.handler(request, LambdaContext())

    # API Gateway can use the answer (no 500): the sandbox's evaluation agrees with its effect.
    decision = policy.evaluate(answer, request["methodArn"])
    effect = answer["policyDocument"]["Statement"][0]["Effect"]
    assert decision.allowed == (effect == "Allow")
    assert len(json.dumps(answer).encode()) <= policy.MAX_RESULT_BYTES

    honest = alg == "HS256" and how == "hs256" and tamper == "none"
    # Hints at other keys are ignored (the key is the secret); "crit" names extensions the
    # authorizer does not implement, so RFC 7515 has it refuse them.
    understood = "crit" not in extra and extra.get("b64", True) is not False
    plain_header = set(extra) <= {"kid", "jku", "x5u", "jwk", "typ"} and isinstance(
        extra.get("kid", ""), str
    )
    valid = honest and understood and claims_fit(claims, room)
    event("allowed" if decision.allowed else "denied")
    if decision.allowed:
        assert valid, (claims, signing, extra, tamper, room)
        assert answer["context"]["userId"] == claims["sub"]
        assert answer["context"]["role"] == claims["role"]
        assert answer["context"]["room"] == room
    elif valid and plain_header:
        pytest.fail(f"a valid token was denied: {claims}, {extra}, {room!r}")
