"""Readings and rejects as InfluxDB line protocol, escaped for any characters a tag may hold.

Schema (docs/influxdb.md): one measurement per kind; tags `site`, `device` and the kind's labels
(`isp`, `room`); every other metric, and `seq`, a field; the timestamp is the device's `ts` in
nanoseconds, so a redelivered reading overwrites itself instead of doubling.
Float metrics are always written as floats (never `5i`), so a whole-number reading cannot cause
a field type conflict with earlier data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from core.contract import METRICS, DeviceKey, FieldValue, Metric, MetricType, Reading

REJECTS_MEASUREMENT = "facmon_rejects"

_TAG_SPECIALS = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
# Line protocol cannot carry these in a tag at all; an unescaped space would end the tag set.
_CONTROL_WHITESPACE = str.maketrans({"\n": " ", "\r": " ", "\t": " ", "\x0b": " ", "\x0c": " "})
_BACKSLASHES_BEFORE_SEPARATOR = re.compile(r"(\\+)(?=[,= ]|\Z)")
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\\": "\\\\", "\n": " ", "\r": " "})
_STRING_ESCAPES = str.maketrans({'"': r"\"", "\\": "\\\\", "\n": "\\n", "\r": " "})


def _pair_backslashes(match: re.Match[str]) -> str:
    run = match.group(1)
    if match.end() == match.endpos:
        return ""  # InfluxDB refuses a tag ending in a backslash, however many there are
    return run + "\\" * (len(run) % 2)  # the parser reads backslashes in pairs before a separator


def escape_tag(value: str) -> str:
    """Escape a tag key or value for line protocol.

    InfluxDB 1.x unescapes only `\\,`, `\\=` and `\\ ` in tags and keeps every other backslash as
    written, so backslashes are not doubled: `a\\b` is stored as `a\\b` (measured on influxd 1.6.7,
    docs/influxdb.md). Exact for every value without control whitespace and without a backslash at
    its end or right before a comma, equals sign or space (contract labels have no backslash at all).
    Other values still give a tag InfluxDB accepts, changed as little as possible: control
    whitespace becomes a space, a backslash run right before a comma, equals sign or space is made
    even (one backslash more is stored), trailing backslashes are dropped."""
    value = value.translate(_CONTROL_WHITESPACE)
    if "\\" in value:
        value = _BACKSLASHES_BEFORE_SEPARATOR.sub(_pair_backslashes, value)
    return value.translate(_TAG_SPECIALS)


def escape_string_field(value: str) -> str:
    return '"' + value.translate(_STRING_ESCAPES) + '"'


def _field_formatter(metric: Metric) -> Callable[[FieldValue], str]:
    """The line-protocol text of one metric's values, chosen once per metric rather than per value."""
    metric_type = metric.type
    if metric_type is MetricType.CHOICE:
        quoted = {choice: escape_string_field(choice) for choice in metric.choices}
        return lambda v: quoted.get(v) or escape_string_field(str(v))
    if metric_type is MetricType.FLOAT:
        return lambda v: repr(float(v))
    if metric_type is MetricType.INT:
        return lambda v: f"{int(v)}i"
    if metric_type is MetricType.BOOL:
        return lambda v: "true" if v else "false"
    return lambda v: escape_string_field(str(v))


LINE_LAYOUT = {  # per kind: its tag (label) names, and (`name=`, formatter) per field, in contract order
    kind: (
        tuple(m.name for m in metrics if m.is_tag),
        tuple((m.name + "=", _field_formatter(m)) for m in metrics if not m.is_tag),
    )
    for kind, metrics in METRICS.items()
}
_PREFIX_CACHE_MAX = 100_000
_prefix_cache: dict[tuple[object, ...], str] = {}


def _series_key(device: DeviceKey, escaped_labels: Iterable[tuple[str, str]]) -> str:
    """`measurement,tag=…,tag=… ` (tags sorted) from already escaped label values."""
    tags = [f"device={escape_tag(device.device)}", f"site={escape_tag(device.site)}"]
    tags.extend(f"{name}={value}" for name, value in escaped_labels)
    tags.sort()
    return f"{device.kind.value},{','.join(tags)} "


def series_key(device: DeviceKey, labels: Iterable[tuple[str, object]]) -> str:
    """`measurement,tag=…,tag=… ` of `device` with these label values (escaped here): the text every
    line of that series begins with."""
    return _series_key(device, ((name, escape_tag(str(value))) for name, value in labels))


def series_prefix(reading: Reading, label_names: tuple[str, ...]) -> str:
    """`measurement,tag=…,tag=… ` for this device and labels (sorted tag keys), cached: a device's
    series key rarely changes, and building it is a third of the work of a line."""
    device = reading.device
    key = (device, *(reading.metrics.get(name) for name in label_names))
    prefix = _prefix_cache.get(key)
    if prefix is None:
        prefix = series_key(device, ((name, reading.metrics[name]) for name in label_names))
        if len(_prefix_cache) >= _PREFIX_CACHE_MAX:
            _prefix_cache.clear()
        _prefix_cache[key] = prefix
    return prefix


def series_prefix_pieces(device: DeviceKey, label_names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`series_prefix` of this device as text around its escaped label values: (pieces, names) with
    prefix = pieces[0] + escape_tag(value of names[0]) + pieces[1] + … + pieces[-1]. The tag order
    does not depend on the values: tag keys differ before their `=` (device, site, isp, room)."""
    marks = [f"\x00{at}\x00" for at in range(len(label_names))]
    key = _series_key(device, zip(label_names, marks, strict=True))
    parts = re.split("\x00(\\d+)\x00", key)
    return tuple(parts[0::2]), tuple(label_names[int(at)] for at in parts[1::2])


def reading_to_line(reading: Reading) -> str:
    """One line of line protocol (no trailing newline), nanosecond timestamp.

    Null metrics are left out (InfluxDB has no null); `seq` is stored as the integer field `seq`.
    """
    label_names, field_layout = LINE_LAYOUT[reading.device.kind]
    metrics = reading.metrics
    fields = []
    for key, formatter in field_layout:
        value = metrics.get(key[:-1])
        if value is not None:
            fields.append(key + formatter(value))
    fields.append(f"seq={reading.seq}i")
    return f"{series_prefix(reading, label_names)}{','.join(fields)} {reading.ts_ms * 1_000_000}"


def reject_to_line(reason: str, detail: str, topic: str, payload_excerpt: str, site: str | None,
                   kind: str | None, device: str | None, time_ns: int) -> str:
    """A dead-letter point for `facmon_rejects`: tags say where and why, fields say what came."""
    tags = {"reason": reason, "site": site or "", "kind": kind or "", "device": device or ""}
    tag_text = ",".join(f"{k}={escape_tag(v)}" for k, v in sorted(tags.items()) if v)
    fields = (f"count=1i,detail={escape_string_field(detail[:500])},topic={escape_string_field(topic[:300])},"
              f"payload={escape_string_field(payload_excerpt)}")
    return f"{REJECTS_MEASUREMENT},{tag_text} {fields} {time_ns}"
