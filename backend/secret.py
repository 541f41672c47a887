"""Secrets Manager secrets through Powertools' parameters, cached for ``MAX_AGE`` seconds.

A warm Lambda keeps the value it read for ``MAX_AGE`` seconds, then reads the secret again, so a
rotated secret takes effect within that time without waiting for a cold start.

Why 300 s: each read is a Secrets Manager call through the NAT gateway (tens of milliseconds
inside an invocation, and billed per 10,000 calls). Powertools' default of 5 s would make every
warm container of a busy classroom call it up to 720 times an hour per secret; 300 s makes that
12, and keeps a rotation's delay to five minutes, short against the rotation window a token
secret or a Redis AUTH token needs anyway (ElastiCache accepts the old and the new token during
a ``ROTATE``; ``docs/template.md``).

``Secret`` reads through Powertools' ``SecretsProvider`` with ``max_age``, the provider's cache
serving reads in between. When the secret is due for a new read is measured on a clock handed
in (``time.monotonic`` in Lambda), and such a read forces the provider (``force_fetch``), so a
test drives time instead of sleeping. The provider, and its boto3 client, are handed in too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when first used: it imports boto3, which the sandbox never needs
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

MAX_AGE = 300

Clock = Callable[[], float]


def provider(region: str, client=None) -> SecretsProvider:
    """Powertools' Secrets Manager provider over ``client``; None builds boto3's for ``region``
    with short timeouts (a handler waits on the read)."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    if client is None:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "secretsmanager",
            region_name=region,
            config=Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 2}),
        )
    return SecretsProvider(boto3_client=client)


class Secret:
    """One secret's current value (``SecretString``), read again once ``max_age`` has passed."""

    def __init__(
        self,
        secret_id: str,
        source: SecretsProvider,
        *,
        max_age: int = MAX_AGE,
        clock: Clock = time.monotonic,
    ) -> None:
        self.secret_id = secret_id
        self.max_age = max_age
        self._source = source
        self._clock = clock
        self._read_at: float | None = None

    def value(self) -> str:
        """The secret's value: from Powertools' cache, or read again when it is due."""
        now = self._clock()
        due = self._read_at is None or now - self._read_at >= self.max_age
        found = self._source.get(self.secret_id, max_age=self.max_age, force_fetch=due)
        if due:
            self._read_at = now
        return found.decode() if isinstance(found, bytes) else str(found)


# The process's secrets, one ``Secret`` per id, over one provider (one boto3 client): what a warm
# Lambda keeps. ``use`` hands in the client and the clock (``backend.runtime.configure``).
_lock = threading.Lock()
_secrets: dict[str, Secret] = {}
_source: SecretsProvider | None = None
_given_client = None
_given_clock: Clock | None = None


def value_of(secret_id: str, region: str) -> str:
    """The current value of the secret ``secret_id`` (an ARN or a name), read at most every
    ``MAX_AGE`` seconds."""
    global _source
    with _lock:
        found = _secrets.get(secret_id)
        if found is None:
            if _source is None:
                _source = provider(region, _given_client)
            clock = time.monotonic if _given_clock is None else _given_clock
            found = _secrets[secret_id] = Secret(secret_id, _source, clock=clock)
    return found.value()


def use(client=None, clock: Clock | None = None) -> None:
    """Read secrets with this Secrets Manager client, their age measured on ``clock`` (None:
    boto3's client for the settings' region, ``time.monotonic``); forgets what was read."""
    global _given_client, _given_clock
    reset()
    with _lock:
        _given_client, _given_clock = client, clock


def reset() -> None:
    """Forget every value read and the provider (a cold start)."""
    global _source
    with _lock:
        _secrets.clear()
        _source = None
