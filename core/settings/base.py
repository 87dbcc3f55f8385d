"""Shared base for configuration sections: unknown keys are errors, so a typo never passes silently."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def read_secret(value: SecretStr | None, file: Path | None, what: str) -> str | None:
    """The secret from the environment (`value`) or from `file`, stripped of a trailing newline."""
    if value is not None:
        return value.get_secret_value()
    if file is None:
        return None
    try:
        return file.read_text().rstrip("\r\n")
    except OSError as err:
        raise ValueError(f"cannot read {what} from {file}: {err.strerror}") from None
