"""Translation plans: the fast path for the readings of JSON sources, the bulk of what a bridge forwards.

The general path (`Translator.handle`) finds a message's source by matching every source's topic
pattern, converts its fields, encodes the reading, and then judges the encoded bytes again with
`core.decode.decode_message`, the collector's front door: ~17 µs a message, most of the bridge's CPU.
But a device publishes to the same topic over and over. So once a topic was routed to a reading
source, the translator keeps a *plan* for it: the device and its topic, its labels (judged by the
contract once), and per field where it is, how it converts, and the contract's own check of the
converted value (`core.decode.value_check`). A message is then parsed once, converted and checked field
by field, and encoded once: no pattern matching, no second parse.

Valid by construction: every metric of the reading has passed the check the collector applies to it,
every required metric of the kind is among the labels or the fields the plan requires, and the time
and the payload's size are judged with the collector's limits.

`ReadingPlan.encoded` answers either exactly the bytes the general path would forward (before its seq
is spliced in), or None, meaning "take the general path": anything unusual (a missing field, a value
the conversion or the contract refuses, a clock off, a payload too large) goes the long way, which
says why. tests/unit/bridge/test_plans.py holds the two paths to the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

from bridge.convert import FieldProblem, TsRule, find, is_missing
from bridge.mapping import SourceRule
from core.contract import METRICS, METRICS_BY_NAME, DeviceKey, FieldValue, encode_payload, format_ts
from core.decode import DecodeLimits, checked_ts_ms, value_check
from core.reading_plans import json_object


class _PlannedField(NamedTuple):
    name: str
    path: tuple[str, ...]
    convert: Callable[[object, object], FieldValue]
    """`FieldRule.convert`: raises FieldProblem."""
    required: bool
    accepts: Callable[[object], bool]
    """The contract's check of the converted value (`core.decode.value_check`)."""


class ReadingPlan:
    """How the readings of one topic translate: one device of one JSON source that does not gather."""

    __slots__ = ("_fields", "_kind", "_labels", "_limits", "_max_foreign_bytes", "_ts", "device", "reading_topic",
                 "source")

    def __init__(self, source: SourceRule, device: DeviceKey, labels: Mapping[str, str],
                 fields: tuple[_PlannedField, ...], limits: DecodeLimits, max_foreign_bytes: int) -> None:
        self.source = source.name
        self.device = device
        self.reading_topic = device.reading_topic()
        self._kind = device.kind
        self._labels = dict(labels)
        self._fields = fields
        self._ts: TsRule | None = source.ts
        self._limits = limits
        self._max_foreign_bytes = max_foreign_bytes

    def encoded(self, payload: bytes, received_at: float) -> bytes | None:
        """The reading in `payload` encoded with seq 0, exactly as the general path encodes it, or None
        when the message needs the general path (including every message that path refuses). Never
        raises on input."""
        if len(payload) > self._max_foreign_bytes:
            return None
        body = json_object(payload)
        if body is None:
            return None
        metrics: dict[str, FieldValue] = self._labels.copy()
        try:
            for name, path, convert, required, accepts in self._fields:
                raw = find(body, path)
                if is_missing(raw):
                    if required:
                        return None
                    continue
                value = convert(raw, body)
                if not accepts(value):
                    return None
                metrics[name] = value
            ts_ms = round(received_at * 1000) if self._ts is None else self._ts.ms(body, received_at)
        except FieldProblem:
            return None
        if checked_ts_ms(ts_ms, received_at, self._limits) is None:
            return None
        encoded = encode_payload(self._kind, format_ts(ts_ms), 0, metrics)  # what encode_reading gives
        if len(encoded) > self._limits.max_payload_bytes:
            return None
        return encoded


def plan_for(source: SourceRule, device: DeviceKey, labels: Mapping[str, str], limits: DecodeLimits,
             max_foreign_bytes: int) -> ReadingPlan | None:
    """The plan for `device`'s readings from `source`, or None where its readings always take the general
    path: a source that gathers or sends one value per topic, a label the contract refuses, a required
    metric the source does not map."""
    if source.gathers or source.one_value_per_topic or device.kind is not source.kind:
        return None
    metrics = METRICS_BY_NAME[source.kind]
    for name, value in labels.items():
        if name not in metrics or not value_check(metrics[name])(value):
            return None
    fields = tuple(_PlannedField(rule.metric.name, rule.path, rule.convert, rule.metric.required,
                                 value_check(rule.metric)) for rule in source.fields)
    mapped = set(labels) | {field.name for field in fields}
    if not mapped <= set(metrics) or any(m.required and m.name not in mapped for m in METRICS[source.kind]):
        return None
    return ReadingPlan(source, device, labels, fields, limits, max_foreign_bytes)
