"""Decode a reading and write its line protocol in one pass, for the shapes devices actually send.

`decode_message` + `reading_to_line` judge every field one Python call at a time: ~25 µs a reading,
a third of the collector's CPU. But a device sends the same shape over and over: the same keys in
the same order, with the same JSON types. So the first message of each shape builds a *plan* for it
(which fields are numbers to range-check, which are choices or labels, the `%`-template of its line),
and every later message of that shape is checked and formatted with a few C-level operations
(`map(type, …)`, `itemgetter`, `map(operator.le, …)`, one `%` format).

`fast_reading_line` answers either exactly what the general path would (the same `Reading`, the same
line) or None, meaning "take the general path": anything unusual — a reject, an int where a float
is expected, a label never seen before, an unknown key — goes the long way, which explains what is
wrong. tests/unit/test_reading_plans.py holds the two paths to the same answers on valid, invalid
and randomly mutated payloads.

A plan also gets a C form (`core/_reading_kernel.c`, built at install where a C compiler is
present): once a topic's reading took the fused path, `kernel_reading_line` checks and formats that
topic's next readings straight from the payload bytes — no JSON objects, no float repr — in ~1 µs
instead of ~5 µs, answering None (take `fast_reading_line`) for anything the plan does not describe
exactly. Ranges, choices, lengths and the key order come from the plan built here; of its own the C
only narrows: strings only as printable ASCII without escapes, a label not only spaces.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from core.contract import (
    MAX_LABEL_CHARS,
    METRICS_BY_NAME,
    SEQ_MAX,
    Channel,
    DeviceKey,
    Kind,
    MetricType,
    Reading,
    TopicError,
)
from core.decode import (
    MAX_TEXT_CHARS,
    DecodeLimits,
    checked_ts_ms,
    is_valid_label,
    is_valid_text,
    parse_topic_cached,
)
from core.line_protocol import LINE_LAYOUT, series_prefix, series_prefix_pieces

try:
    from core import _reading_kernel as _kernel
except ImportError:  # built without a C compiler: the Python paths alone, same answers
    _kernel = None  # type: ignore[assignment]

KERNEL_BUILT = _kernel is not None
_BOOL_TEXT = {True: "true", False: "false"}
_NONE = type(None)
_PLANS_MAX = 4096
_LABELS_MAX = 65_536


@dataclass(frozen=True, slots=True)
class _Plan:
    ts_at: int
    seq_at: int
    numbers: Callable[[tuple[Any, ...]], tuple[Any, ...]]
    lows: tuple[float, ...]
    highs: tuple[float, ...]
    choices: tuple[tuple[int, frozenset[str]], ...]
    labels: tuple[int, ...]
    texts: tuple[int, ...]
    line_values: Callable[[tuple[Any, ...]], tuple[Any, ...]]
    """The line's field values in contract order (nulls and labels left out)."""
    line_conversions: tuple[tuple[int, Callable[[Any], str]], ...]
    """(position in line_values, to-text) for the values `%r`/`%d` cannot format as they are."""
    template: str
    """`name=%r,…,seq=%di %d`: fields, seq, then the timestamp in nanoseconds."""
    label_names: tuple[str, ...]
    kernel_plan: Any
    """The plan in C (`_reading_kernel.Plan`), or None where the kernel cannot take this shape."""


