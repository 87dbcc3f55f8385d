"""bytes → `Reading`, `StatusChange`, `StatusCleared` or `Reject`: the pure front door of every MQTT consumer.

The collector, the rules engine and the API all validate messages here, so they agree on what a
valid reading is.

Nothing here does I/O or reads a clock: the caller passes the receive time. Every way a message can
be unusable has its own `RejectReason`, so integrators see *why* in the counters and dead letters.
"""

from __future__ import annotations

import enum
import functools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import orjson

from core.contract import (
    MAX_LABEL_CHARS,
    METRICS,
    RESERVED_KEYS,
    SEQ_MAX,
    STATUS_OFFLINE,
    STATUS_ONLINE,
    Channel,
    DeviceKey,
    FieldValue,
    Metric,
    MetricType,
    Reading,
    TopicError,
    parse_topic,
)

if TYPE_CHECKING:
    from core.known_devices import KnownDevices


class RejectReason(enum.StrEnum):
    PAYLOAD_TOO_LARGE = "payload_too_large"
    BAD_TOPIC = "bad_topic"
    UNKNOWN_KIND = "unknown_kind"
    BAD_ID = "bad_id"
    BAD_ENCODING = "bad_encoding"
    BAD_JSON = "bad_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    WRONG_TYPE = "wrong_type"
    NON_FINITE = "non_finite"
    OUT_OF_RANGE = "out_of_range"
    BAD_CHOICE = "bad_choice"
    BAD_LABEL = "bad_label"
    BAD_SEQ = "bad_seq"
    BAD_TS = "bad_ts"
    TS_WITHOUT_OFFSET = "ts_without_offset"
    TS_IN_FUTURE = "ts_in_future"
    TS_TOO_OLD = "ts_too_old"
    BAD_STATUS = "bad_status"
    INFLUX_REFUSED = "influx_refused"
    """Valid by the contract but refused by InfluxDB (e.g. a field type conflict with old data)."""
    TS_CONFLICT = "ts_conflict"
    """Valid, but the device already sent a reading with the same `ts` and another `seq`: InfluxDB keeps
    one point per device and time, so storing it would silently overwrite the first (the collector's)."""
    UNKNOWN_DEVICE = "unknown_device"
    """No site file describes the device (with `sites.known_devices_only` on)."""
    UNKNOWN_LABEL = "unknown_label"
    """A label (`isp`, `room`) other than the site file gives the device (with `sites.known_devices_only` on)."""
    HANDLER_FAILED = "handler_failed"
    """facmon itself failed on this message (a bug): isolated, counted and dead-lettered so that the
    consumer lives on (the collector's)."""


@dataclass(frozen=True, slots=True)
class Reject:
    """A message the collector cannot use: why, in words an integrator can act on, and where from."""

    reason: RejectReason
    detail: str
    topic: str
    payload: bytes
    device: DeviceKey | None = None


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A device's own `online`/`offline` announcement (retained message or last will)."""

    device: DeviceKey
    online: bool


@dataclass(frozen=True, slots=True)
class StatusCleared:
    """An empty payload on a device's status topic: its retained status was deleted (MQTT clears a
    retained message with an empty one), because the device or its site is gone (`facmon devices
    forget`, `facmon sites retire`). Not a malformed status: consumers forget the device's state."""

    device: DeviceKey


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    max_payload_bytes: int = 16_384
    max_future_s: float = 300.0
    max_age_s: float = 30 * 86_400.0


