"""InfluxDB → plain values for the reports. Every statement aggregates in InfluxDB and returns only
what the report needs: per-quarter-hour counts (coverage), per-minute counts of the readings that meet a
condition (down, off the grid: a small share of the month), per-local-day sums (GROUP BY time(1d)
tz(...)), or 15-minute and hourly buckets; never a month of raw points, and never a row for every
minute of the month (a month is 43,200 minutes a device: that many rows took seconds to build).

Coverage: which minutes of the month hold at least one reading of a device, found in two steps. Per
quarter hour, the readings counted; a quarter with the device's usual count is complete, one with none
is missing, and only those in between are asked again, minute by minute. The usual count also gives
the device's rate (readings a minute), by which counts of readings become minutes and sums of power
become energy. Independent statements run at once (`together`): InfluxDB gives each query a core.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from core.influxql import InfluxQLClient, quote_ident, quote_string
from reports.month import ReportMonth

STATEMENTS_PER_REQUEST = 100
BUCKET_S = 15 * 60
"""Coverage buckets: every zone's offset is a multiple of 15 minutes, so each bucket lies in one local day."""
PARALLEL_QUERIES = 4


@dataclass(frozen=True)
class Coverage:
    """One device's readings in the month: the minutes without any, and its usual rate."""

    missing: np.ndarray
    """Per minute of the month: no reading."""
    per_minute: float
    """Readings a minute in a complete quarter hour (the most common count of a quarter / 15)."""

    @property
    def seconds_per_reading(self) -> float:
        return 60 / self.per_minute


@dataclass(frozen=True)
class MinuteCounts:
    """One device's minutes holding readings that met a condition: minute index and aggregates."""

    minutes: np.ndarray
    columns: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Rows:
    """One device's buckets: `at` (bucket start, epoch ms) and one array per column (nan: none)."""

    at: np.ndarray
    columns: Mapping[str, np.ndarray]


