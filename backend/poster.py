"""The ``@connections`` management API: deliver a frame to a connection, look it up, close it.

Two posters behave the same way:

- ``Boto3Poster`` wraps ``boto3``'s ``apigatewaymanagementapi`` client, the reference.
- ``LeanPoster`` signs each request with SigV4 itself (the signing key is cached per day) and
  sends it over a pool of keep-alive connections. A ``boto3`` call spends most of its CPU in
  request building and event hooks; at every fan-out that is billed Lambda time, per member.

Both raise ``Gone`` for HTTP 410 (the connection is no more), ``Throttled`` for 429, and
``PostFailed`` for anything else.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
from typing import Protocol
from urllib.parse import quote, urlsplit


class PostError(Exception):
    pass


class Gone(PostError):
    """HTTP 410: the connection is gone; remove its registration."""


class Throttled(PostError):
    """HTTP 429: the management API's rate limit; retry with backoff."""


class PostFailed(PostError):
    """Any other failure to post; counted and logged, never fatal to a fan-out."""


class Poster(Protocol):
    def post(self, connection_id: str, data: bytes) -> None: ...

    def delete(self, connection_id: str) -> None: ...

    def get(self, connection_id: str) -> dict: ...


def endpoint_for(event: dict, override: str | None = None) -> str:
    """``https://{domainName}/{stage}`` from the event, as API Gateway's samples build it."""
    if override:
        return override.rstrip("/")
    context = event["requestContext"]
    return f"https://{context['domainName']}/{context['stage']}"


def _boto_config(concurrency: int):
    from botocore.config import Config

    # Retries are the fan-out's job, so both posters report the first answer as it is.
    return Config(
        max_pool_connections=concurrency,
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=3,
        read_timeout=5,
    )


class Boto3Poster:
    def __init__(self, endpoint_url: str, region: str, concurrency: int = 64, client=None) -> None:
        if client is None:
            import boto3

            client = boto3.client(
                "apigatewaymanagementapi",
                endpoint_url=endpoint_url,
                region_name=region,
                config=_boto_config(concurrency),
            )
        self.client = client

    def _call(self, method, connection_id: str, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return method(ConnectionId=connection_id, **kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "GoneException" or status == 410:
                raise Gone(connection_id) from None
            if status == 429 or code in ("LimitExceededException", "TooManyRequestsException"):
                raise Throttled(connection_id) from None
            raise PostFailed(f"{code or status}: {error}") from None
        except BotoCoreError as error:
            raise PostFailed(str(error)) from None

    def post(self, connection_id: str, data: bytes) -> None:
        self._call(self.client.post_to_connection, connection_id, Data=data)

    def delete(self, connection_id: str) -> None:
        self._call(self.client.delete_connection, connection_id)

    def get(self, connection_id: str) -> dict:
        answer = self._call(self.client.get_connection, connection_id)
        answer.pop("ResponseMetadata", None)
        return answer


class SigV4Signer:
    """AWS Signature Version 4 for ``execute-api``, as botocore signs it, with a cached key."""

    def __init__(self, region: str, service: str = "execute-api", credentials=None) -> None:
        self.region = region
        self.service = service
        self._credentials = credentials
        self._key_date: str | None = None
        self._key_secret: str | None = None
        self._key: bytes = b""

    def _frozen(self):
        if self._credentials is None:
            import botocore.session

            self._credentials = botocore.session.get_session().get_credentials()
            if self._credentials is None:
                raise PostFailed("no AWS credentials to sign management API requests")
        return self._credentials.get_frozen_credentials()

    def _signing_key(self, secret: str, date: str) -> bytes:
        if date != self._key_date or secret != self._key_secret:
            key = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
            for part in (self.region, self.service, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._key, self._key_date, self._key_secret = key, date, secret
        return self._key

    def headers(
        self, method: str, url: str, body: bytes, now: datetime.datetime | None = None
    ) -> dict:
        """The headers that sign this request (Host, X-Amz-Date, token, Authorization)."""
        creds = self._frozen()
        now = now or datetime.datetime.now(datetime.UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        date = amz_date[:8]
        parts = urlsplit(url)
        headers = {"host": parts.netloc, "x-amz-date": amz_date}
        if creds.token:
            headers["x-amz-security-token"] = creds.token
        signed = ";".join(sorted(headers))
        canonical = "\n".join(
            [
                method,
                quote(parts.path or "/", safe="/~"),
                parts.query,
                "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
                signed,
                hashlib.sha256(body).hexdigest(),
            ]
        )
        scope = f"{date}/{self.region}/{self.service}/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        signature = hmac.new(
            self._signing_key(creds.secret_key, date), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
        return headers


class LeanPoster:
    def __init__(
        self, endpoint_url: str, region: str, concurrency: int = 64, credentials=None, pool=None
    ) -> None:
        import urllib3

        self.endpoint_url = endpoint_url.rstrip("/")
        self.signer = SigV4Signer(region, credentials=credentials)
        self.pool = pool or urllib3.PoolManager(
            maxsize=concurrency,
            block=False,
            retries=False,
            timeout=urllib3.Timeout(connect=3.0, read=5.0),
        )

    def _url(self, connection_id: str) -> str:
        return f"{self.endpoint_url}/@connections/{quote(connection_id, safe='')}"

    def _request(self, method: str, connection_id: str, body: bytes = b""):
        import urllib3

        url = self._url(connection_id)
        headers = self.signer.headers(method, url, body)
        try:
            response = self.pool.request(method, url, body=body or None, headers=headers)
        except urllib3.exceptions.HTTPError as error:
            raise PostFailed(str(error)) from None
        if response.status == 410:
            raise Gone(connection_id)
        if response.status == 429:
            raise Throttled(connection_id)
        if response.status >= 300:
            text = response.data[:200].decode("utf-8", "replace")
            raise PostFailed(f"HTTP {response.status}: {text}")
        return response

    def post(self, connection_id: str, data: bytes) -> None:
        self._request("POST", connection_id, data)

    def delete(self, connection_id: str) -> None:
        self._request("DELETE", connection_id)

    def get(self, connection_id: str) -> dict:
        """GetConnection, in the shape boto3 returns it."""
        wire = json.loads(self._request("GET", connection_id).data or b"{}")
        identity = wire.get("identity") or {}
        answer = {
            "Identity": {
                "SourceIp": identity.get("sourceIp"),
                "UserAgent": identity.get("userAgent"),
            }
        }
        for key in ("connectedAt", "lastActiveAt"):
            if wire.get(key):
                answer[key[0].upper() + key[1:]] = _timestamp(wire[key])
        return answer


def _timestamp(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


POSTERS = {"lean": LeanPoster, "boto3": Boto3Poster}
