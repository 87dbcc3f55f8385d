"""InfluxQL panel queries: the Grafana target that carries them, and the substitution Grafana does.

grafana-foundation-sdk ships no InfluxDB query type, so `InfluxQLTarget` is ours: a cog `Dataquery`
(what a panel's `targets` hold) that is also its own builder. Registering it with the SDK's runtime
(`register_influxql_variant`) lets `Dashboard.from_json` decode our targets back into this class,
which is how `dashboards.validate` checks that a built dashboard survives the SDK's model.

Every query is raw InfluxQL (`rawQuery: true`) written against the schema in docs/influxdb.md, using only
what InfluxDB 1.6 already understands, so the same dashboards work on 1.x, on 2.x through its
v1-compatible /query API, and on 3.x.

`render_query` substitutes what Grafana substitutes before sending a query: `$timeFilter`,
`$__interval`, and template variables (`$site`, `${device}`), escaped the way Grafana's InfluxDB data
source escapes multi-value variables for `=~ /^...$/` matches. Tests and the PNG renderer use it to
run exactly the text a dashboard holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

INFLUXDB_TYPE = "influxdb"
DATASOURCE_UID = "facmon-influxdb"
DATASOURCE = DataSourceRef(type_val=INFLUXDB_TYPE, uid=DATASOURCE_UID)
"""Every panel points at this uid; provisioning and `facmon dashboards push` create it."""

ALL_VALUE = ".*"
"""A variable's "All" stands for this regex (not a list of every value), so queries stay short."""

ResultFormat = Literal["time_series", "table", "logs"]
RESULT_FORMATS: tuple[str, ...] = ("time_series", "table", "logs")


class InfluxQLTarget(cogvariants.Dataquery, cogbuilder.Builder[cogvariants.Dataquery]):
    """One raw InfluxQL query of a panel: `refId`, the query text, how Grafana shapes the result
    (`time_series` or `table`) and an optional `alias` (e.g. `$tag_isp`)."""

    def __init__(self, query: str, ref_id: str = "A", result_format: ResultFormat = "time_series",
                 alias: str | None = None) -> None:
        if result_format not in RESULT_FORMATS:
            raise ValueError(f"result_format {result_format!r} is not one of {', '.join(RESULT_FORMATS)}")
        self.query = query
        self.ref_id = ref_id
        self.result_format = result_format
        self.alias = alias

    def build(self) -> Self:
        return self

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "datasource": DATASOURCE.to_json(),
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Decode a target; raises `ValueError` for anything a facmon panel would not contain
        (a builder-mode query, an unknown result format, a missing query)."""
        if data.get("rawQuery") is not True:
            raise ValueError(f"target {data.get('refId')!r}: only raw InfluxQL queries (rawQuery: true) are used")
        query = data.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"target {data.get('refId')!r}: query is missing or empty")
        return cls(query, str(data.get("refId", "")), data.get("resultFormat", "time_series"), data.get("alias"))


def register_influxql_variant() -> None:
    """Teach the SDK's JSON decoder that `influxdb` targets are `InfluxQLTarget`s (idempotent)."""
    cogruntime.register_dataquery_variant(
        cogruntime.DataqueryConfig(identifier=INFLUXDB_TYPE, from_json_hook=InfluxQLTarget.from_json))


# --- what Grafana substitutes --------------------------------------------------------------------

@dataclass(frozen=True)
class TimeRange:
    """A dashboard time range in epoch milliseconds and the `$__interval` Grafana would pick."""

    from_ms: int
    to_ms: int
    interval: str = "1m"

    def __post_init__(self) -> None:
        if self.to_ms <= self.from_ms:
            raise ValueError(f"time range ends ({self.to_ms}) before it starts ({self.from_ms})")
        if not re.fullmatch(r"\d+(ms|s|m|h|d)", self.interval):
            raise ValueError(f"interval {self.interval!r} is not an InfluxQL duration such as 10s or 5m")


class UnresolvedVariableError(ValueError):
    """A query names a template variable that was given no value."""


_REGEX_SPECIALS = re.compile(r"[\\^$*+?.()|{}\[\]/]")
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)|\[\[(\w+)\]\]")
_GRAFANA_MACROS = ("timeFilter", "__interval", "__interval_ms", "__from", "__to")


def regex_escape(value: str) -> str:
    """Escape `value` as Grafana's InfluxDB data source does for a multi-value variable, so it can
    sit inside `/^...$/` (slashes included, since they end an InfluxQL regex)."""
    return _REGEX_SPECIALS.sub(lambda m: "\\" + m.group(0), value)


def format_variable(values: Sequence[str]) -> str:
    """A multi-value variable's text: one escaped value, `(a|b)` for several, `.*` for All."""
    if list(values) == [ALL_VALUE]:
        return ALL_VALUE
    if not values:
        raise UnresolvedVariableError("a variable needs at least one value (or All)")
    escaped = [regex_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def render_query(query: str, time_range: TimeRange, variables: Mapping[str, Sequence[str]]) -> str:
    """The query text Grafana would send: macros and variables substituted.

    Raises `UnresolvedVariableError` naming a `$variable` that has no value."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name == "timeFilter":
            return f"time >= {time_range.from_ms}ms and time <= {time_range.to_ms}ms"
        if name == "__interval":
            return time_range.interval
        if name == "__from":
            return str(time_range.from_ms)
        if name == "__to":
            return str(time_range.to_ms)
        if name in variables:
            return format_variable(variables[name])
        # `$tag_isp`-style aliases only appear in `alias`, never in query text.
        raise UnresolvedVariableError(f"query uses ${name} but no value was given for it: {query[:120]!r}")

    return _VARIABLE.sub(substitute, query)


def variables_used(query: str) -> set[str]:
    """Template variables (not Grafana's own macros) that `query` refers to."""
    names = {m.group(1) or m.group(2) or m.group(3) for m in _VARIABLE.finditer(query)}
    return names - set(_GRAFANA_MACROS)
