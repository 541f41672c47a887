"""Keeps tokens and keys out of the sandbox's log lines, whoever writes them.

aiohttp writes what a client sent into its logs, and a client's request carries its token:

- ``aiohttp.websocket`` warns ``Client protocols [...] don't overlap server-known ones`` with
  every ``Sec-WebSocket-Protocol`` value offered (clients that put a JWT there, as browsers
  must, since they cannot set headers);
- ``aiohttp.server`` logs ``Error handling request`` with the parser's exception: a request
  line or header over 8190 bytes shows its first 100 (``/local?room=..&token=eyJ..``, or a
  header's value: ``Bearer <key>``), and a malformed line is shown whole, in ``repr``;
- ``aiohttp.access``, when on, logs the request line with its query, and its ``extra`` fields.

So the filter formats each record (message with its ``args``, exception text, stack, string
``extra`` fields), redacts the result and clears ``args``, whatever logger or handler it sits
on: JWT-shaped strings (``eyJ``, even cut short), ``token=`` values, the values of
``Authorization``, ``Sec-WebSocket-Protocol`` and their kin (also cut short, without their
names), and any exact secret registered (the token secret, the admin key).

A filter on a logger sees only that logger's own records, not its children's, so ``install``
puts it on aiohttp's loggers, on ``desktop.sandbox`` and on the handlers those and the root
logger have (the CLI's, Python's last-resort one), where every propagated record passes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

REDACTED = "[redacted]"
HEADERS = (
    "authorization",
    "proxy-authorization",
    "sec-websocket-protocol",
    "x-amz-security-token",
    "cookie",
)
LOGGERS = (
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.internal",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.websocket",
    "asyncio",
    "desktop.sandbox",
)
_NAMES = "|".join(re.escape(name) for name in HEADERS)
_PATTERNS = [
    # A header in a raw head, a repr of headers, or a dict: name, separator, value to its end.
    (re.compile(rf"(?i)((?:{_NAMES})['\"]?\s*[:=,]\s*['\"]?)[^'\"\r\n\\]+"), rf"\1{REDACTED}"),
    # aiohttp's list of offered subprotocols, whatever they are.
    (re.compile(r"(Client protocols )(\[.*?\]|\(.*?\))"), rf"\1{REDACTED}"),
    # An Authorization value shown without its name (a header line cut at 100 bytes).
    (
        re.compile(r"(?i)\b(Bearer|Basic|AWS4-HMAC-SHA256)\s+[^'\"\r\n\\]+"),
        rf"\1 {REDACTED}",
    ),
    (re.compile(r"(?i)(\w*token=)[^&\s'\"\\]+"), rf"\1{REDACTED}"),
    (re.compile(r"eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2}"), REDACTED),
]
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class Redactor(logging.Filter):
    """Redacts each record in place and lets it through; idempotent, so a record that passes
    both a logger and a handler with it is no worse for it."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: list[str] = []
        for secret in secrets:
            self.add_secret(secret)

    def add_secret(self, secret: str) -> None:
        """An exact string never to show (short ones would blank out ordinary words)."""
        if len(secret) >= 8 and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose args do not fit its format: show both
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        # The formatted text is all a formatter shows; the exception itself would show it again.
        record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD:
                setattr(record, key, self._redact_value(value))
        return True

    def _redact_value(self, value):
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):  # aiohttp's access log puts headers in a dict
            return {k: self._redact_value(v) for k, v in value.items()}
        return value


def install(
    secrets: Iterable[str] = (),
    loggers: Iterable[str] = LOGGERS,
    handlers: Iterable[logging.Handler] = (),
) -> Redactor:
    """One ``Redactor`` on ``loggers``, on their handlers and the root's, on
    ``logging.lastResort`` and on ``handlers``; returns it (``uninstall`` takes it off)."""
    redactor = Redactor(secrets)
    for target in _targets(loggers, handlers):
        target.addFilter(redactor)
    return redactor


def uninstall(
    redactor: Redactor, loggers: Iterable[str] = LOGGERS, handlers: Iterable[logging.Handler] = ()
) -> None:
    for target in _targets(loggers, handlers):
        target.removeFilter(redactor)


def _targets(loggers: Iterable[str], handlers: Iterable[logging.Handler]) -> list:
    named = [logging.getLogger(name) for name in loggers]
    found: list = [*named, *handlers]
    for logger in [*named, logging.getLogger()]:
        found.extend(logger.handlers)
    if logging.lastResort is not None:
        found.append(logging.lastResort)
    return list(dict.fromkeys(found))  # each once, in order
