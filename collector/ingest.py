"""One MQTT message in, what to spool out: decode, duplicate check, device state, dead-letter point.

Pure apart from the `DeviceTable` it updates: no I/O, no clock (the caller passes the receive time).
"""

from __future__ import annotations

import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from collector.dead_letters import payload_excerpt
from collector.device_table import DeviceTable, SeqVerdict
from core.contract import DeviceKey
from core.decode import DecodeLimits, Reading, Reject, RejectReason, StatusChange, StatusCleared, decode_message
from core.known_devices import KnownDevices
from core.line_protocol import reading_to_line, reject_to_line
from core.reading_plans import fast_reading_line, kernel_reading_line


@dataclass
class IngestCounts:
    received: int = 0
    readings: int = 0
    statuses: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    handler_failures: int = 0
    """Messages facmon itself failed on (a bug): each is also a `handler_failed` reject."""


class IngestResult(NamedTuple):  # one per message: a NamedTuple is built several times faster
    lines: list[str]
    """Line protocol to spool: the reading's point, or the reject's `facmon_rejects` point, or none."""
    reject: Reject | None = None


_NOTHING = IngestResult([])


def _ts_conflict(topic: str, payload: bytes, device: DeviceKey, seq: int, ts_ms: int) -> Reject:
    return Reject(RejectReason.TS_CONFLICT,
                  f"seq {seq} has the same ts ({ts_ms} ms) as a recent reading of this device with another "
                  "seq; InfluxDB keeps one point per device and time, so this one would overwrite it. Give each "
                  "reading its own ts, to the millisecond", topic, payload, device)


class Ingest:
    def __init__(self, limits: DecodeLimits, table: DeviceTable, excerpt_bytes: int,
                 known: KnownDevices | None = None) -> None:
        """`known`: the devices that may publish (`sites.known_devices_only`); None: any device."""
        self._limits = limits
        self._known = known
        self._fast_series = None if known is None else known.fast_reading_series
        self._table = table
        self._excerpt_bytes = excerpt_bytes
        self.counts = IngestCounts()
        self._reject_serial = 0

    def handle(self, topic: str, payload: bytes, received_at: float) -> IngestResult:
        """One message, the general way (the oracle of `handle_batch`'s fast paths)."""
        self.counts.received += 1
        try:
            return self._handle_general(topic, payload, received_at)
        except Exception as err:  # a bug must cost one message, not the collector
            return self._handler_failed(topic, payload, received_at, err)

    def handle_batch(self, topics: list[str], payloads: list[bytes],
                     received_at: float) -> tuple[list[str], list[Reject]]:
        """`handle` for many messages received together: their lines in order, and their rejects.
        Readings of a shape seen before take the C kernel or the fused path (core.reading_plans),
        the rest `handle`'s. A message that makes facmon itself fail is a `handler_failed` reject:
        no message can stop the collector (poison-message isolation)."""
        self.counts.received += len(topics)
        lines: list[str] = []
        rejects: list[Reject] = []
        observe, limits, new = self._table.observe, self._limits, SeqVerdict.NEW
        observe_payload = self._table.observe_payload
        readings = 0
        fast_series = self._fast_series
        for topic, payload in zip(topics, payloads, strict=True):
            try:
                # With known devices, the fast paths take a known device's topic, and its line only when
                # it carries the described labels; everything else is judged on the general path.
                series = "" if fast_series is None else fast_series.get(topic)
                if series is not None:
                    kernel = kernel_reading_line(topic, payload, received_at, limits)
                    if kernel is not None and kernel[3].startswith(series):
                        device, seq, ts_ms, line = kernel
                        verdict = observe_payload(device, seq, ts_ms, payload, received_at)
                        if verdict is new:
                            lines.append(line)
                            readings += 1
                        elif verdict is SeqVerdict.TS_CONFLICT:
                            self._refuse_conflict(topic, payload, device, seq, ts_ms, received_at, lines, rejects)
                        continue
                    fast = None if kernel is not None else fast_reading_line(topic, payload, received_at, limits)
                    if fast is not None and fast[1].startswith(series):
                        reading = fast[0]
                        verdict = observe(reading, received_at)
                        if verdict is new:
                            lines.append(fast[1])
                            readings += 1
                        elif verdict is SeqVerdict.TS_CONFLICT:
                            self._refuse_conflict(topic, payload, reading.device, reading.seq, reading.ts_ms,
                                                  received_at, lines, rejects)
                        continue
                result = self._handle_general(topic, payload, received_at)
            except Exception as err:  # a bug must cost one message, not the collector
                result = self._handler_failed(topic, payload, received_at, err)
            lines.extend(result.lines)
            if result.reject is not None:
                rejects.append(result.reject)
        self.counts.readings += readings
        return lines, rejects

    def _handle_general(self, topic: str, payload: bytes, received_at: float) -> IngestResult:
        decoded = decode_message(topic, payload, received_at, self._limits, self._known)
        if type(decoded) is Reading:
            verdict = self._table.observe(decoded, received_at)
            if verdict is SeqVerdict.NEW:
                self.counts.readings += 1
                return IngestResult([reading_to_line(decoded)])
            if verdict is SeqVerdict.DUPLICATE:
                return _NOTHING
            decoded = _ts_conflict(topic, payload, decoded.device, decoded.seq, decoded.ts_ms)
        elif type(decoded) is StatusChange:
            self.counts.statuses += 1
            self._table.set_status(decoded.device, decoded.online, received_at)
            return _NOTHING
        elif type(decoded) is StatusCleared:
            self.counts.statuses += 1
            self._table.forget(decoded.device)
            return _NOTHING
        assert isinstance(decoded, Reject)
        return IngestResult([self.reject_line(decoded, received_at)], decoded)

    def _refuse_conflict(self, topic: str, payload: bytes, device: DeviceKey, seq: int, ts_ms: int,
                         received_at: float, lines: list[str], rejects: list[Reject]) -> None:
        reject = _ts_conflict(topic, payload, device, seq, ts_ms)
        lines.append(self.reject_line(reject, received_at))
        rejects.append(reject)

    def _handler_failed(self, topic: str, payload: bytes, received_at: float, err: Exception) -> IngestResult:
        self.counts.handler_failures += 1
        where = traceback.extract_tb(err.__traceback__)[-1]  # logged with the reject, rate-limited
        reject = Reject(RejectReason.HANDLER_FAILED,
                        f"facmon failed on this message ({type(err).__name__} at {Path(where.filename).name}:"
                        f"{where.lineno}); it was not stored. This is facmon's bug: please report it with this "
                        "payload", topic, payload)
        try:
            return IngestResult([self.reject_line(reject, received_at)], reject)
        except Exception:  # not even its dead-letter point: counted above, go on
            return IngestResult([], None)

    def reject_line(self, reject: Reject, received_at: float) -> str:
        """Count `reject` and give its dead-letter point."""
        self.counts.rejected[reject.reason.value] += 1
        self._reject_serial = (self._reject_serial + 1) % 1000
        return reject_point(reject, received_at, self._excerpt_bytes, self._reject_serial)


def reject_point(reject: Reject, received_at: float, excerpt_bytes: int, serial: int) -> str:
    """The `facmon_rejects` point of `reject`. `serial` (0..999) is added to the nanoseconds so that
    rejects received in the same microsecond do not overwrite each other in InfluxDB."""
    device = reject.device
    return reject_to_line(
        reject.reason.value, reject.detail, reject.topic, payload_excerpt(reject.payload, excerpt_bytes),
        device.site if device else None, device.kind.value if device else None,
        device.device if device else None, int(received_at * 1e6) * 1000 + serial,
    )
