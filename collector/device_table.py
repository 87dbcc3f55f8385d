"""What the collector knows about each device: its latest reading, when it was last heard from,
whether it says it is online, and where its sequence counter stands (duplicates, gaps, restarts)."""

from __future__ import annotations

import enum
from array import array
from dataclasses import dataclass

import orjson

from core.contract import DeviceKey, Reading


class SeqVerdict(enum.Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    """Same device, `seq` and `ts` as a reading seen recently: a redelivery or a repeated publish."""
    TS_CONFLICT = "ts_conflict"
    """Same device and `ts` as a recent reading, another `seq`: storing it would overwrite that one."""


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    device: DeviceKey
    latest: Reading | None
    last_seen: float | None
    online: bool | None
    status_changed_at: float | None
    clock_steps_back: int = 0
    """Times the device restarted its counter with its clock behind what it had sent before."""


_LOW_32 = 0xFFFF_FFFF
"""The ring keeps the low 32 bits of ts and seq: two accepted timestamps 49.7 days apart to the
millisecond could pass for one, and the default age limit (30 days) refuses such a pair first."""


class _Record:
    __slots__ = ("clock_steps_back", "high_seq", "high_ts_ms", "last_seen", "latest", "online", "recent_at",
                 "recent_filled", "recent_seq", "recent_ts", "seen", "status_changed_at", "ts_high_water")

    def __init__(self, window: int) -> None:
        self.latest: Reading | tuple[int, int, bytes] | None = None
        """The latest reading, or (ts_ms, seq, payload) of one taken by the C kernel, decoded on demand."""
        self.last_seen: float | None = None
        self.online: bool | None = None
        self.status_changed_at: float | None = None
        self.high_seq = -1
        self.high_ts_ms = -1
        self.seen = 0
        """Bit i set: seq `high_seq - i` has been received (a sliding window of `duplicate_window` bits)."""
        self.clock_steps_back = 0
        self.recent_ts = array("I", bytes(4 * window))
        self.recent_seq = array("I", bytes(4 * window))
        """The low 32 bits of the ts and seq of the device's last `duplicate_window` stored readings: a ring,
        next written at `recent_at`, its first `recent_filled` slots in use."""
        self.recent_at = 0
        self.recent_filled = 0
        self.ts_high_water = -(2**63)
        """The newest ts the device ever sent, across restarts: a reading at or behind it may land on the
        millisecond of a stored one."""


@dataclass
class SequenceCounts:
    duplicates: int = 0
    gaps: int = 0
    """Readings a device numbered but we have not received (holes in `seq`, less those filled late)."""
    restarts: int = 0
    """Times a device started its `seq` over (it rebooted): a seq at or below the highest with a newer
    `ts` than any seen, or a seq it sent before with another `ts`."""
    clock_steps_back: int = 0
    """Restarts whose new `ts` is behind what the device had sent (a device without a real-time clock)."""
    out_of_order: int = 0
    """Readings that arrived after a higher `seq` of the same device (stored, not the latest state)."""
    jumps: int = 0
    """Times a device's `seq` leapt further ahead than it could have counted readings since its last
    (more than one per millisecond of `ts`): a broken or hostile counter, not lost readings."""
    ts_conflicts: int = 0
    """Readings refused because a recent reading of the device (its newest, or one of the last
    `duplicate_window`) has the same `ts` and another `seq`."""


class DeviceTable:
    """Per-device state. Not thread-safe: one consumer thread updates it; readers take snapshots.

    A duplicate is what the contract says: the same device, `seq` and `ts` as a recent reading. Per
    device, a bitmap of the last `duplicate_window` sequence numbers below the highest seen (gaps and
    late arrivals), and a ring of the seq and ts of its last `duplicate_window` stored readings: about
    2.5 KB a device at the default window of 256, so 10,000 devices cost about 25 MB. The same `seq`
    with another `ts`, older or newer, is a device that started its counter over (a reboot), never a
    duplicate: stored, counted as a restart, and as a clock step back when its `ts` is behind. The
    same `ts` with another `seq` would overwrite a stored point in InfluxDB: a conflict, refused."""

    def __init__(self, duplicate_window: int) -> None:
        self._window_bits = duplicate_window
        self._window_mask = (1 << duplicate_window) - 1
        self._records: dict[DeviceKey, _Record] = {}
        self.counts = SequenceCounts()

    def _record(self, device: DeviceKey) -> _Record:
        record = self._records.get(device)
        if record is None:
            record = self._records[device] = _Record(self._window_bits)
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
        if seq == record.high_seq + 1 and ts_ms > record.ts_high_water and record.high_seq >= 0:
            # The usual reading: the next seq, a newer ts. Inline, it is most of what the collector sees.
            record.seen = ((record.seen << 1) | 1) & self._window_mask
            record.high_seq, record.high_ts_ms, record.ts_high_water, record.latest = seq, ts_ms, ts_ms, reading
        elif record.high_seq < 0:
            self._start_window(record, seq, ts_ms, reading)
        elif ts_ms <= record.ts_high_water:  # rare: a repeat, a late reading, a device that started over
            verdict = self._behind(record, seq, ts_ms, reading)
            if verdict is not SeqVerdict.NEW:
                return verdict
        elif seq > record.high_seq:
            self._ahead(record, seq, ts_ms, reading)
        else:  # a seq it sent before, with a newer ts than any: it started counting over (a reboot)
            self.counts.restarts += 1
            self._start_window(record, seq, ts_ms, reading)
        at = record.recent_at
        record.recent_ts[at] = ts_ms & _LOW_32
        record.recent_seq[at] = seq & _LOW_32
        record.recent_at = at + 1 if at + 1 < self._window_bits else 0
        if record.recent_filled <= at:
            record.recent_filled = at + 1
        return SeqVerdict.NEW

    def _ahead(self, record: _Record, seq: int, ts_ms: int, reading: Reading | tuple[int, int, bytes]) -> None:
        """A seq above the highest: the next reading, after a gap, or a leap no device counts."""
        window = self._window_bits
        skipped = seq - record.high_seq - 1
        if skipped > max(ts_ms - record.high_ts_ms, window):
            self.counts.jumps += 1
            record.seen = 1
        else:
            self.counts.gaps += skipped
            # A shift past the window clears it: shifting by the jump itself could take gigabytes.
            record.seen = ((record.seen << (skipped + 1)) | 1) & self._window_mask if skipped < window else 1
        if ts_ms > record.high_ts_ms:
            record.high_ts_ms = ts_ms
            record.ts_high_water = max(record.ts_high_water, ts_ms)
        record.high_seq, record.latest = seq, reading

    def _behind(self, record: _Record, seq: int, ts_ms: int, reading: Reading | tuple[int, int, bytes]) -> SeqVerdict:
        """A ts at or behind the newest the device ever sent: the same reading again (duplicate), one on the
        millisecond of a stored one (conflict), a late one, or the first of a device that started over with
        its clock behind."""
        seen_with = self._recent_seq_of(record, ts_ms)
        if seen_with is not None:
            if seen_with == seq & _LOW_32:
                self.counts.duplicates += 1
                return SeqVerdict.DUPLICATE
            self.counts.ts_conflicts += 1
            return SeqVerdict.TS_CONFLICT
        if seq > record.high_seq:
            self._ahead(record, seq, ts_ms, reading)
            return SeqVerdict.NEW
        distance = record.high_seq - seq
        if distance >= self._window_bits:
            self.counts.out_of_order += 1  # older than the window: cannot tell, store it
            return SeqVerdict.NEW
        bit = 1 << distance
        if record.seen & bit:  # this seq came before with another ts: the device started over, clock behind
            self.counts.restarts += 1
            self.counts.clock_steps_back += 1
            record.clock_steps_back += 1
            self._start_window(record, seq, ts_ms, reading)
            return SeqVerdict.NEW
        record.seen |= bit
        self.counts.gaps -= 1
        self.counts.out_of_order += 1
        return SeqVerdict.NEW  # late arrival: stored, but not the latest state

    @staticmethod
    def _recent_seq_of(record: _Record, ts_ms: int) -> int | None:
        """The (low 32 bits of the) seq of the device's recent stored reading with this ts, if any."""
        try:
            return record.recent_seq[record.recent_ts.index(ts_ms & _LOW_32, 0, record.recent_filled)]
        except ValueError:
            return None

    @staticmethod
    def _start_window(record: _Record, seq: int, ts_ms: int, reading: Reading | tuple[int, int, bytes]) -> None:
        record.high_seq, record.high_ts_ms, record.seen, record.latest = seq, ts_ms, 1, reading
        record.ts_high_water = max(record.ts_high_water, ts_ms)

    def set_status(self, device: DeviceKey, online: bool, at: float) -> None:
        record = self._record(device)
        if record.online != online:
            record.online = online
            record.status_changed_at = at

    def forget(self, device: DeviceKey) -> None:
        """Drop what is known of `device` (its retained status was cleared: it is gone)."""
        self._records.pop(device, None)

    def snapshot(self) -> list[DeviceSnapshot]:
        return [DeviceSnapshot(key, _as_reading(key, r.latest), r.last_seen, r.online, r.status_changed_at,
                               r.clock_steps_back)
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