class ReportSource:
    """Reads one site's month from InfluxDB. `client` is an InfluxQLClient for facmon's database."""

    def __init__(self, client: InfluxQLClient, site_id: str, month: ReportMonth) -> None:
        self.client = client
        self.month = month
        self._site = f"site = {quote_string(site_id)}"
        self._range = f"time >= {month.start_s}s AND time < {month.end_s}s"
        self._tz = f"tz({quote_string(month.tz.key)})"

    def _where(self, where: str) -> str:
        return f"{self._site} AND {self._range}" + (f" AND ({where})" if where else "")

    def together(self, *calls: Callable[[], Any]) -> list[Any]:
        """Run independent reads at once (InfluxDB uses a core per query); their results in order.
        The first exception any of them raised is raised once all have finished."""
        with ThreadPoolExecutor(PARALLEL_QUERIES) as pool:
            futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]

    def coverage(self, measurement: str, field: str, extra: str = "") -> tuple[dict[str, Coverage], dict[str, Rows]]:
        """Per device with any reading this month, its coverage (module docstring), and the quarter-hour
        buckets it was found from, with `extra` aggregates if asked (e.g. "sum(pv_w) AS pv")."""
        m, f = quote_ident(measurement), quote_ident(field)
        select = f"count({f}) AS n" + (f", {extra}" if extra else "")
        buckets = self.client.query(f"SELECT {select} FROM {m} WHERE {self._where('')} GROUP BY time({BUCKET_S}s), "
                                    f"device fill(0)", epoch="ms")
        month = self.month
        out: dict[str, Coverage] = {}
        rows: dict[str, Rows] = {}
        partial: list[tuple[str, int, int]] = []
        for series in buckets:
            device = series.tags.get("device", "")
            counts = np.array([row[1] or 0 for row in series.values], dtype=np.int64)
            starts = np.array([row[0] // 1000 for row in series.values], dtype=np.int64)
            rows[device] = Rows(starts * 1000, {name: _column(series.values, i)
                                                for i, name in enumerate(series.columns) if name != "time"})
            nonzero = counts[counts > 0]
            if not len(nonzero):
                continue
            usual = int(np.bincount(nonzero).argmax())
            missing = np.zeros(month.minutes, dtype=bool)
            for start, count in zip(starts.tolist(), counts.tolist(), strict=True):
                first, last = max(start, month.start_s), min(start + BUCKET_S, month.end_s)
                if last <= first or (count >= usual and last - first == BUCKET_S):
                    continue
                if count == 0:
                    missing[(first - month.start_s) // 60:(last - month.start_s) // 60] = True
                else:
                    partial.append((device, first, last))
            out[device] = Coverage(missing, usual * 60 / BUCKET_S)
        self._fill_partial_buckets(measurement, field, partial, out)
        return out, rows

    def _fill_partial_buckets(self, measurement: str, field: str, partial: list[tuple[str, int, int]],
                            out: dict[str, Coverage]) -> None:
        """Minute by minute, the buckets whose count was neither usual nor zero."""
        m, f = quote_ident(measurement), quote_ident(field)
        for chunk in range(0, len(partial), STATEMENTS_PER_REQUEST):
            batch = partial[chunk:chunk + STATEMENTS_PER_REQUEST]
            q = ";".join(f"SELECT count({f}) FROM {m} WHERE {self._site} AND device = {quote_string(device)} AND "
                         f"time >= {first}s AND time < {last}s GROUP BY time(1m) fill(0)"
                         for device, first, last in batch)
            for series in self.client.query(q, epoch="ms"):
                device = batch[series.statement_id][0]
                for at, count in series.values:
                    minute = self.month.minute_of(at)
                    if not count and 0 <= minute < self.month.minutes:
                        out[device].missing[minute] = True

    def minute_counts(self, measurement: str, select: str, where: str) -> dict[str, MinuteCounts]:
        """Per device, the minutes holding readings that meet `where`, with `select` over those readings
        (e.g. "count(loss_pct) AS n"), minutes without such readings left out."""
        q = (f"SELECT {select} FROM {quote_ident(measurement)} WHERE {self._where(where)} GROUP BY time(1m), device "
             f"fill(none)")
        out: dict[str, MinuteCounts] = {}
        for series in self.client.query(q, epoch="ms"):
            minutes = (np.array([row[0] for row in series.values], dtype=np.int64) // 1000 - self.month.start_s) // 60
            keep = (minutes >= 0) & (minutes < self.month.minutes)
            columns = {name: _column(series.values, i)[keep] for i, name in enumerate(series.columns) if name != "time"}
            out[series.tags.get("device", "")] = MinuteCounts(minutes[keep], columns)
        return out

    def daily(self, measurement: str, statements: Mapping[str, tuple[str, str]]) -> dict[str, dict[str, np.ndarray]]:
        """Per device, per named statement ((aggregate, where), e.g. ("sum(pv_w)", "grid_ok = false")), one
        number per local day of the month (0 where nothing matched)."""
        names = list(statements)
        q = ";".join(f"SELECT {aggregate} FROM {quote_ident(measurement)} WHERE {self._where(where)} GROUP BY "
                     f"time(1d), device fill(0) {self._tz}" for aggregate, where in statements.values())
        days = {d: i for i, d in enumerate(self.month.days)}
        out: dict[str, dict[str, np.ndarray]] = {}
        for series in self.client.query(q, epoch="ms"):
            values = out.setdefault(series.tags.get("device", ""), {n: np.zeros(len(days)) for n in names})
            column = values[names[series.statement_id]]
            for at, value in series.values:
                index = days.get(datetime.fromtimestamp(at / 1000, self.month.tz).date())
                if index is not None and value is not None:
                    column[index] += float(value)
        return out

    def buckets(self, measurement: str, select: str, every: str) -> dict[str, Rows]:
        """Per device, aggregates per `every` bucket (e.g. "15m"), empty buckets left out."""
        q = (f"SELECT {select} FROM {quote_ident(measurement)} WHERE {self._where('')} GROUP BY time({every}), device "
             f"fill(none)")
        out: dict[str, Rows] = {}
        for series in self.client.query(q, epoch="ms"):
            times = np.array([row[0] for row in series.values], dtype=np.int64)
            columns = {name: _column(series.values, i) for i, name in enumerate(series.columns) if name != "time"}
            out[series.tags.get("device", "")] = Rows(times, columns)
        return out


def _column(values: tuple[tuple[object, ...], ...], index: int) -> np.ndarray:
    """One column as floats (nan for null), or as objects when it holds text (a `mode()` of a string field)."""
    cells = [row[index] for row in values]
    if any(isinstance(cell, str) for cell in cells):
        return np.array(cells, dtype=object)
    return np.array([np.nan if cell is None else cell for cell in cells], dtype=float)


def minute_mask(month: ReportMonth, found: MinuteCounts | None, keep: np.ndarray | None = None) -> np.ndarray:
    """Per minute of the month: listed in `found` (where `keep`, if given, is true)."""
    mask = np.zeros(month.minutes, dtype=bool)
    if found is not None:
        mask[found.minutes if keep is None else found.minutes[keep]] = True
    return mask


def minute_values(month: ReportMonth, found: MinuteCounts | None, column: str, empty: float = 0.0) -> np.ndarray:
    """Per minute of the month: `column` of `found`, `empty` where it has no row."""
    values = np.full(month.minutes, empty)
    if found is not None:
        values[found.minutes] = found.columns[column]
    return values


def all_missing(month: ReportMonth) -> Coverage:
    """The coverage of a device without a single reading this month."""
    return Coverage(np.ones(month.minutes, dtype=bool), 1.0)
