"""The readings from before a restart, for the windows that need them: aggregate windows and run-out
fits start where the last process left them, not empty (`Evaluator.refill`).

    spans = history_needed(pack, max_lookback_s)                 # pure: kind → how far back
    readings = InfluxHistory(client).readings(spans, until_s)    # InfluxDB's copy, oldest first
    engine.refill(readings)

InfluxDB holds what the collector stored: the readings the engine heard over MQTT. Refilling is best
effort: when InfluxDB cannot be reached the engine starts with empty windows and says so (the caller
logs it); it never refuses to start for it.

Exceptions: `core.influxql.InfluxError` (InfluxUnavailable, InfluxQueryError) from `readings()`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from core.contract import METRICS_BY_NAME, DeviceKey, Kind, Reading
from core.influxql import InfluxQLClient, quote_ident, time_literal
from rules.model import RulePack

MAX_READINGS_PER_DEVICE = 10_000
"""Per device and kind, at most this many readings are refilled (memory stays bounded whatever the
windows say; a window of more readings than this refills its newest part)."""


@dataclass(frozen=True, slots=True)
class Span:
    """How much of one kind's history the rules need: `seconds` back, at most `readings` per device."""

    seconds: float
    readings: int


def history_needed(pack: RulePack, max_lookback_s: float) -> dict[Kind, Span]:
    """For each kind with an aggregate or run-out rule, the history its windows hold: the longest
    `window_s` (a count window, `window_readings`, looks back `max_lookback_s`), never more than
    `max_lookback_s`. Empty when `max_lookback_s` is 0 (refill off)."""
    spans: dict[Kind, Span] = {}
    if max_lookback_s <= 0:
        return spans
    for rule in pack.rules:
        cond = rule.condition
        if rule.kind is None:
            continue
        if cond.aggregate is not None:
            aggregate = cond.aggregate
            seconds = aggregate.window_s if aggregate.window_s is not None else max_lookback_s
            count = aggregate.window_readings or MAX_READINGS_PER_DEVICE
        elif cond.runout is not None:
            seconds, count = cond.runout.window_s, MAX_READINGS_PER_DEVICE
        else:
            continue
        previous = spans.get(rule.kind, Span(0.0, 0))
        spans[rule.kind] = Span(max(min(seconds, max_lookback_s), previous.seconds),
                                min(max(count, previous.readings), MAX_READINGS_PER_DEVICE))
    return spans


class InfluxHistory:
    """Readings back from InfluxDB, as the collector wrote them (`core.line_protocol`): measurement =
    kind, tags `site`, `device` and the kind's label metrics, one field per metric plus `seq`."""

    def __init__(self, client: InfluxQLClient) -> None:
        self._client = client

    def close(self) -> None:
        self._client.close()

    def readings(self, spans: Mapping[Kind, Span], until_s: float) -> list[Reading]:
        """Every kind's readings in (`until_s` - span, `until_s`], at most `span.readings` newest per
        device, oldest first. Raises `InfluxError` when InfluxDB is unreachable or refuses."""
        out: list[Reading] = []
        until_ms = math.floor(until_s * 1000)
        for kind, span in spans.items():
            since_ms = max(until_ms - int(span.seconds * 1000), 0)
            q = (f"SELECT * FROM {quote_ident(kind.value)} WHERE time > {time_literal(since_ms)} "
                 f"AND time <= {time_literal(until_ms)} GROUP BY \"site\", \"device\" ORDER BY time DESC "
                 f"LIMIT {span.readings}")
            for series in self._client.query(q, epoch="ms"):
                device = DeviceKey(series.tags["site"], kind, series.tags["device"])
                out.extend(reading_of(device, row) for row in reversed(series.rows()))
        out.sort(key=lambda r: r.ts_ms)
        return out


def reading_of(device: DeviceKey, row: Mapping[str, object]) -> Reading:
    """One InfluxDB row (time in ms, tags and fields as columns) as the reading it was stored from:
    columns that are not the kind's metrics, and metrics the reading did not carry (null), left out."""
    metrics = METRICS_BY_NAME[device.kind]
    values = {name: value for name, value in row.items() if name in metrics and value is not None}
    time_ms, seq = row["time"], row.get("seq")
    return Reading(device, int(time_ms) if isinstance(time_ms, int | float) else 0,
                   int(seq) if isinstance(seq, int | float) else 0, values)  # type: ignore[arg-type]
