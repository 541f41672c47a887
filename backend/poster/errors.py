"""How a management API call fails, as one small tree the fan-out and the handlers branch on.

    PostError                   the call did not do what was asked
     +-- Gone                   HTTP 410: the connection is no more; remove its registration
     +-- Throttled              HTTP 429: the API's rate limit; retry with backoff
     +-- PostFailed             anything else; counted and logged, never fatal to a fan-out
          +-- ConnectionFailed  no connection, or it dropped before an answer came
          +-- Timeout           no complete answer within the read timeout
          +-- BadAnswer         an answer that is not the HTTP/1.x it should be, or cut short

An error answer from the API (a 403 or a 500, say) is a plain ``PostFailed`` naming its AWS error
code and status. Both posters raise the same classes for the same failures.
"""

from __future__ import annotations


class PostError(Exception):
    """A management API call (post, delete, get) that did not do what was asked."""


class Gone(PostError):
    """HTTP 410: the connection is gone; remove its registration."""


class Throttled(PostError):
    """HTTP 429: the management API's rate limit; retry with backoff."""


class PostFailed(PostError):
    """Any other failure to post; counted and logged, never fatal to a fan-out."""


class ConnectionFailed(PostFailed):
    """Could not connect, or the connection was closed or reset before an answer came."""


class Timeout(PostFailed):
    """The management API did not answer, or did not finish answering, within the timeout."""


class BadAnswer(PostFailed):
    """An answer that is not well-formed HTTP/1.x (or not the JSON expected), or cut short."""