class _Invalid(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail


def _reject_constant(name: str) -> float:
    raise _Invalid(RejectReason.NON_FINITE, f"{name} is not a number JSON allows; send null or omit the metric")


_json_decoder = json.JSONDecoder(parse_constant=_reject_constant)


# Devices publish to the same few topics over and over; errors are not cached (lru_cache re-raises).
# Shared with core.reading_plans, the collector's fused fast path.
parse_topic_cached = functools.lru_cache(maxsize=65_536)(parse_topic)


def decode_message(topic: str, payload: bytes, received_at: float, limits: DecodeLimits,
                   known: KnownDevices | None = None) -> Reading | StatusChange | StatusCleared | Reject:
    """Decode one MQTT message. `received_at` is the collector's clock (epoch seconds), used to
    judge timestamps from the future or too far in the past; `known`, if given, the devices that may
    publish and their labels. Never raises on input."""
    try:
        parsed = parse_topic_cached(topic)
    except TopicError as err:
        return Reject(RejectReason(err.reason), str(err), topic, payload)
    if not payload and parsed.channel is Channel.STATUS:
        # Before the known-device check: what is cleared is typically a device no site file describes any more.
        return StatusCleared(parsed.device)
    if known is not None and (why := known.device_refusal(parsed.device)) is not None:
        return Reject(RejectReason.UNKNOWN_DEVICE, why, topic, payload, parsed.device)
    if len(payload) > limits.max_payload_bytes:
        return Reject(RejectReason.PAYLOAD_TOO_LARGE,
                      f"payload is {len(payload)} bytes, over the limit of {limits.max_payload_bytes}",
                      topic, payload, parsed.device)
    try:
        if parsed.channel is Channel.STATUS:
            return _decode_status(parsed.device, payload)
        reading = _decode_reading(parsed.device, payload, received_at, limits)
    except _Invalid as bad:
        return Reject(bad.reason, bad.detail, topic, payload, parsed.device)
    if known is not None and (why := known.label_refusal(reading)) is not None:
        return Reject(RejectReason.UNKNOWN_LABEL, why, topic, payload, parsed.device)
    return reading


def _decode_status(device: DeviceKey, payload: bytes) -> StatusChange:
    text = payload.strip().decode("utf-8", "replace").strip('"').lower()
    if text == STATUS_ONLINE:
        return StatusChange(device, True)
    if text == STATUS_OFFLINE:
        return StatusChange(device, False)
    raise _Invalid(RejectReason.BAD_STATUS, f"status payload {text[:40]!r} is not 'online' or 'offline'")


def _decode_reading(device: DeviceKey, payload: bytes, received_at: float, limits: DecodeLimits) -> Reading:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _Invalid(RejectReason.BAD_ENCODING, f"payload is not UTF-8: {err.reason} at byte {err.start}") from None
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        body = _parse_json_slowly(text)  # the standard parser says precisely what is wrong
    if not isinstance(body, dict):
        raise _Invalid(RejectReason.NOT_AN_OBJECT, f"payload is a JSON {type(body).__name__}, not an object")
    ts_ms = _check_ts(body.get("ts", _MISSING), received_at, limits)
    seq = _check_seq(body.get("seq", _MISSING))
    metrics: dict[str, FieldValue] = {}
    for name, required, check in _CHECKERS[device.kind]:
        value = body.get(name, _MISSING)
        if value is _MISSING:
            if required:
                raise _Invalid(RejectReason.MISSING_FIELD, f"{device.kind.value} reading has no {name!r}")
            continue
        metrics[name] = check(value)
    if len(body) != len(metrics) + 2:
        spec = _SPEC[device.kind]
        extra = sorted(k for k in body if k not in spec and k not in RESERVED_KEYS)
        raise _Invalid(RejectReason.UNKNOWN_FIELD,
                       f"{device.kind.value} readings have no field {', '.join(map(repr, extra[:5]))[:200]}; "
                       f"known: {', '.join(spec)}")
    return Reading(device, ts_ms, seq, metrics)


def _parse_json_slowly(text: str) -> object:
    """Diagnose what orjson refused: the standard parser names the position, and its constant hook
    tells NaN/Infinity (a non-finite number) from plain bad syntax. Rarely, it accepts what orjson
    does not (integers beyond 64 bits); the checks after it judge those values."""
    try:
        return _json_decoder.decode(text)
    except ValueError as err:
        raise _Invalid(RejectReason.BAD_JSON, f"payload is not JSON: {err}") from None
    except RecursionError:
        raise _Invalid(RejectReason.BAD_JSON, "payload is not JSON: nested too deeply") from None


_MISSING = object()
_SPEC: dict = {kind: {m.name: m for m in metrics} for kind, metrics in METRICS.items()}


def _check_value(metric: Metric, value: object) -> FieldValue:
    if value is None:
        if metric.nullable:
            return None
        raise _Invalid(RejectReason.WRONG_TYPE, f"{metric.name} is null; it must be a {metric.type.value}")
    kind = metric.type
    if kind is MetricType.FLOAT or kind is MetricType.INT:
        if type(value) is bool or not isinstance(value, int | float):
            raise _Invalid(RejectReason.WRONG_TYPE,
                           f"{metric.name} is {_json_type(value)}; it must be a number ({metric.unit or 'count'})")
        if kind is MetricType.INT and not (isinstance(value, int) or value.is_integer()):
            raise _Invalid(RejectReason.WRONG_TYPE, f"{metric.name} is {value!r}; it must be a whole number")
        if isinstance(value, float) and not math.isfinite(value):
            raise _Invalid(RejectReason.NON_FINITE, f"{metric.name} is {value!r}")
        if (metric.minimum is not None and value < metric.minimum) or (
                metric.maximum is not None and value > metric.maximum):
            raise _Invalid(RejectReason.OUT_OF_RANGE,
                           f"{metric.name}={value!r} is outside {metric.minimum:g}..{metric.maximum:g} "
                           f"{metric.unit}".rstrip())
        return int(value) if kind is MetricType.INT else float(value)
    if kind is MetricType.BOOL:
        if type(value) is not bool:
            raise _Invalid(RejectReason.WRONG_TYPE, f"{metric.name} is {_json_type(value)}; it must be true or false")
        return value
    if type(value) is not str:
        raise _Invalid(RejectReason.WRONG_TYPE, f"{metric.name} is {_json_type(value)}; it must be a string")
    if kind is MetricType.CHOICE:
        if value not in metric.choices:
            raise _Invalid(RejectReason.BAD_CHOICE,
                           f"{metric.name}={value[:40]!r} is not one of {', '.join(metric.choices)}")
        return value
    if kind is MetricType.LABEL:
        if not is_valid_label(value):
            raise _Invalid(RejectReason.BAD_LABEL,
                           f"{metric.name}={value[:80]!r} must be 1..{MAX_LABEL_CHARS} printable characters "
                           "without a backslash")
        return value
    if not is_valid_text(value):
        raise _Invalid(RejectReason.WRONG_TYPE, f"{metric.name} must be at most {MAX_TEXT_CHARS} printable characters")
    return value


MAX_TEXT_CHARS = 256


def is_valid_label(value: str) -> bool:
    """The contract's rule for a label (stored as a tag): 1..MAX_LABEL_CHARS printable characters, not
    blank, no backslash (InfluxDB 1.x cannot store every backslash sequence in a tag)."""
    visible = _without_joiners(value)
    return bool(visible.strip()) and len(value) <= MAX_LABEL_CHARS and visible.isprintable() and "\\" not in value


def is_valid_text(value: str) -> bool:
    """The contract's rule for a free-text metric: at most MAX_TEXT_CHARS printable characters."""
    return len(value) <= MAX_TEXT_CHARS and _without_joiners(value).isprintable()


_JOINERS = "\u200c\u200d"
_DROP_JOINERS = str.maketrans("", "", _JOINERS)


def _without_joiners(value: str) -> str:
    """`value` less the zero-width non-joiner and joiner (U+200C, U+200D). Unicode files them as
    format characters, so `str.isprintable` refuses them, but Urdu, Persian and the Indic scripts
    need them in ordinary words. Other format characters (bidi overrides, …) stay refused."""
    if "\u200c" in value or "\u200d" in value:
        return value.translate(_DROP_JOINERS)
    return value


def _number_checker(metric: Metric) -> Callable[[object], FieldValue]:
    """The common case (a finite float or int inside the range) in as few steps as possible; anything
    else goes the long way through `_check_value`, which explains what is wrong."""
    low = float("-inf") if metric.minimum is None else metric.minimum
    high = float("inf") if metric.maximum is None else metric.maximum
    to_float = metric.type is MetricType.FLOAT

    def check(value: object) -> FieldValue:
        kind = type(value)
        if to_float:
            if (kind is float or kind is int) and low <= value <= high:  # type: ignore[operator]
                return float(value)  # type: ignore[arg-type]
        elif kind is int and low <= value <= high:  # type: ignore[operator]
            return value  # type: ignore[return-value]
        return _check_value(metric, value)

    return check


def _bool_checker(metric: Metric) -> Callable[[object], FieldValue]:
    def check(value: object) -> FieldValue:
        if value is True or value is False:
            return value
        return _check_value(metric, value)

    return check


def _choice_checker(metric: Metric) -> Callable[[object], FieldValue]:
    choices = frozenset(metric.choices)

    def check(value: object) -> FieldValue:
        if type(value) is str and value in choices:
            return value
        return _check_value(metric, value)

    return check


def _checker(metric: Metric) -> Callable[[object], FieldValue]:
    if metric.type in (MetricType.FLOAT, MetricType.INT):
        return _number_checker(metric)
    if metric.type is MetricType.BOOL:
        return _bool_checker(metric)
    if metric.type is MetricType.CHOICE:
        return _choice_checker(metric)
    return functools.partial(_check_value, metric)


_CHECKERS = {kind: tuple((m.name, m.required, _checker(m)) for m in metrics) for kind, metrics in METRICS.items()}


def value_check(metric: Metric) -> Callable[[object], bool]:
    """A test of one value of `metric`: True when `decode_message` accepts it as that field of a reading.
    For stages that build readings (the bridge) and would otherwise decode what they just encoded."""
    check = _checker(metric)

    def accepts(value: object) -> bool:
        try:
            check(value)
        except _Invalid:
            return False
        return True

    return accepts


def _json_type(value: object) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)


