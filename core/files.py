"""Files written whole: a crash leaves the old file or the new one, never half of one."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, text: str, mode: int | None = None) -> None:
    """Write `text` to `path` through a temporary file beside it, renamed over `path`. `mode`: the
    file's permissions exactly (e.g. 0o600 for secrets, never wider even for a moment); None: the
    process's default."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 if mode is None else mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    if mode is not None:
        os.chmod(temporary, mode)  # os.open's mode passes through the umask
    os.replace(temporary, path)
