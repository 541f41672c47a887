"""The template's parameters as an operator sets them: what each is, and whether a value will do.

CloudFormation checks a parameter's value only once the change set is being made, after the
backend has been packaged and uploaded. The console checks the same constraints (type, allowed
values, bounds, length, pattern) when the value is typed, and says in a sentence what to change.
The parameters the deploy fills in itself (the packaged backend's bucket and key) are not offered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from desktop.services.deploy import ARTIFACT_PARAMETERS, default_source_root, load_template
from desktop.services.errors import ConfigurationError


class ParameterError(ConfigurationError):
    """A value CloudFormation would refuse; ``name`` is the parameter it was given for."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def _number(value: object) -> float | None:
    """``value`` (a user's text, or a template's number or text) as a number; None if it is not."""
    if not isinstance(value, str | int | float):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _whole(value: object) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None


def _shown(number: float) -> str:
    number = float(number)
    return str(int(number)) if number.is_integer() else str(number)


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter of the template, with the constraints CloudFormation will enforce."""

    name: str
    type: str = "String"
    default: str | None = None
    description: str = ""
    allowed_values: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    allowed_pattern: str | None = None
    constraint: str = ""  # the template's ConstraintDescription
    secret: bool = False  # NoEcho

    @property
    def required(self) -> bool:
        """No default: a new stack needs a value (an update can keep the stack's)."""
        return self.default is None

    def problem(self, value: str) -> str | None:
        """Why CloudFormation would refuse ``value``, as a sentence; None when it will do."""
        name = self.name
        if self.allowed_values and value not in self.allowed_values:
            return f"{name} must be one of {', '.join(self.allowed_values)}."
        if self.type == "Number":
            number = _number(value)
            if number is None:
                return f"{name} must be a number, not “{value}”."
            low, high = self.min_value, self.max_value
            if low is not None and high is not None:
                if not low <= number <= high:
                    return f"{name} must be from {_shown(low)} to {_shown(high)}."
            elif low is not None and number < low:
                return f"{name} must be at least {_shown(low)}."
            elif high is not None and number > high:
                return f"{name} must be at most {_shown(high)}."
            return None
        if self.min_length is not None and len(value) < self.min_length:
            return f"{name} must be at least {self.min_length} characters long."
        if self.max_length is not None and len(value) > self.max_length:
            return f"{name} must be at most {self.max_length} characters long."
        if self.allowed_pattern is not None and not re.fullmatch(self.allowed_pattern, value):
            return f"{name}: {self.constraint or 'the value does not have the required form.'}"
        return None


def parameter_specs(template: dict) -> list[ParameterSpec]:
    """The parameters an operator can set, in the template's order."""
    specs = []
    for name, declared in (template.get("Parameters") or {}).items():
        if name in ARTIFACT_PARAMETERS or not isinstance(declared, dict):
            continue
        default = declared.get("Default")
        pattern = declared.get("AllowedPattern")
        specs.append(
            ParameterSpec(
                name=str(name),
                type=str(declared.get("Type", "String")),
                default=None if default is None else str(default),
                description=" ".join(str(declared.get("Description", "")).split()),
                allowed_values=tuple(str(v) for v in declared.get("AllowedValues") or ()),
                min_value=_number(declared.get("MinValue")),
                max_value=_number(declared.get("MaxValue")),
                min_length=_whole(declared.get("MinLength")),
                max_length=_whole(declared.get("MaxLength")),
                allowed_pattern=str(pattern) if pattern is not None else None,
                constraint=" ".join(str(declared.get("ConstraintDescription", "")).split()),
                secret=str(declared.get("NoEcho", "")).lower() == "true",
            )
        )
    return specs


def template_specs(template_path: Path | str | None = None) -> list[ParameterSpec]:
    """The parameters of the template a deploy uses (the installed backend's by default)."""
    path = Path(template_path) if template_path else default_source_root() / "backend/template.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(
            f"Could not read the CloudFormation template {path} ({error.strerror}).",
            hint="Reinstall Classroom Console.",
        ) from error
    return parameter_specs(load_template(text, str(path)))


def check(specs: list[ParameterSpec], values: dict[str, str]) -> dict[str, str]:
    """The values worth keeping (empty ones dropped), or ``ParameterError`` for the first that
    CloudFormation would refuse."""
    known = {spec.name: spec for spec in specs}
    kept = {}
    for name, value in values.items():
        value = value.strip()
        if not value:
            continue
        spec = known.get(name)
        if spec is None:
            raise ParameterError(name, f"The template has no parameter {name}.")
        problem = spec.problem(value)
        if problem:
            raise ParameterError(name, problem)
        kept[name] = value
    return kept
