"""What the collector knows about each device: its latest reading, when it was last heard from,
whether it says it is online, and where its sequence counter stands (duplicates, gaps, restarts)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import orjson

from core.contract import DeviceKey, Reading


class SeqVerdict(enum.Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    """Same device, `seq` and `ts` as a reading seen recently: a redelivery or a repeated publish."""
    TS_CONFLICT = "ts_conflict"
    """Same device and `ts` as the newest reading, another `seq`: storing it would overwrite that one."""


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    device: DeviceKey
    latest: Reading | None
    last_seen: float | None
    online: bool | None
    status_changed_at: float | None


class _Record:
    __slots__ = ("high_seq", "high_ts_ms", "high_ts_seq", "last_seen", "latest", "online", "seen",
                 "status_changed_at")

    def __init__(self) -> None:
        self.latest: Reading | tuple[int, int, bytes] | None = None
        """The latest reading, or (ts_ms, seq, payload) of one taken by the C kernel, decoded on demand."""
        self.last_seen: float | None = None
        self.online: bool | None = None
        self.status_changed_at: float | None = None
        self.high_seq = -1
        self.high_ts_ms = -1
        self.high_ts_seq = -1
        """The `seq` of the reading whose `ts` is `high_ts_ms`."""
        self.seen = 0
        """Bit i set: seq `high_seq - i` has been received (a sliding window of `duplicate_window` bits)."""


@dataclass
class SequenceCounts:
    duplicates: int = 0
    gaps: int = 0
    """Readings a device numbered but we have not received (holes in `seq`, less those filled late)."""
    restarts: int = 0
    """Times a device's `seq` went backwards with a newer `ts` (the device rebooted)."""
    out_of_order: int = 0
    """Readings that arrived after a higher `seq` of the same device (stored, not the latest state)."""
    jumps: int = 0
    """Times a device's `seq` leapt further ahead than it could have counted readings since its last
    (more than one per millisecond of `ts`): a broken or hostile counter, not lost readings."""
    ts_conflicts: int = 0
    """Readings refused because the device's newest reading has the same `ts` and another `seq`."""


class DeviceTable:
    """Per-device state. Not thread-safe: one consumer thread updates it; readers take snapshots.

    Duplicates are recognised per device with a bitmap of the last `duplicate_window` sequence
    numbers below the highest seen: a few hundred bytes per device, so 10,000 devices cost a few MB.
    A reading whose `seq` is not above the highest but whose `ts` is newer than any seen is a device
    that restarted its counter, never a duplicate; the same `seq` again with an older or equal `ts`
    is a redelivery or a repeated publish."""

    def __init__(self, duplicate_window: int) -> None:
        self._window_bits = duplicate_window
        self._window_mask = (1 << duplicate_window) - 1
        self._records: dict[DeviceKey, _Record] = {}
        self.counts = SequenceCounts()

    def _record(self, device: DeviceKey) -> _Record:
        record = self._records.get(device)
        if record is None:
            record = self._records[device] = _Record()
        return record

    def observe(self, reading: Reading, received_at: float) -> SeqVerdict:
        return self._observe(self._record(reading.device), reading.seq, reading.ts_ms, reading, received_at)

    def observe_payload(self, device: DeviceKey, seq: int, ts_ms: int, payload: bytes,
                        received_at: float) -> SeqVerdict:
        """`observe` for a reading known by its seq, ts and payload, which the contract accepted (the
        collector's C path builds no metrics dict): a snapshot decodes the payload if it asks."""
        return self._observe(self._record(device), seq, ts_ms, (ts_ms, seq, payload), received_at)

    def _observe(self, record: _Record, seq: int, ts_ms: int, reading: Reading | tuple[int, int, bytes],
                 received_at: float) -> SeqVerdict:
        record.last_seen = received_at
        if ts_ms == record.high_ts_ms and seq != record.high_ts_seq and record.high_seq >= 0:
            self.counts.ts_conflicts += 1
            return SeqVerdict.TS_CONFLICT
        if record.high_seq < 0 or (seq <= record.high_seq and ts_ms > record.high_ts_ms):
            if record.high_seq >= 0:
                self.counts.restarts += 1
            self._start_window(record, seq, ts_ms, reading)
            return SeqVerdict.NEW
        if seq > record.high_seq:
            skipped = seq - record.high_seq - 1
            if skipped > max(ts_ms - record.high_ts_ms, self._window_bits):
                self.counts.jumps += 1
                if ts_ms > record.high_ts_ms:
                    record.high_ts_ms, record.high_ts_seq = ts_ms, seq
                record.high_seq, record.seen, record.latest = seq, 1, reading
                return SeqVerdict.NEW
            self.counts.gaps += skipped
            # A shift past the window clears it: shifting by the jump itself could take gigabytes.
            record.seen = ((record.seen << (skipped + 1)) | 1) & self._window_mask if skipped < self._window_bits else 1
            if ts_ms > record.high_ts_ms:
                record.high_ts_ms, record.high_ts_seq = ts_ms, seq
            record.high_seq, record.latest = seq, reading
            return SeqVerdict.NEW
        bit = 1 << (record.high_seq - seq) if record.high_seq - seq <= self._window_bits else self._window_mask + 1
        if bit > self._window_mask or record.seen & bit:
            if bit <= self._window_mask:
                self.counts.duplicates += 1
                return SeqVerdict.DUPLICATE
            self.counts.out_of_order += 1  # older than the window: cannot tell, store it (idempotent)
            return SeqVerdict.NEW
        record.seen |= bit
        self.counts.gaps -= 1
        self.counts.out_of_order += 1
        return SeqVerdict.NEW  # late arrival: stored, but not the latest state

    @staticmethod
    def _start_window(record: _Record, seq: int, ts_ms: int, reading: Reading | tuple[int, int, bytes]) -> None:
        record.high_seq, record.high_ts_ms, record.high_ts_seq, record.seen, record.latest = seq, ts_ms, seq, 1, reading

    def set_status(self, device: DeviceKey, online: bool, at: float) -> None:
        record = self._record(device)
        if record.online != online:
            record.online = online
            record.status_changed_at = at

    def snapshot(self) -> list[DeviceSnapshot]:
        return [DeviceSnapshot(key, _as_reading(key, r.latest), r.last_seen, r.online, r.status_changed_at)
                for key, r in list(self._records.items())]

    def __len__(self) -> int:
        return len(self._records)


def _as_reading(device: DeviceKey, latest: Reading | tuple[int, int, bytes] | None) -> Reading | None:
    if latest is None or type(latest) is Reading:
        return latest
    ts_ms, seq, payload = latest
    metrics = orjson.loads(payload)
    del metrics["ts"], metrics["seq"]
    return Reading(device, ts_ms, seq, metrics)
