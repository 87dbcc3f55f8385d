"""What every device model sees at one simulated instant: the site-wide conditions, computed once
per step (local time, schedule, sun, weather) so a thousand devices do not recompute them."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StepContext:
    t: float
    """Simulated time, epoch seconds (UTC)."""
    dt: float
    """Seconds since the previous step."""
    local_hour: float
    """Hour of the local day, 0 <= h < 24 (fractional)."""
    weekday: int
    """Local weekday, 0 = Monday."""
    site_open: bool
    scheduled_outage: bool
    """The published load-shedding schedule has the grid out now."""
    irradiance_w_m2: float
    """Clear-sky global irradiance at the site."""
    ambient_c: float
    expected_occupancy: float
    """The office-day profile: the expected fraction of capacity present, 0..1."""


FRIDAY = 4


def office_profile(local_hour: float, weekday: int, since_open_h: float | None, to_close_h: float | None) -> float:
    """Expected fraction of desks in use: arrivals over the first hour, a lunch dip 13:00-14:00, the
    Friday midday prayer dip 12:30-14:30, departures over the last hour; 0 outside opening hours
    (`since_open_h`/`to_close_h` None)."""
    if since_open_h is None or to_close_h is None:
        return 0.0
    level = 0.85
    if since_open_h < 1:
        level *= 0.25 + 0.75 * since_open_h
    if to_close_h < 1:
        level *= 0.3 + 0.7 * to_close_h
    if weekday == FRIDAY and 12.5 <= local_hour < 14.5:
        level *= 0.2
    elif 13 <= local_hour < 14:
        level *= 0.55
    return level


def ambient_c(local_hour: float, day_of_year: int) -> float:
    """Air temperature near the park: ~22 °C mean in January, ~35 °C in June, ±6 °C daily swing peaking at 15:00."""
    seasonal = 28.5 - 7 * math.cos(2 * math.pi * (day_of_year - 15) / 365)
    return seasonal + 6 * math.cos(2 * math.pi * (local_hour - 15) / 24)
