"""History: readings of a device or a group over a time range, downsampled, read with InfluxQL.

`history_query` is pure: it turns a validated `HistoryRequest` into one InfluxQL SELECT. Every
identifier goes through `quote_ident`, every value through `quote_string`, times through
`time_literal`; and before that the request model has already refused anything that is not a
contract id, a known metric of the kind, an RFC 3339 time or a whole interval. `HistoryReader` runs
the query and shapes the answer.

Buckets are InfluxDB's `GROUP BY time(interval)` buckets, aligned to the epoch (not to `start`): each
point's time is its bucket's start, and the first bucket may begin before `start` (it then holds only
readings from `start` on). Empty buckets are left out (`fill(none)`).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from core.contract import ID_RE, METRICS_BY_NAME, Kind, MetricType
from core.influxql import InfluxQLClient, quote_ident, quote_string, time_literal

RFC3339_RE = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})\Z")
INTERVAL_RE = re.compile(r"\A([1-9][0-9]{0,5})(s|m|h|d)\Z")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
MAX_INTERVAL_S = 366 * 86_400
"""The longest bucket, `366d`: a year's history in one value. Longer ones answer nothing more, and
past 106,751 days InfluxDB cannot even hold the interval (int64 nanoseconds) and fails the query."""
MAX_TIME_MS = 2**62 // 1_000_000
"""The latest time accepted, 2116-02-20T23:53:38.427Z (2**62 ns). InfluxDB 1.x stores times up to
2262-04-11 (int64 ns); the API stops at half that range, leaving room for InfluxDB's arithmetic on
times (a bucket's end is its start plus the interval)."""
MAX_TIME_TEXT = datetime.fromtimestamp(MAX_TIME_MS / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
_NUMERIC = (MetricType.FLOAT, MetricType.INT)


class Aggregate(enum.StrEnum):
    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    LAST = "last"


class BadHistoryRequest(ValueError):
    """A history request we refuse; `param` names the parameter, the message says why (→ 422)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def parse_time(param: str, text: str) -> int:
    """Strict RFC 3339 with an offset (`2026-01-01T00:00:00Z`, `...+05:00`) → epoch milliseconds."""
    if not RFC3339_RE.match(text):
        raise BadHistoryRequest(param, f"{text[:40]!r} is not an RFC 3339 time with an offset, "
                                       "e.g. 2026-01-01T00:00:00Z")
    try:
        # fromisoformat takes at most 6 fraction digits; nanoseconds do not matter at ms precision.
        trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text)
        dt = datetime.fromisoformat(trimmed.replace("Z", "+00:00"))
    except ValueError as err:
        raise BadHistoryRequest(param, f"{text[:40]!r} is not a valid date/time: {err}") from None
    epoch_ms = int((dt - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)
    if not 0 <= epoch_ms < MAX_TIME_MS:
        raise BadHistoryRequest(param, f"{text[:40]!r} is outside the times accepted, 1970-01-01T00:00:00Z "
                                       f"up to (not including) {MAX_TIME_TEXT}")
    return epoch_ms


def parse_interval(text: str) -> int:
    """`30s`, `1m`, `6h`, `1d` → seconds, at most MAX_INTERVAL_S."""
    match = INTERVAL_RE.match(text)
    if not match:
        raise BadHistoryRequest("interval", f"{text[:40]!r} is not an interval like 10s, 1m, 1h or 1d")
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds > MAX_INTERVAL_S:
        raise BadHistoryRequest("interval", f"{text} is longer than the longest interval, "
                                            f"{MAX_INTERVAL_S // 86_400}d")
    return seconds


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    """A validated request: build with `HistoryRequest.build` (which raises BadHistoryRequest)."""

    site: str
    kind: Kind
    device: str | None
    """None: every device of `kind` at `site` (one series per device)."""
    metrics: tuple[str, ...]
    start_ms: int
    end_ms: int
    interval_s: int
    aggregate: Aggregate

    @classmethod
    def build(cls, site: str, kind: Kind, device: str | None, metrics: list[str], start: str, end: str,
              interval: str, aggregate: Aggregate, max_points: int) -> HistoryRequest:
        for param, value in (("site", site), ("device", device)):
            if value is not None and not ID_RE.match(value):
                raise BadHistoryRequest(param, f"{value[:40]!r} is not an id ([a-z0-9][a-z0-9_-]{{0,63}})")
        known = METRICS_BY_NAME[kind]
        if not metrics:
            metrics = [m.name for m in known.values() if m.type in _NUMERIC]
        if len(metrics) > len(known):
            raise BadHistoryRequest("metrics", f"at most {len(known)} metrics per request")
        for name in metrics:
            metric = known.get(name)
            if metric is None or metric.is_tag:
                fields = ", ".join(m.name for m in known.values() if not m.is_tag)
                raise BadHistoryRequest("metrics", f"{name[:40]!r} is not a metric of {kind.value} ({fields})")
            if metric.type not in _NUMERIC and aggregate is not Aggregate.LAST:
                raise BadHistoryRequest("metrics", f"{name} is not a number; only agg=last applies to it")
        start_ms, end_ms = parse_time("start", start), parse_time("end", end)
        if end_ms <= start_ms:
            raise BadHistoryRequest("end", "end must be after start")
        interval_s = parse_interval(interval)
        points = (end_ms - start_ms) / 1000 / interval_s
        if points > max_points:
            raise BadHistoryRequest("interval", f"{points:.0f} points per series is over the limit of "
                                                f"{max_points}; choose a longer interval or a shorter range")
        return cls(site, kind, device, tuple(dict.fromkeys(metrics)), start_ms, end_ms, interval_s, aggregate)


def history_query(request: HistoryRequest) -> str:
    """The one InfluxQL statement for `request` (pure)."""
    agg = request.aggregate.value
    select = ", ".join(f"{agg}({quote_ident(m)}) AS {quote_ident(m)}" for m in request.metrics)
    where = [f"{quote_ident('site')} = {quote_string(request.site)}"]
    if request.device is not None:
        where.append(f"{quote_ident('device')} = {quote_string(request.device)}")
    where.append(f"time >= {time_literal(request.start_ms)}")
    where.append(f"time < {time_literal(request.end_ms)}")
    group = f"time({request.interval_s}s)"
    if request.device is None:
        group += f", {quote_ident('device')}"
    return (f"SELECT {select} FROM {quote_ident(request.kind.value)} WHERE {' AND '.join(where)} "
            f"GROUP BY {group} fill(none)")


@dataclass(frozen=True, slots=True)
class DeviceSeries:
    device: str
    times_ms: list[int]
    values: dict[str, list[float | int | bool | str | None]]


class HistoryReader:
    """Runs history queries against one InfluxDB database. Raises core.influxql errors."""

    def __init__(self, client: InfluxQLClient) -> None:
        self.client = client

    def read(self, request: HistoryRequest) -> list[DeviceSeries]:
        result = self.client.query(history_query(request), epoch="ms")
        out = []
        for series in result:
            device = series.tags.get("device", request.device or "")
            index = {name: i for i, name in enumerate(series.columns)}
            out.append(DeviceSeries(
                device=device,
                times_ms=[int(row[0]) for row in series.values],
                values={m: [row[index[m]] for row in series.values] for m in request.metrics if m in index}))
        out.sort(key=lambda s: s.device)
        return out

    def ping(self) -> bool:
        return self.client.ping()
