"""One field of a foreign payload → one contract value: find it (a dotted JSON path), translate it
through the mapping's value table, scale it, convert its unit into the contract metric's. Pure.

A value that cannot become what the contract wants raises `FieldProblem` with a reason code and words
an installer can act on; the contract's own range checks come after, in `core.decode`. The device's
own timestamp is read here too (`TsRule`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from core.contract import FieldValue, Metric, MetricType

_MISSING = object()


class FieldProblem(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _linear(factor: float, shift: float = 0.0) -> Callable[[float], float]:
    return lambda x: x * factor + shift


# Units a source may send, per contract unit, and how to convert them. The names are the ones
# devices and their software print ("kW", "mV", "°F"); case matters (mW is not MW).
CONVERSIONS: Mapping[str, Mapping[str, Callable[[float], float]]] = {
    "W": {"W": _linear(1), "kW": _linear(1e3), "MW": _linear(1e6), "mW": _linear(1e-3)},
    "V": {"V": _linear(1), "mV": _linear(1e-3), "kV": _linear(1e3)},
    "A": {"A": _linear(1), "mA": _linear(1e-3)},
    "Hz": {"Hz": _linear(1)},
    "°C": {"°C": _linear(1), "C": _linear(1), "K": _linear(1, -273.15), "°F": lambda x: (x - 32) * 5 / 9,
           "F": lambda x: (x - 32) * 5 / 9},
    "%": {"%": _linear(1), "fraction": _linear(100)},
    "ms": {"ms": _linear(1), "s": _linear(1e3), "us": _linear(1e-3)},
    "Mbit/s": {"Mbit/s": _linear(1), "kbit/s": _linear(1e-3), "bit/s": _linear(1e-6), "Gbit/s": _linear(1e3)},
}


def units_for(metric: Metric) -> tuple[str, ...]:
    """The source units the mapping may declare for `metric` (empty when it has no unit)."""
    return tuple(CONVERSIONS.get(metric.unit, {}))


def find(body: object, path: tuple[str, ...]) -> object:
    """The value at `path` in nested JSON objects, or `_MISSING`. A key of digits in an array is a
    position counted from 0 (`ENERGY.Power.1`: a two-channel meter's second power)."""
    node = body
    for key in path:
        if isinstance(node, dict):
            node = node.get(key, _MISSING)
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def is_missing(value: object) -> bool:
    return value is _MISSING


@dataclass(frozen=True, slots=True)
class FieldRule:
    """How one contract metric is made from a source's value (built from the mapping file)."""

    metric: Metric
    path: tuple[str, ...]
    """Where the value is: a dotted JSON path, or for one-value-per-topic sources the value's key."""
    unit: str | None = None
    """The unit the source sends, converted into the metric's; None: already the metric's unit."""
    unit_path: tuple[str, ...] | None = None
    """Where the payload says its unit (Tasmota's `TempUnit`); it must then be a unit of `CONVERSIONS`."""
    scale: float = 1.0
    offset: float = 0.0
    values: Mapping[str, FieldValue] | None = None
    """A table from the source's values (as text) to the contract's; a value not in it is refused."""
    above: float | None = None
    """A number → true when it is (scaled) above this (grid present when its voltage is above 180 V); with
    `values`, that true/false is then looked up (`{"true": running, "false": off}`)."""
    shared: bool = False
    """A channel's path with an {index} part: a single value there instead of an array is every channel's."""
    single_path: tuple[str, ...] | None = None
    """Set by `at_channel` for a shared field: where the device-wide single value is (the path without its
    {index} part)."""

    def at_channel(self, channel: int) -> FieldRule:
        """This rule for channel `channel` (from 1) of a multi-channel device: {channel} and {index} in its
        path become the channel's number and its array position."""
        def rendered(path: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(key.replace("{channel}", str(channel)).replace("{index}", str(channel - 1)) for key in path)
        single = rendered(tuple(key for key in self.path if key != "{index}")) if self.shared else None
        return replace(self, path=rendered(self.path), single_path=single)

    def find(self, body: object) -> object:
        """This field's value in the JSON `body`, or `_MISSING`."""
        raw = find(body, self.path)
        if raw is _MISSING and self.single_path is not None:
            single = find(body, self.single_path)
            return _MISSING if isinstance(single, list) else single  # an array without this channel: not ours
        return raw

    def convert(self, raw: object, body: object = None) -> FieldValue:
        """The contract value of `raw`. Raises FieldProblem (bad_value, wrong_type, wrong_unit)."""
        name = self.metric.name
        if self.above is not None:
            raw = self._number_above(raw)
        if self.values is not None:
            key = _table_key(raw)
            if key not in self.values:
                raise FieldProblem("bad_value", f"{name}: source value {key[:40]!r} is not in the mapping's values "
                                                f"({', '.join(map(repr, list(self.values)[:8]))}); add it there")
            raw = self.values[key]
        kind = self.metric.type
        if kind in (MetricType.FLOAT, MetricType.INT):
            return self._number(raw, body)
        if kind is MetricType.BOOL:
            if isinstance(raw, bool):
                return raw
            raise FieldProblem("wrong_type", f"{name}: {raw!r} is not true/false; map it with values: "
                                             "{ON: true, OFF: false}")
        if raw is None and self.metric.nullable:
            return None
        if isinstance(raw, str):
            return raw
        if kind is MetricType.TEXT and isinstance(raw, int | float) and not isinstance(raw, bool):
            return str(raw)
        raise FieldProblem("wrong_type", f"{name}: {raw!r} is not text")

    def _number_above(self, raw: object) -> bool:
        value = _as_number(self.metric.name, raw)
        return value * self.scale + self.offset > self.above  # type: ignore[operator]

    def _number(self, raw: object, body: object) -> FieldValue:
        name = self.metric.name
        if raw is None and self.metric.nullable:
            return None
        value = _as_number(name, raw) * self.scale + self.offset
        unit = self._unit(body)
        if unit is not None and unit != self.metric.unit:
            value = CONVERSIONS[self.metric.unit][unit](value)
        if not math.isfinite(value):
            raise FieldProblem("non_finite", f"{name}: {raw!r} gives no finite number")
        if self.metric.type is MetricType.INT:
            if value != int(value):
                raise FieldProblem("wrong_type", f"{name}: {value!r} is not a whole number")
            return int(value)
        return round(value, 6)  # scale factors such as 0.1 leave binary noise (23.400000000000002)

    def _unit(self, body: object) -> str | None:
        if self.unit_path is None:
            return self.unit
        said = find(body, self.unit_path)
        if said is _MISSING:
            return self.unit
        allowed = CONVERSIONS.get(self.metric.unit, {})
        if not isinstance(said, str) or said not in allowed:
            raise FieldProblem("wrong_unit", f"{self.metric.name}: the payload says its unit is {str(said)[:20]!r}, "
                                             f"which cannot become {self.metric.unit} (known: {', '.join(allowed)})")
        return said


def _as_number(name: str, raw: object) -> float:
    if isinstance(raw, str):  # one-value-per-topic sources send numbers as text
        try:
            return float(raw.strip())
        except ValueError:
            raise FieldProblem("wrong_type", f"{name}: {raw[:40]!r} is not a number") from None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise FieldProblem("wrong_type", f"{name}: {raw!r} is not a number")
    return float(raw)


def _table_key(raw: object) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw).strip()


@dataclass(frozen=True, slots=True)
class TsRule:
    """Where a source's payload carries the device's own time, and how to read it."""

    path: tuple[str, ...]
    format: str
    """iso (an offset-less time is `zone`'s local time), epoch_s or epoch_ms."""
    zone: ZoneInfo | None
    max_clock_skew_s: float
    """A device time further than this from the bridge's clock is refused (clock_off)."""

    def ms(self, body: object, received_at: float) -> int:
        """The device's time in epoch milliseconds. Raises FieldProblem (missing_field, bad_ts, clock_off)."""
        raw = find(body, self.path)
        where = ".".join(self.path)
        if raw is _MISSING:
            raise FieldProblem("missing_field", f"no timestamp {where!r} in the payload")
        if self.format == "iso":
            if not isinstance(raw, str):
                raise FieldProblem("bad_ts", f"{where} {raw!r} is not an ISO 8601 time")
            try:
                moment = datetime.fromisoformat(raw.strip())
            except ValueError:
                raise FieldProblem("bad_ts", f"{where} {raw[:40]!r} is not an ISO 8601 time") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=self.zone)  # the device's local time, in its site's zone
            ts_s = moment.timestamp()
        else:
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise FieldProblem("bad_ts", f"{where} {raw!r} is not a number of epoch "
                                             f"{'seconds' if self.format == 'epoch_s' else 'milliseconds'}")
            ts_s = raw if self.format == "epoch_s" else raw / 1000
        skew = ts_s - received_at
        if abs(skew) > self.max_clock_skew_s:
            raise FieldProblem("clock_off", f"device time {raw!r} is {abs(skew) / 3600:.2f} h "
                                            f"{'ahead of' if skew > 0 else 'behind'} the bridge's clock; set the "
                                            "device's clock and time zone (Tasmota: NtpServer, Timezone)")
        return round(ts_s * 1000)
