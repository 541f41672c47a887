"""Stack outputs remembered per environment, so the console knows an endpoint without asking AWS.

One JSON file, ``outputs.json`` in ``config_dir()``, keyed by environment
(``account/region/stack``); written whole and atomically so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from desktop.services.errors import ConfigurationError
from desktop.services.paths import config_dir


def environment_key(account: str, region: str, stack_name: str) -> str:
    """The name one deployment is remembered under: one stack in one account and region."""
    return f"{account}/{region}/{stack_name}"


class OutputsStore:
    """The outputs of each deployed environment, as last seen after a deploy or status check."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else config_dir() / "outputs.json"

    def environments(self) -> dict[str, dict]:
        """Every remembered environment: ``{key: {stack, account, region, outputs, saved_at}}``."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as error:
            raise ConfigurationError(
                f"Could not read the saved stack outputs in {self.path} ({error.strerror}).",
                hint="Check the file's permissions.",
            ) from error
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}

    def load(self, key: str) -> dict[str, str] | None:
        entry = self.environments().get(key)
        return dict(entry.get("outputs", {})) if isinstance(entry, dict) else None

    def save(self, key: str, outputs: dict[str, str]) -> None:
        account, region, stack = (key.split("/", 2) + ["", ""])[:3]
        data = self.environments()
        data[key] = {
            "stack": stack,
            "account": account,
            "region": region,
            "outputs": dict(sorted(outputs.items())),
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._write(data)

    def forget(self, key: str) -> None:
        data = self.environments()
        if data.pop(key, None) is not None:
            self._write(data)

    def _write(self, data: dict) -> None:
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        temporary = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(
                prefix=".outputs-", suffix=".json", dir=self.path.parent
            )
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
            os.replace(temporary, self.path)
        except OSError as error:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
            raise ConfigurationError(
                f"Could not save the stack outputs to {self.path} ({error.strerror}).",
                hint="Check that the folder is writable.",
            ) from error
