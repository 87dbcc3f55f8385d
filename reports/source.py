"""InfluxDB → plain values for the reports. Every statement aggregates in InfluxDB: per-minute
buckets (GROUP BY time(1m)) kept only where a condition holds (down, missing, off the grid...), per
local day sums (GROUP BY time(1d) tz(...)), or 15-minute buckets; never a month of raw points.

A minute with no reading at all is filled with -1 where the report must know it is missing, so
"no data" is a row of its own and never mistaken for a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from core.influxql import InfluxQLClient, quote_ident, quote_string
from reports.month import ReportMonth

MISSING = -1
"""The fill value of a minute without readings (the metrics it stands for are never negative)."""


@dataclass(frozen=True)
class Rows:
    """One device's rows: `minutes` (index in the month, or bucket start in epoch ms for buckets)
    and one array per column."""

    at: np.ndarray
    columns: Mapping[str, np.ndarray]


def _empty() -> Rows:
    return Rows(np.zeros(0, dtype=np.int64), {})


class ReportSource:
    """Reads one site's month from InfluxDB. `client` is an InfluxQLClient for facmon's database."""

    def __init__(self, client: InfluxQLClient, site_id: str, month: ReportMonth) -> None:
        self.client = client
        self.month = month
        self._site = f"site = {quote_string(site_id)}"
        self._range = f"time >= {month.start_s}s AND time < {month.end_s}s"

    def minutes_where(self, measurement: str, inner: str, condition: str, *, fill: str = "none",
                      where: str = "") -> dict[str, Rows]:
        """Per device, the minutes whose per-minute aggregates (`inner`, e.g. "mean(loss_pct) AS loss")
        meet `condition` (e.g. "loss > 50"). `where` narrows the raw points (e.g. "link_up = false")."""
        narrowed = f" AND ({where})" if where else ""
        q = (f"SELECT * FROM (SELECT {inner} FROM {quote_ident(measurement)} WHERE {self._site} AND {self._range}"
             f"{narrowed} GROUP BY time(1m), device fill({fill})) WHERE {self._range} AND ({condition}) "
             f"GROUP BY device")
        out: dict[str, Rows] = {}
        for series in self.client.query(q, epoch="ms"):
            times = np.array([row[0] for row in series.values], dtype=np.int64)
            columns = {name: np.array([row[i] for row in series.values], dtype=object)
                       for i, name in enumerate(series.columns) if name != "time"}
            out[series.tags.get("device", "")] = Rows((times // 1000 - self.month.start_s) // 60, columns)
        return out

    def daily(self, measurement: str, per_minute: str, outer: str, *, condition: str = "",
              where: str = "") -> dict[str, np.ndarray]:
        """Per device, one number per local day: `outer` (e.g. "sum(pv) / 60000") over the per-minute
        values `per_minute` (e.g. "mean(pv_w) AS pv") whose minutes meet `condition`."""
        narrowed = f" AND ({where})" if where else ""
        kept = f" AND ({condition})" if condition else ""
        q = (f"SELECT {outer} FROM (SELECT {per_minute} FROM {quote_ident(measurement)} WHERE {self._site} AND "
             f"{self._range}{narrowed} GROUP BY time(1m), device) WHERE {self._range}{kept} "
             f"GROUP BY time(1d), device fill(0) tz({quote_string(self.month.tz.key)})")
        return self._by_day(q)

    def daily_raw(self, q_inner: str, outer: str, *, condition: str = "") -> dict[str, np.ndarray]:
        """Like `daily` over a caller's inner statement (already restricted to the site and month)."""
        kept = f" AND ({condition})" if condition else ""
        q = (f"SELECT {outer} FROM ({q_inner}) WHERE {self._range}{kept} GROUP BY time(1d), device fill(0) "
             f"tz({quote_string(self.month.tz.key)})")
        return self._by_day(q)

    def raw_filter(self) -> str:
        """The site and month condition, for a caller's inner statement."""
        return f"{self._site} AND {self._range}"

    def _by_day(self, q: str) -> dict[str, np.ndarray]:
        days = {d: i for i, d in enumerate(self.month.days)}
        out: dict[str, np.ndarray] = {}
        for series in self.client.query(q, epoch="ms"):
            values = np.zeros(len(days))
            for row in series.values:
                index = days.get(datetime.fromtimestamp(row[0] / 1000, self.month.tz).date())
                if index is not None and row[1] is not None:
                    values[index] += float(row[1])
            out[series.tags.get("device", "")] = values
        return out

    def buckets(self, measurement: str, select: str, every: str) -> dict[str, Rows]:
        """Per device, aggregates per `every` bucket (e.g. "15m"), empty buckets left out; `at` in epoch ms."""
        q = (f"SELECT {select} FROM {quote_ident(measurement)} WHERE {self._site} AND {self._range} "
             f"GROUP BY time({every}), device fill(none)")
        out: dict[str, Rows] = {}
        for series in self.client.query(q, epoch="ms"):
            times = np.array([row[0] for row in series.values], dtype=np.int64)
            columns = {name: np.array([np.nan if row[i] is None else row[i] for row in series.values], dtype=float)
                       for i, name in enumerate(series.columns) if name != "time"}
            out[series.tags.get("device", "")] = Rows(times, columns)
        return out

    def first_seen_ms(self, measurement: str, field: str) -> dict[str, int]:
        """Per device, the time of its first point this month (for "appeared mid-month")."""
        q = (f"SELECT first({quote_ident(field)}) FROM {quote_ident(measurement)} WHERE {self._site} AND "
             f"{self._range} GROUP BY device")
        return {s.tags.get("device", ""): int(s.values[0][0]) for s in self.client.query(q, epoch="ms") if s.values}


def rows_of(found: Mapping[str, Rows], device: str) -> Rows:
    return found.get(device) or _empty()
