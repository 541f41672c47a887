"""The console's errors, each one a sentence a support person can act on.

    ConsoleError                 base: str(error) is the sentence shown to the user
    ├── ConfigurationError       settings, arguments, files the user controls
    ├── AwsError                 anything from AWS (credentials, permissions, throttling, stacks)
    │   ├── CredentialsError     no credentials, expired SSO session, unknown profile
    │   └── DeployError          a change set or stack operation that failed
    ├── AdminError               the admin function answered and refused (its error code)
    ├── RedisError               the registry's Redis cannot be reached or answered badly
    ├── SandboxError             the local sandbox could not start or stopped
    └── SocketError              a classroom WebSocket could not connect or dropped

Services raise these and nothing else for expected failures; the console shows ``str(error)``
and logs the rest, so no traceback reaches a user.
"""

from __future__ import annotations


class ConsoleError(Exception):
    """Base of every error the console shows; ``hint`` says what to do next."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class ConfigurationError(ConsoleError):
    pass


class AwsError(ConsoleError):
    pass


class CredentialsError(AwsError):
    pass


class DeployError(AwsError):
    pass


class AdminError(ConsoleError):
    """The admin function answered, and refused: ``code`` is its error code (PROTOCOL.md's)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message if message.endswith(".") else f"{message}.")
        self.code = code


class RedisError(ConsoleError):
    pass


class SandboxError(ConsoleError):
    pass


class SocketError(ConsoleError):
    pass