def _int_excerpt(value: int) -> str:
    """An integer for a message: itself if short, else its size (a device can send 4,000 digits)."""
    if -10**20 < value < 10**20:
        return str(value)
    return f"<an integer of about {int(abs(value).bit_length() * 0.30103) + 1} digits>"


def _check_seq(value: object) -> int:
    if value is _MISSING:
        raise _Invalid(RejectReason.MISSING_FIELD, "reading has no 'seq' (per-device counter)")
    if type(value) is int:
        if 0 <= value <= SEQ_MAX:
            return value
        shown = _int_excerpt(value)
    else:  # str() of a deeply nested array could itself fail
        shown = _json_type(value) if isinstance(value, list | dict) else str(value)[:40]
    raise _Invalid(RejectReason.BAD_SEQ, f"seq={shown} must be a whole number 0..2^63-1")


def _check_ts(value: object, received_at: float, limits: DecodeLimits) -> int:
    if value is _MISSING:
        raise _Invalid(RejectReason.MISSING_FIELD, "reading has no 'ts' (RFC 3339 with offset, or epoch ms)")
    if type(value) is int:
        ts_ms = value
    elif type(value) is str:
        ts_ms = _parse_rfc3339_ms(value)
    else:
        raise _Invalid(RejectReason.BAD_TS,
                       f"ts is {_json_type(value)}; send RFC 3339 with an offset or integer epoch milliseconds")
    if not TS_MS_MIN <= ts_ms <= TS_MS_MAX:  # before any arithmetic: a device can send 4,000 digits
        raise _Invalid(RejectReason.BAD_TS,
                       f"ts={_int_excerpt(ts_ms) if type(value) is int else repr(value)} is outside the epoch "
                       f"milliseconds InfluxDB can store ({TS_MS_MIN}..{TS_MS_MAX}, years 1677..2262)")
    ts_s = ts_ms / 1000
    if ts_s > received_at + limits.max_future_s:
        raise _Invalid(RejectReason.TS_IN_FUTURE,
                       f"ts is {ts_s - received_at:.0f} s ahead of the collector's clock "
                       f"(limit {limits.max_future_s:g} s); check the device's clock and NTP")
    if ts_s < received_at - limits.max_age_s:
        hint = "; integer ts is epoch *milliseconds*, this looks like seconds" if 0 < ts_ms < 10**11 else ""
        raise _Invalid(RejectReason.TS_TOO_OLD,
                       f"ts is {received_at - ts_s:.0f} s in the past (limit {limits.max_age_s:g} s){hint}")
    return ts_ms


