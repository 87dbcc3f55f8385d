"""Gathering sources: values gathered per device into one reading per interval. One-value-per-topic
sources (SolarAssistant publishes `…/inverter_1/pv_power/state` = "1234") always gather; JSON sources
with `gather: true` too, so that several sources can make one device (a genset's output meter and its
fuel sensor). Pure; the caller gives the times.

A device's window opens with the first value after its last reading and closes `interval_s` later;
its reading holds the latest value of each field seen in the window and is stamped with the
receive time of the latest one. Values do not carry over into the next window, so a metric the
source stopped sending is missing (and a required one refuses the reading) rather than repeated stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from core.contract import DeviceKey, FieldValue


@dataclass
class _Window:
    closes_at: float
    source: str
    """The first source that contributed, named in drops."""
    interval_s: float
    values: dict[str, FieldValue] = field(default_factory=dict)
    last_at: float = 0.0
    topics: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Gathered:
    """The values of one device's closed window."""

    device: DeviceKey
    source: str
    interval_s: float
    metrics: Mapping[str, FieldValue]
    """Labels and fields, by contract name."""
    received_at: float
    """When the latest of them arrived (epoch seconds)."""
    topic: str
    """One topic the values came from, for reject listings."""


class Gatherer:
    def __init__(self) -> None:
        self._open: dict[DeviceKey, _Window] = {}

    def add(self, source: str, device: DeviceKey, values: Mapping[str, FieldValue], topic: str, received_at: float,
            interval_s: float) -> None:
        """`values`: labels and fields by contract name; a later value of a metric replaces an earlier one."""
        window = self._open.get(device)
        if window is None:
            window = self._open[device] = _Window(received_at + interval_s, source, interval_s)
        window.values.update(values)
        window.last_at = max(window.last_at, received_at)
        if len(window.topics) < 1:
            window.topics.append(topic)

    def due(self, now: float) -> list[Gathered]:
        """The windows closed by `now`, removed, oldest first."""
        closed = sorted(((w.closes_at, str(device)), device) for device, w in self._open.items() if w.closes_at <= now)
        out = []
        for _, device in closed:
            window = self._open.pop(device)
            out.append(Gathered(device, window.source, window.interval_s, dict(window.values), window.last_at,
                                window.topics[0]))
        return out

    @property
    def open_windows(self) -> int:
        return len(self._open)
