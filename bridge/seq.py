"""A `seq` per bridged device that survives restarts: foreign devices send no counter, and the
collector judges duplicates and restarts by one.

The state file holds, per device, a number no seq published so far reaches. Writing it on every
reading would cost an fsync per message, so the store reserves blocks: when a device's next seq
reaches its reserved mark, the mark moves `block` ahead. The file is rewritten (temp file, fsync,
rename, fsync of the directory) by `settle()`, which the bridge calls before it publishes a batch:
one write for every device whose mark moved in the batch, not one per device (a thousand new
devices in the first second would otherwise be a thousand fsynced rewrites). After a crash the
counter resumes at the mark, leaving a gap (counted by the collector as missed readings, never as
duplicates that it would drop); a clean `close()` writes the exact next values, so a restart leaves
none.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import orjson

from bridge import SeqStateError
from core.contract import SEQ_MAX, DeviceKey

DEFAULT_BLOCK = 256
MAX_DEVICES = 10_000
"""Devices the store keeps a counter for: a source without only_listed_devices that sees random topic
names (a stranger, a bug) must not grow the state file and fsync it for every new name."""


class TooManyDevices(SeqStateError):
    """A new device would pass MAX_DEVICES."""


class SeqStore:
    """Thread-safe. `next(device)` → the device's next seq, which may be published once `settle()` returned."""

    def __init__(self, path: Path, block: int = DEFAULT_BLOCK, max_devices: int = MAX_DEVICES) -> None:
        """Reads `path` if it exists. Raises SeqStateError when it is unreadable or not a state file."""
        self._path = path
        self._block = block
        self._max_devices = max_devices
        self._lock = threading.Lock()
        self._next: dict[str, int] = {}
        self._reserved: dict[str, int] = {}
        self._unsettled = False
        """A mark moved since the file was last written."""
        self.writes = 0
        """State file rewrites since start (each one fsynced)."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raw = b""
        except OSError as err:
            raise SeqStateError(f"cannot read the bridge's seq state {path}: {err.strerror}; check its "
                                "permissions (bridge.state_file)") from None
        if raw:
            try:
                data = orjson.loads(raw)
                if not isinstance(data, dict) or not all(isinstance(v, int) and 0 <= v <= SEQ_MAX
                                                         for v in data.values()):
                    raise ValueError("not an object of device → counter")
            except ValueError as err:
                raise SeqStateError(f"{path} is not the bridge's seq state ({err}); move it aside (every bridged "
                                    "device's seq then starts at 0, seen by the collector as a restart)") from None
            self._next = dict(data)
            self._reserved = dict(data)

    def next(self, device: DeviceKey) -> int:
        """The device's next seq; publish it only after `settle()`. Raises TooManyDevices for a new device
        beyond `max_devices`."""
        key = str(device)
        with self._lock:
            if key not in self._next and len(self._next) >= self._max_devices:
                raise TooManyDevices(f"the bridge already numbers {self._max_devices:,} devices; a source without "
                                     "only_listed_devices may be taking topics that are no devices: list them")
            seq = self._next.get(key, 0)
            if seq >= self._reserved.get(key, 0):
                self._reserved[key] = seq + self._block
                self._unsettled = True
            self._next[key] = seq + 1
            return seq

    def settle(self) -> None:
        """Write the marks that moved since the last write, so that no seq handed out so far is handed out
        again after a crash. Raises SeqStateError when the file cannot be written."""
        with self._lock:
            if self._unsettled:
                self._write(self._reserved)
                self._unsettled = False

    def close(self) -> None:
        """Write the exact next seq of every device (a clean stop leaves no gap)."""
        with self._lock:
            if self._next:
                self._write(self._next)
                self._reserved = dict(self._next)
                self._unsettled = False

    def _write(self, counters: dict[str, int]) -> None:
        temp = self._path.with_name(self._path.name + ".tmp")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with open(temp, "wb") as out:
                out.write(orjson.dumps(counters, option=orjson.OPT_SORT_KEYS))
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self._path)
            directory = os.open(self._path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as err:
            raise SeqStateError(f"cannot write the bridge's seq state {self._path}: {err.strerror}; free space or "
                                "fix permissions (bridge.state_file)") from None
        self.writes += 1
