"""The report month: from local midnight of the 1st to local midnight of the next 1st in the site's
time zone, cut into minutes (InfluxDB's GROUP BY time(1m) buckets, which every zone's offset keeps
aligned) and local days. A month with a clock change has 60 minutes more or fewer; its days are the
local calendar days, one of them 23 or 25 hours long.

A month still running is reported through its last complete local day (`ReportMonth.so_far`): the
days to come are not "no data"."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

import numpy as np

WEEK_S = 7 * 86_400
_MONTH_RE = re.compile(r"\A(\d{4})-(\d{2})\Z")


class BadMonth(ValueError):
    """A month that is not 'YYYY-MM'."""


@dataclass(frozen=True)
class ReportMonth:
    year: int
    month: int
    tz: ZoneInfo
    until: date | None = None
    """The first local day left out (a month so far); None: the whole month."""

    @classmethod
    def parse(cls, text: str, tz: ZoneInfo) -> ReportMonth:
        """'2026-11' → the month in `tz`. Raises BadMonth naming the expected form."""
        match = _MONTH_RE.match(text.strip())
        if not match or not 1 <= int(match.group(2)) <= 12 or not 1971 <= int(match.group(1)) <= 2200:
            # InfluxDB's timestamps end in 2262; 1970 and before cannot hold a reading with a time zone ahead of UTC.
            raise BadMonth(f"month {text!r} is not 'YYYY-MM' between 1971 and 2200 (e.g. '2026-11')")
        return cls(int(match.group(1)), int(match.group(2)), tz)

    @classmethod
    def so_far(cls, text: str, tz: ZoneInfo, today: date) -> ReportMonth:
        """Month `text` through the day before `today` (local): the whole month once it has ended.
        Raises BadMonth for a malformed month, and for one that has not begun a day before `today`."""
        whole = cls.parse(text, tz)
        if today >= whole._following:
            return whole
        if today <= date(whole.year, whole.month, 1):
            raise BadMonth(f"month {text} has no complete day before {today.isoformat()}: nothing to report yet")
        return cls(whole.year, whole.month, tz, today)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def complete(self) -> bool:
        """Every day of the calendar month is in it."""
        return self.until is None

    @property
    def _following(self) -> date:
        return date(self.year + self.month // 12, self.month % 12 + 1, 1)

    @property
    def _first_day_after(self) -> date:
        return self._following if self.until is None else min(self.until, self._following)

    @cached_property
    def start_s(self) -> int:
        return int(datetime.combine(date(self.year, self.month, 1), time(0), self.tz).timestamp())

    @cached_property
    def end_s(self) -> int:
        return int(datetime.combine(self._first_day_after, time(0), self.tz).timestamp())

    @property
    def minutes(self) -> int:
        return (self.end_s - self.start_s) // 60

    @cached_property
    def days(self) -> tuple[date, ...]:
        first = date(self.year, self.month, 1)
        count = (self._first_day_after - first).days
        return tuple(first + timedelta(days=i) for i in range(count))

    @cached_property
    def day_starts_s(self) -> tuple[int, ...]:
        """Epoch seconds of each day's local midnight, one per `days`."""
        return tuple(int(datetime.combine(d, time(0), self.tz).timestamp()) for d in self.days)

    @property
    def weeks(self) -> int:
        """The report's weeks: from the 1st, the 8th, the 15th, the 22nd and the 29th."""
        return -(-len(self.days) // 7)

    def week_of(self, epoch_ms: np.ndarray) -> np.ndarray:
        """For each time (epoch ms), the index of its week (7 × 24 h from the month's start)."""
        return ((epoch_ms // 1000 - self.start_s) // WEEK_S).astype(int)

    @cached_property
    def day_of_minute(self) -> np.ndarray:
        """For each minute of the month, the index of its local day in `days`."""
        offsets = (np.array(self.day_starts_s) - self.start_s) // 60
        return np.searchsorted(offsets, np.arange(self.minutes), side="right") - 1

    def minute_of(self, epoch_ms: int) -> int:
        """Index of the minute holding `epoch_ms` (may fall outside 0..minutes-1)."""
        return (epoch_ms // 1000 - self.start_s) // 60

    def epoch_of(self, minute: int) -> int:
        return self.start_s + 60 * minute

    def local(self, minute: int) -> datetime:
        return datetime.fromtimestamp(self.epoch_of(minute), self.tz)

    def mask_of(self, intervals: list[tuple[float, float]]) -> np.ndarray:
        """Minutes whose start lies in one of `intervals` (epoch seconds, [start, end))."""
        mask = np.zeros(self.minutes, dtype=bool)
        for start, end in intervals:
            first = max(0, int(np.ceil((start - self.start_s) / 60)))
            last = min(self.minutes, int(np.ceil((end - self.start_s) / 60)))
            if last > first:
                mask[first:last] = True
        return mask

    def per_day(self, mask: np.ndarray) -> np.ndarray:
        """Count of True minutes per local day."""
        return np.bincount(self.day_of_minute[mask], minlength=len(self.days))

    def minutes_per_day(self) -> np.ndarray:
        return np.bincount(self.day_of_minute, minlength=len(self.days))
