"""The places the console operates: the local sandbox and AWS deployments of the backend.

An ``Environment`` is plain data; an ``EnvironmentStore`` keeps the user's list in a
``SettingsBackend`` (``QSettings`` in the console, a dict in tests) as JSON, together with the
environment used last. The local sandbox is always the first environment and cannot be removed
or renamed; AWS environments are added, edited and removed by the user.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from desktop.services.errors import ConfigurationError
from desktop.services.settings import SettingsBackend

log = logging.getLogger(__name__)

Kind = Literal["sandbox", "aws"]

SANDBOX_NAME = "Local sandbox"
ENVIRONMENTS_KEY = "environments/list"
CURRENT_KEY = "environments/current"

_STACK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,127}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")


@dataclass(frozen=True)
class Environment:
    """One place the console can operate; ``profile`` ``None`` means the default credentials."""

    kind: Kind
    name: str
    profile: str | None = None
    region: str | None = None
    stack_name: str | None = None
    endpoint_url: str | None = None
    last_deploy_time: datetime | None = None
    # Template parameter values the operator set (name, value), sorted; the rest keep the
    # template's default, or the stack's current value on an update.
    parameters: tuple[tuple[str, str], ...] = ()

    @property
    def is_sandbox(self) -> bool:
        return self.kind == "sandbox"

    @property
    def summary(self) -> str:
        """One line saying where this environment is, for lists and the status bar."""
        if self.is_sandbox:
            return "Runs on this computer"
        parts = [
            f"profile {self.profile}" if self.profile else "default credentials",
            self.region or "",
            f"stack {self.stack_name}" if self.stack_name else "",
            f"endpoint {self.endpoint_url}" if self.endpoint_url else "",
        ]
        return " · ".join(part for part in parts if part)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        if self.last_deploy_time is not None:
            data["last_deploy_time"] = self.last_deploy_time.isoformat()
        data["parameters"] = dict(self.parameters)
        return data

    @classmethod
    def from_json(cls, data: dict) -> Environment:
        """Raises ``ValueError`` or ``TypeError`` for anything that is not a stored environment."""
        if not isinstance(data, dict):
            raise TypeError("a stored environment is a JSON object")
        fields = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in data.items() if key in fields}
        if values.get("kind") not in ("sandbox", "aws"):
            raise ValueError(f"unknown kind {values.get('kind')!r}")
        parameters = values.pop("parameters", None) or {}
        if not isinstance(parameters, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in parameters.items()
        ):
            raise TypeError("parameters must map names to text")
        for key, value in values.items():
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{key} must be text")
        when = values.get("last_deploy_time")
        values["last_deploy_time"] = datetime.fromisoformat(when) if when else None
        return cls(**values, parameters=tuple(sorted(parameters.items())))


SANDBOX = Environment(kind="sandbox", name=SANDBOX_NAME)


def aws_environment(
    name: str,
    *,
    profile: str | None,
    region: str,
    stack_name: str,
    endpoint_url: str | None = None,
    last_deploy_time: datetime | None = None,
    parameters: dict[str, str] | tuple = (),
) -> Environment:
    """An AWS environment from what the user typed, trimmed and checked.

    Raises ``ConfigurationError`` saying which field to fix.
    """
    environment = Environment(
        kind="aws",
        name=name.strip(),
        profile=(profile or "").strip() or None,
        region=region.strip(),
        stack_name=stack_name.strip(),
        endpoint_url=(endpoint_url or "").strip().rstrip("/") or None,
        last_deploy_time=last_deploy_time,
        parameters=tuple(sorted(dict(parameters).items())),
    )
    validate(environment)
    return environment


def validate(environment: Environment) -> None:
    """Raise ``ConfigurationError`` with a sentence if an AWS environment cannot be used."""
    if environment.is_sandbox:
        return
    if not environment.name:
        raise ConfigurationError("Give the environment a name.")
    if len(environment.name) > 64:
        raise ConfigurationError("An environment name can be at most 64 characters long.")
    if environment.name.casefold() == SANDBOX_NAME.casefold():
        raise ConfigurationError(
            f"“{SANDBOX_NAME}” is the name of the built-in sandbox; choose another."
        )
    if not environment.region or not _REGION.fullmatch(environment.region):
        raise ConfigurationError(
            f"“{environment.region or ''}” is not an AWS region; use a code such as eu-west-1."
        )
    if not environment.stack_name or not _STACK_NAME.fullmatch(environment.stack_name):
        raise ConfigurationError(
            "A stack name starts with a letter and holds only letters, digits and hyphens "
            "(at most 128 characters)."
        )
    if environment.endpoint_url and not environment.endpoint_url.startswith(
        ("http://", "https://")
    ):
        raise ConfigurationError(
            "The endpoint URL must start with http:// or https://, or be left empty for AWS itself."
        )


class EnvironmentStore:
    """The user's environments, kept in a settings backend.

    Every change is written through at once, so a second console window (or the next run) sees
    it. Broken entries in the stored list are skipped and logged, never fatal.
    """

    def __init__(self, backend: SettingsBackend) -> None:
        self._backend = backend

    def environments(self) -> list[Environment]:
        """The sandbox first, then the AWS environments in the order they were added."""
        return [SANDBOX, *self._load()]

    def get(self, name: str) -> Environment:
        for environment in self.environments():
            if environment.name == name:
                return environment
        raise ConfigurationError(f"There is no environment called “{name}”.")

    def add(self, environment: Environment) -> Environment:
        if environment.is_sandbox:
            raise ConfigurationError("The local sandbox is built in; add AWS environments only.")
        validate(environment)
        stored = self._load()
        self._check_unique(environment.name, stored)
        self._save([*stored, environment])
        return environment

    def update(self, name: str, environment: Environment) -> Environment:
        """Replace the environment called ``name`` (which may rename it)."""
        if name == SANDBOX_NAME or environment.is_sandbox:
            raise ConfigurationError("The local sandbox has no settings to edit.")
        validate(environment)
        stored = self._load()
        index = self._index(name, stored)
        self._check_unique(environment.name, [e for i, e in enumerate(stored) if i != index])
        stored[index] = environment
        self._save(stored)
        if self.current_name() == name:
            self.set_current(environment.name)
        return environment

    def remove(self, name: str) -> None:
        if name == SANDBOX_NAME:
            raise ConfigurationError("The local sandbox is always available and cannot be removed.")
        stored = self._load()
        del stored[self._index(name, stored)]
        self._save(stored)
        if self.current_name() == name:
            self.set_current(SANDBOX_NAME)

    def record_deploy(self, name: str, when: datetime) -> Environment:
        """Remember when the environment was last deployed; returns the updated environment."""
        environment = dataclasses.replace(self.get(name), last_deploy_time=when)
        return self.update(name, environment)

    def current_name(self) -> str:
        """The environment used last, or the sandbox when none was (or it was removed)."""
        name = self._backend.value(CURRENT_KEY)
        names = {environment.name for environment in self.environments()}
        return name if name in names else SANDBOX_NAME

    def set_current(self, name: str) -> None:
        self._backend.set_value(CURRENT_KEY, name)

    def _load(self) -> list[Environment]:
        raw = self._backend.value(ENVIRONMENTS_KEY)
        if not raw:
            return []
        try:
            items = json.loads(raw)
        except ValueError:
            log.warning("ignoring unreadable stored environments")
            return []
        environments = []
        for item in items if isinstance(items, list) else []:
            try:
                environment = Environment.from_json(item)
                validate(environment)
            except (TypeError, ValueError, ConfigurationError) as error:
                log.warning("ignoring a stored environment that cannot be used: %s", error)
                continue
            if not environment.is_sandbox:
                environments.append(environment)
        return environments

    def _save(self, environments: list[Environment]) -> None:
        self._backend.set_value(
            ENVIRONMENTS_KEY, json.dumps([environment.to_json() for environment in environments])
        )

    @staticmethod
    def _index(name: str, stored: list[Environment]) -> int:
        for index, environment in enumerate(stored):
            if environment.name == name:
                return index
        raise ConfigurationError(f"There is no environment called “{name}”.")

    @staticmethod
    def _check_unique(name: str, others: list[Environment]) -> None:
        if any(other.name.casefold() == name.casefold() for other in others):
            raise ConfigurationError(f"An environment called “{name}” already exists.")
