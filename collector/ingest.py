"""One MQTT message in, what to spool out: decode, duplicate check, device state, dead-letter point.

Pure apart from the `DeviceTable` it updates: no I/O, no clock (the caller passes the receive time).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from collector.dead_letters import payload_excerpt
from collector.state import DeviceTable, SeqVerdict
from core.decode import DecodeLimits, Reading, Reject, StatusChange, decode_message
from core.line_protocol import reading_to_line, reject_to_line
from core.reading_plans import fast_reading_line, kernel_reading_line


@dataclass
class IngestCounts:
    received: int = 0
    readings: int = 0
    statuses: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


class IngestResult(NamedTuple):  # one per message: a NamedTuple is built several times faster
    lines: list[str]
    """Line protocol to spool: the reading's point, or the reject's `facmon_rejects` point, or none."""
    reject: Reject | None = None


_NOTHING = IngestResult([])


class Ingest:
    def __init__(self, limits: DecodeLimits, table: DeviceTable, excerpt_bytes: int) -> None:
        self._limits = limits
        self._table = table
        self._excerpt_bytes = excerpt_bytes
        self.counts = IngestCounts()
        self._reject_serial = 0

    def handle(self, topic: str, payload: bytes, received_at: float) -> IngestResult:
        self.counts.received += 1
        return self._handle_general(topic, payload, received_at)

    def handle_batch(self, topics: list[str], payloads: list[bytes],
                     received_at: float) -> tuple[list[str], list[Reject]]:
        """`handle` for many messages received together: their lines in order, and their rejects.
        Readings of a shape seen before take the C kernel or the fused path (core.reading_plans),
        the rest `handle`'s."""
        self.counts.received += len(topics)
        lines: list[str] = []
        rejects: list[Reject] = []
        observe, limits, duplicate = self._table.observe, self._limits, SeqVerdict.DUPLICATE
        observe_payload = self._table.observe_payload
        readings = 0
        for topic, payload in zip(topics, payloads, strict=True):
            kernel = kernel_reading_line(topic, payload, received_at, limits)
            if kernel is not None:
                device, seq, ts_ms, line = kernel
                if observe_payload(device, seq, ts_ms, payload, received_at) is not duplicate:
                    lines.append(line)
                    readings += 1
                continue
            fast = fast_reading_line(topic, payload, received_at, limits)
            if fast is not None:
                if observe(fast[0], received_at) is not duplicate:
                    lines.append(fast[1])
                    readings += 1
                continue
            result = self._handle_general(topic, payload, received_at)
            lines.extend(result.lines)
            if result.reject is not None:
                rejects.append(result.reject)
        self.counts.readings += readings
        return lines, rejects

    def _handle_general(self, topic: str, payload: bytes, received_at: float) -> IngestResult:
        decoded = decode_message(topic, payload, received_at, self._limits)
        if type(decoded) is Reading:
            if self._table.observe(decoded, received_at) is SeqVerdict.DUPLICATE:
                return _NOTHING
            self.counts.readings += 1
            return IngestResult([reading_to_line(decoded)])
        if type(decoded) is StatusChange:
            self.counts.statuses += 1
            self._table.set_status(decoded.device, decoded.online, received_at)
            return _NOTHING
        assert isinstance(decoded, Reject)
        return IngestResult([self.reject_line(decoded, received_at)], decoded)

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