def checked_ts_ms(value: object, received_at: float, limits: DecodeLimits) -> int | None:
    """A reading's `ts` as epoch milliseconds if the contract accepts it at `received_at`, else None
    (`decode_message` says why)."""
    try:
        return _check_ts(value, received_at, limits)
    except _Invalid:
        return None


_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})?",
                      re.ASCII)
_RFC3339_HINT = "is not RFC 3339 (e.g. 2026-11-28T09:30:00+05:00)"


def _parse_rfc3339_ms(text: str) -> int:
    """RFC 3339's `date-time` exactly (section 5.6): no basic ISO form, week dates, missing seconds or
    other ISO 8601 spellings the contract does not promise; fractions of up to nanoseconds."""
    match = _RFC3339.fullmatch(text) if len(text) <= 40 else None
    if match is None:
        raise _Invalid(RejectReason.BAD_TS, f"ts {text[:40]!r} {_RFC3339_HINT}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if offset is None:
        raise _Invalid(RejectReason.TS_WITHOUT_OFFSET,
                       f"ts {text!r} has no UTC offset; a local time would be misread by hours. "
                       "Append 'Z' or an offset such as '+05:00'")
    tz = UTC
    if offset not in ("Z", "z"):
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise _Invalid(RejectReason.BAD_TS, f"ts {text!r} has the offset {offset}, beyond ±23:59")
        tz = timezone((-1 if offset[0] == "-" else 1) * timedelta(hours=hours, minutes=minutes))
    try:
        dt = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                      int((fraction or "0")[:6].ljust(6, "0")), tzinfo=tz)
    except ValueError as err:  # 2026-02-30, hour 24, leap second 60: no such instant to store
        raise _Invalid(RejectReason.BAD_TS, f"ts {text!r} {_RFC3339_HINT}: {err}") from None
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TS_MS_MIN = -9_223_372_036_854
TS_MS_MAX = 9_223_372_036_854
"""InfluxDB stores time as signed 64-bit nanoseconds: these are the epoch milliseconds it can hold."""