def _getter(indexes: list[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """`itemgetter` that always returns a tuple (itemgetter of one index returns the item itself)."""
    if len(indexes) == 1:
        only = indexes[0]
        return lambda values: (values[only],)
    if not indexes:
        return lambda values: ()
    return operator.itemgetter(*indexes)


def _build_plan(kind: Kind, keys: tuple[str, ...], types: tuple[type, ...]) -> _Plan | None:
    """The plan for one shape, or None if that shape must always go the general path."""
    spec = METRICS_BY_NAME[kind]
    if "ts" not in keys or "seq" not in keys or types[keys.index("seq")] is not int:
        return None
    if types[keys.index("ts")] not in (int, str):
        return None
    present = set(keys) - {"ts", "seq"}
    if not present <= spec.keys() or any(m.required and name not in present for name, m in spec.items()):
        return None
    numbers: list[int] = []
    lows: list[float] = []
    highs: list[float] = []
    choices: list[tuple[int, frozenset[str]]] = []
    labels: list[int] = []
    texts: list[int] = []
    for at, (name, value_type) in enumerate(zip(keys, types, strict=True)):
        if name in ("ts", "seq"):
            continue
        metric = spec[name]
        if value_type is _NONE:
            if not metric.nullable:
                return None
            continue
        expected = {MetricType.FLOAT: float, MetricType.INT: int, MetricType.BOOL: bool}.get(metric.type, str)
        if value_type is not expected:
            return None
        if metric.type in (MetricType.FLOAT, MetricType.INT):
            numbers.append(at)
            # Finite bounds even for an open range, so that a non-finite value fails the check.
            lows.append(-sys.float_info.max if metric.minimum is None else metric.minimum)
            highs.append(sys.float_info.max if metric.maximum is None else metric.maximum)
        elif metric.type is MetricType.CHOICE:
            choices.append((at, frozenset(metric.choices)))
        elif metric.type is MetricType.LABEL:
            labels.append(at)
        elif metric.type is MetricType.TEXT:
            texts.append(at)
    label_names, field_layout = LINE_LAYOUT[kind]
    line_indexes: list[int] = []
    conversions: list[tuple[int, Callable[[Any], str]]] = []
    pieces: list[str] = []
    for key_eq, formatter in field_layout:
        name = key_eq[:-1]
        if name not in present or types[keys.index(name)] is _NONE:
            continue
        metric_type = spec[name].type
        if metric_type is MetricType.FLOAT:
            pieces.append(key_eq.replace("%", "%%") + "%r")
        elif metric_type is MetricType.INT:
            pieces.append(key_eq.replace("%", "%%") + "%di")
        else:
            pieces.append(key_eq.replace("%", "%%") + "%s")
            conversions.append((len(line_indexes), _BOOL_TEXT.__getitem__ if metric_type is MetricType.BOOL
                                else formatter))
        line_indexes.append(keys.index(name))
    pieces.append("seq=%di")
    kernel_plan = None
    if _kernel is not None:
        kernel_plan = _kernel_plan(kind, keys, types, dict(zip(numbers, zip(lows, highs, strict=True), strict=True)),
                                   line_indexes)
    return _Plan(
        ts_at=keys.index("ts"), seq_at=keys.index("seq"), numbers=_getter(numbers), lows=tuple(lows),
        highs=tuple(highs), choices=tuple(choices), labels=tuple(labels), texts=tuple(texts),
        line_values=_getter(line_indexes), line_conversions=tuple(conversions),
        template=",".join(pieces) + " %d", label_names=label_names, kernel_plan=kernel_plan,
    )


def _kernel_plan(kind: Kind, keys: tuple[str, ...], types: tuple[type, ...],
                 bounds: dict[int, tuple[float, float]], line_order: list[int]) -> Any:
    """The C form of a shape's plan (see core/_reading_kernel.c): per key, what its JSON value must be.
    `bounds` are the Python plan's (low, high) per number's position, `line_order` its line fields'."""
    spec = METRICS_BY_NAME[kind]
    field_text = dict(LINE_LAYOUT[kind][1])
    entries = []
    for at, (name, value_type) in enumerate(zip(keys, types, strict=True)):
        low, high, choices = 0.0, 0.0, ()
        if name == "ts":
            entry_kind = _kernel.TS
        elif name == "seq":
            entry_kind = _kernel.SEQ
        elif value_type is _NONE:
            entry_kind = _kernel.NULL
        else:
            metric = spec[name]
            entry_kind = {MetricType.FLOAT: _kernel.FLOAT, MetricType.INT: _kernel.INT, MetricType.BOOL: _kernel.BOOL,
                          MetricType.CHOICE: _kernel.CHOICE, MetricType.LABEL: _kernel.LABEL,
                          MetricType.TEXT: _kernel.TEXT}[metric.type]
            if metric.type is MetricType.LABEL:
                high = float(MAX_LABEL_CHARS)  # and printable, not blank, no backslash: the kernel's strings
            elif metric.type is MetricType.TEXT:
                high = float(MAX_TEXT_CHARS)  # and printable
            if metric.type in (MetricType.FLOAT, MetricType.INT):
                low, high = map(float, bounds[at])
                if (low, high) != bounds[at]:
                    return None  # a bound a double cannot hold exactly: compare in Python
            elif metric.type is MetricType.CHOICE:
                choices = tuple((choice.encode(), field_text[name + "="](choice).encode()) for choice in metric.choices)
        if not name.isascii() or any(not (a.isascii() and b.isascii()) for a, b in choices):
            return None
        entries.append((name.encode(), entry_kind, low, high, choices))
    outputs = tuple((at, (keys[at] + "=").encode()) for at in line_order)
    label_names = series_prefix_pieces(DeviceKey("site", kind, "device"), LINE_LAYOUT[kind][0])[1]
    if not set(label_names) <= set(keys):
        return None
    return _kernel.Plan(tuple(entries), outputs, tuple(keys.index(name) for name in label_names))


class KernelRoute(NamedTuple):
    """How `kernel_reading_line` takes a topic's readings: the device, the C plan of the shape the
    topic sent last, and the device's `measurement,tags ` prefix as the text around its labels."""

    device: DeviceKey
    kernel_plan: Any
    prefix_pieces: tuple[bytes, ...]


_plans: dict[tuple[object, ...], _Plan | None] = {}
_routes: dict[str, KernelRoute] = {}
_ROUTES_MAX = 100_000
_good_labels: set[str] = set()
"""Label values the general path's rules accept, seen before: the check is then one set lookup."""


def _label_ok(value: str) -> bool:
    if value in _good_labels:
        return True
    if not is_valid_label(value):
        return False
    if len(_good_labels) >= _LABELS_MAX:
        _good_labels.clear()
    _good_labels.add(value)
    return True


def json_object(payload: bytes) -> dict[str, Any] | None:
    """`payload` as a JSON object, or None when it is not one (a fast path then leaves it to the
    general path, which says why)."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return body if type(body) is dict else None


def fast_reading_line(topic: str, payload: bytes, received_at: float,
                      limits: DecodeLimits) -> tuple[Reading, str] | None:
    """The reading in `payload` and its line of line protocol, exactly as `decode_message` and
    `reading_to_line` would give them; None when the message needs the general path (including
    every message the general path would reject). Never raises on input."""
    try:
        parsed = parse_topic_cached(topic)
    except TopicError:
        return None
    if parsed.channel is not Channel.READING or len(payload) > limits.max_payload_bytes:
        return None
    body = json_object(payload)
    if body is None:
        return None
    values = tuple(body.values())
    kind = parsed.device.kind
    shape = (kind, tuple(body), tuple(map(type, values)))
    try:
        plan = _plans[shape]
    except KeyError:
        plan = _build_plan(*shape)
        if len(_plans) >= _PLANS_MAX:
            _plans.clear()
        _plans[shape] = plan
    if plan is None:
        return None
    numbers = plan.numbers(values)
    if not (all(map(operator.le, plan.lows, numbers)) and all(map(operator.le, numbers, plan.highs))):
        return None
    for at, allowed in plan.choices:
        if values[at] not in allowed:
            return None
    for at in plan.labels:
        if not _label_ok(values[at]):
            return None
    for at in plan.texts:
        if not is_valid_text(values[at]):
            return None
    seq = values[plan.seq_at]
    if not 0 <= seq <= SEQ_MAX:
        return None
    ts_ms = checked_ts_ms(values[plan.ts_at], received_at, limits)
    if ts_ms is None:
        return None
    del body["ts"], body["seq"]
    reading = Reading(parsed.device, ts_ms, seq, body)
    line_values = plan.line_values(values)
    if plan.line_conversions:
        line_values = list(line_values)
        for position, to_text in plan.line_conversions:
            line_values[position] = to_text(line_values[position])
    if plan.kernel_plan is not None:
        route = _routes.get(topic)
        if route is None or route.kernel_plan is not plan.kernel_plan:
            if len(_routes) >= _ROUTES_MAX:
                _routes.clear()
            pieces = series_prefix_pieces(reading.device, plan.label_names)[0]
            _routes[topic] = KernelRoute(reading.device, plan.kernel_plan, tuple(p.encode() for p in pieces))
    return reading, series_prefix(reading, plan.label_names) + plan.template % (*line_values, seq, ts_ms * 1_000_000)


def kernel_route(topic: str) -> KernelRoute | None:
    """The C route for `topic`, once one of its readings took `fast_reading_line` with a shape the
    kernel can take; None before that, for labelled or free-text shapes, or without the kernel."""
    return _routes.get(topic)


def kernel_reading_line(topic: str, payload: bytes, received_at: float,
                        limits: DecodeLimits) -> tuple[DeviceKey, int, int, str] | None:
    """(device, seq, ts_ms, line) of the reading in `payload`, through the C kernel: exactly the
    device, seq, ts and line `fast_reading_line` would give; None when the kernel has no route for
    the topic or the payload is not exactly of its planned shape (then call `fast_reading_line`)."""
    route = _routes.get(topic)
    if route is None:
        return None
    line = _kernel.reading_line(route.kernel_plan, payload, received_at, limits.max_future_s, limits.max_age_s,
                                limits.max_payload_bytes, route.prefix_pieces)
    if line is None:
        return None
    return route.device, line[1], line[2], line[0]

