"""What the collector knows about each device: its latest reading, when it was last heard from,
whether it says it is online, and where its sequence counter stands (duplicates, gaps, restarts)."""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from core.contract import DeviceKey, Reading


class SeqVerdict(enum.Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    """Same device, `seq` and `ts` as a reading seen recently: a redelivery or a repeated publish."""


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    device: DeviceKey
    latest: Reading | None
    last_seen: float | None
    online: bool | None
    status_changed_at: float | None


class _Record:
    __slots__ = ("last_seen", "last_seq", "latest", "online", "recent", "recent_keys", "status_changed_at")

    def __init__(self) -> None:
        self.latest: Reading | None = None
        self.last_seen: float | None = None
        self.online: bool | None = None
        self.status_changed_at: float | None = None
        self.last_seq: int | None = None
        self.recent: deque[int] = deque()
        self.recent_keys: set[int] = set()


@dataclass
class SequenceCounts:
    duplicates: int = 0
    gaps: int = 0
    """Readings a device numbered but we never received (sum of holes in `seq`)."""
    restarts: int = 0
    """Times a device's `seq` went backwards with a newer `ts` (the device rebooted)."""
    out_of_order: int = 0


class DeviceTable:
    """Per-device state. Not thread-safe: one consumer thread updates it; readers take snapshots.

    Duplicate detection remembers the last `duplicate_window` (seq, ts) pairs of each device, so a
    device that restarts its counter (same seq, new ts) is never mistaken for a duplicate."""

    def __init__(self, duplicate_window: int) -> None:
        self._window = duplicate_window
        self._records: dict[DeviceKey, _Record] = {}
        self.counts = SequenceCounts()

    def _record(self, device: DeviceKey) -> _Record:
        record = self._records.get(device)
        if record is None:
            record = self._records[device] = _Record()
        return record

    def observe(self, reading: Reading, received_at: float) -> SeqVerdict:
        record = self._record(reading.device)
        # One int per remembered reading instead of a (seq, ts) tuple: with 10,000 devices the window
        # is most of the collector's memory. Exact, not a hash: seq < 2^63 and ts_ms < 2^53.
        key = (reading.seq << 53) | (reading.ts_ms & 0x1F_FFFF_FFFF_FFFF)
        if key in record.recent_keys:
            self.counts.duplicates += 1
            return SeqVerdict.DUPLICATE
        record.recent.append(key)
        record.recent_keys.add(key)
        if len(record.recent) > self._window:
            record.recent_keys.discard(record.recent.popleft())
        previous = record.latest
        last_seq = record.last_seq
        if last_seq is not None and previous is not None:
            if reading.seq > last_seq + 1:
                self.counts.gaps += reading.seq - last_seq - 1
            elif reading.seq <= last_seq:
                if reading.ts_ms > previous.ts_ms:
                    self.counts.restarts += 1
                else:
                    self.counts.out_of_order += 1
                    record.last_seen = received_at
                    return SeqVerdict.NEW  # late arrival: stored, but not the latest state
        record.last_seq = reading.seq
        record.latest = reading
        record.last_seen = received_at
        return SeqVerdict.NEW

    def set_status(self, device: DeviceKey, online: bool, at: float) -> None:
        record = self._record(device)
        if record.online != online:
            record.online = online
            record.status_changed_at = at

    def snapshot(self) -> list[DeviceSnapshot]:
        return [DeviceSnapshot(key, r.latest, r.last_seen, r.online, r.status_changed_at)
                for key, r in list(self._records.items())]

    def __len__(self) -> int:
        return len(self._records)
