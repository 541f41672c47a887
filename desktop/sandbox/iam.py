"""SigV4 on ``@connections`` requests, checked as API Gateway checks IAM before it answers.

API Gateway refuses a management API request that is unsigned, signed with unknown keys, for
another region or service, too old, or whose signature does not match what it received. The
sandbox has one key pair instead of IAM (the stand-in keys its handlers sign with), and checks
each request against it here.

The signature is recomputed by botocore's own ``SigV4Auth`` (its ``canonical_request``,
``string_to_sign`` and ``signature``) over an ``AWSRequest`` built from what arrived, so the
canonicalization is the library's, never ours: a request boto3 or the backend's ``LeanPoster``
signed verifies because botocore computes the same bytes it did.

``verify`` returns None or raises ``Forbidden``, which carries the 403 answer API Gateway
sends (its ``x-amzn-ErrorType`` and message), so the gateway can answer with it as it is and a
test or a log can say why. A bool would lose the reason, and the reason is what a developer
with a misconfigured signer needs.

The clock window is AWS's: ``X-Amz-Date`` at most 5 minutes before or after the server's time.
Presigned URLs (a signature in the query string) are not supported: no client of the
management API sends them.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest

ALGORITHM = "AWS4-HMAC-SHA256"
CLOCK_SKEW = datetime.timedelta(minutes=5)
# Matched whole (fullmatch), with ASCII digits only: \d would take any script's digits.
_AMZ_DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z")
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 +Credential=(?P<credential>[^,\s]+) *, *"
    r"SignedHeaders=(?P<signed>[^,\s]+) *, *Signature=(?P<signature>[0-9a-f]{64})"
)

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


class Forbidden(Exception):
    """A 403 from the management API: ``error_type`` and ``message`` as API Gateway words them."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def _missing() -> Forbidden:
    return Forbidden("MissingAuthenticationTokenException", "Missing Authentication Token")


def _mismatch() -> Forbidden:
    return Forbidden(
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method.",
    )


def _pairs(headers: Headers) -> list[tuple[str, str]]:
    """Every (lowercase name, value), repeated headers included (aiohttp's multidicts too)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(name.lower(), value) for name, value in items]


def _only(pairs: list[tuple[str, str]], name: str) -> str | None:
    values = [value for key, value in pairs if key == name]
    if len(values) > 1:
        raise Forbidden("IncompleteSignatureException", f"More than one {name} header.")
    return values[0] if values else None


def _bytes(text: str) -> bytes:
    """For compare_digest; aiohttp hands undecodable header bytes on as surrogates."""
    return text.encode("utf-8", "surrogateescape")


def _timestamp(amz_date: str) -> datetime.datetime:
    """``X-Amz-Date`` (``20240131T235959Z``) as a UTC time; strptime would cost a fifth of a
    verification."""
    found = _AMZ_DATE.fullmatch(amz_date)
    try:
        if found is None:
            raise ValueError(amz_date)
        year, month, day, hour, minute, second = map(int, found.groups())
        return datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.UTC)
    except ValueError:  # not the format, or not a date (month 13)
        raise Forbidden(
            "IncompleteSignatureException", "The request has no valid X-Amz-Date header."
        ) from None


def verify(
    method: str,
    url: str,
    headers: Headers,
    body: bytes,
    credentials,
    region: str,
    service: str = "execute-api",
    now: datetime.datetime | None = None,
) -> None:
    """Raises ``Forbidden`` unless the request is SigV4-signed with ``credentials``.

    ``url`` is the scheme, ``Host`` and the request target exactly as received, still
    percent-encoded (aiohttp's ``raw_path``): the signature covers the encoded path, and an id
    ending in ``=`` arrives as ``%3D``. ``credentials`` is botocore's ``Credentials`` (or any
    object with ``access_key``, ``secret_key`` and ``token``); ``now`` is for tests.
    """
    pairs = _pairs(headers)
    authorization = _only(pairs, "authorization")
    if authorization is None:
        raise _missing()
    found = _AUTHORIZATION.fullmatch(authorization.strip())
    if found is None:
        raise Forbidden(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
            f"parameters of the {ALGORITHM} algorithm.",
        )
    scope = found["credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise Forbidden("IncompleteSignatureException", "Credential is not a SigV4 scope.")
    access_key, date, scope_region, scope_service, _ = scope
    if not hmac.compare_digest(_bytes(access_key), _bytes(credentials.access_key)):
        raise Forbidden(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    if scope_region != region:
        raise Forbidden(
            "InvalidSignatureException", "Credential should be scoped to a valid region."
        )
    if scope_service != service:
        raise Forbidden(
            "InvalidSignatureException", "Credential should be scoped to correct service."
        )

    amz_date = _only(pairs, "x-amz-date") or ""
    signed_at = _timestamp(amz_date)
    if date != amz_date[:8]:
        raise Forbidden("InvalidSignatureException", "Credential date does not match X-Amz-Date.")
    now = now or datetime.datetime.now(datetime.UTC)
    if abs(now - signed_at) > CLOCK_SKEW:
        raise Forbidden(
            "InvalidSignatureException",
            f"Signature expired or not yet current: {amz_date} is more than 5 min from "
            f"{now.strftime(SIGV4_TIMESTAMP)}.",
        )

    signed = found["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        raise Forbidden("IncompleteSignatureException", "Host and X-Amz-Date must be signed.")
    token = _only(pairs, "x-amz-security-token")
    expected_token = getattr(credentials, "token", None) or None
    if (token is None) != (expected_token is None) or (
        token is not None
        and expected_token is not None
        and not hmac.compare_digest(_bytes(token), _bytes(expected_token))
    ):
        raise Forbidden(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    content_sha256 = _only(pairs, "x-amz-content-sha256")
    if content_sha256 is not None and content_sha256 != hashlib.sha256(body).hexdigest():
        raise _mismatch()  # botocore would sign this header's value instead of the body

    request = AWSRequest(method=method, url=url, data=body)
    for name, value in pairs:
        if name in signed:
            request.headers[name] = value  # botocore's HTTPHeaders keeps repeated names
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(credentials, service, region)
    canonical = signer.canonical_request(request)
    # Its last lines are the signed header names and the payload hash (SigV4's layout).
    if canonical.rsplit("\n", 2)[1] != found["signed"]:
        raise _mismatch()  # a signed header missing, or one botocore never signs
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected.encode(), found["signature"].encode()):
        raise _mismatch()
