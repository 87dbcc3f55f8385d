"""The local dead-letter record: one JSON line per rejected message, in a size-bounded file.

An integrator reads it (or `facmon_rejects` in InfluxDB) to see exactly what a device sent and why it
was refused. The file rotates to `<name>.1` at `max_bytes`, so it never takes more than twice that."""

from __future__ import annotations

import json
import os
from pathlib import Path

from core.contract import format_ts
from core.decode import Reject


def payload_excerpt(payload: bytes, limit: int) -> str:
    text = payload[:limit].decode("utf-8", "backslashreplace")
    return text + ("…" if len(payload) > limit else "")


class DeadLetterFile:
    def __init__(self, path: Path, max_bytes: int, excerpt_bytes: int) -> None:
        self._path = path
        self._max_bytes = max_bytes
        self._excerpt_bytes = excerpt_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - held for the process lifetime
        self._size = path.stat().st_size

    def record(self, reject: Reject, received_at: float) -> None:
        entry = {
            "received_at": format_ts(int(received_at * 1000)),
            "reason": reject.reason.value,
            "detail": reject.detail,
            "topic": reject.topic,
            "payload": payload_excerpt(reject.payload, self._excerpt_bytes),
            "payload_bytes": len(reject.payload),
        }
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        if self._size + len(line) > self._max_bytes:
            self._rotate()
        self._handle.write(line)
        self._size += len(line.encode())

    def flush(self) -> None:
        self._handle.flush()

    def _rotate(self) -> None:
        self._handle.close()
        os.replace(self._path, self._path.with_name(self._path.name + ".1"))
        self._handle = open(self._path, "a", encoding="utf-8")  # noqa: SIM115
        self._size = 0

    def close(self) -> None:
        self._handle.close()
