"""Where the sun is, and how much of it reaches a tilted-but-simple PV array.

NOAA's low-precision solar position (declination and equation of time from the fractional year,
accurate to about a minute of time), and a clear-sky irradiance from the air mass. Pure functions of
epoch seconds and the site's latitude/longitude; no time zone is needed, solar time comes from the
longitude.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

SOLAR_CONSTANT_W_M2 = 1361.0
STC_IRRADIANCE_W_M2 = 1000.0
"""kWp is rated at 1000 W/m² (standard test conditions)."""


def _fractional_year(epoch_s: float) -> tuple[float, float]:
    """(gamma radians, minutes since UTC midnight)."""
    dt = datetime.fromtimestamp(epoch_s, UTC)
    day_of_year = dt.timetuple().tm_yday
    minutes = dt.hour * 60 + dt.minute + dt.second / 60 + dt.microsecond / 60e6
    return 2 * math.pi / 365 * (day_of_year - 1 + (minutes / 60 - 12) / 24), minutes


def _equation_of_time_min(gamma: float) -> float:
    """Apparent minus mean solar time, in minutes."""
    return 229.18 * (0.000075 + 0.001868 * math.cos(gamma) - 0.032077 * math.sin(gamma)
                     - 0.014615 * math.cos(2 * gamma) - 0.040849 * math.sin(2 * gamma))


def solar_elevation_deg(epoch_s: float, latitude: float, longitude: float) -> float:
    """Elevation of the sun above the horizon in degrees (negative at night)."""
    gamma, minutes = _fractional_year(epoch_s)
    eqtime = _equation_of_time_min(gamma)
    decl = (0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma)
            - 0.006758 * math.cos(2 * gamma) + 0.000907 * math.sin(2 * gamma)
            - 0.002697 * math.cos(3 * gamma) + 0.00148 * math.sin(3 * gamma))
    true_solar_min = minutes + eqtime + 4 * longitude
    hour_angle = math.radians(true_solar_min / 4 - 180)
    lat = math.radians(latitude)
    cos_zenith = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)
    return 90 - math.degrees(math.acos(max(-1.0, min(1.0, cos_zenith))))


def clear_sky_irradiance_w_m2(elevation_deg: float) -> float:
    """Global horizontal irradiance under a clear sky (Meinel's air-mass model); 0 below the horizon."""
    if elevation_deg <= 0:
        return 0.0
    cos_zenith = math.sin(math.radians(elevation_deg))
    air_mass = 1 / (cos_zenith + 0.50572 * (elevation_deg + 6.07995) ** -1.6364)
    direct_normal = SOLAR_CONSTANT_W_M2 * 0.7 ** (air_mass ** 0.678)
    return 1.1 * direct_normal * cos_zenith  # +10 % diffuse


def solar_noon_utc_s(day_start_utc_s: float, longitude: float) -> float:
    """Epoch seconds of solar noon on the UTC day starting at `day_start_utc_s` (±1 min)."""
    gamma, _ = _fractional_year(day_start_utc_s + 12 * 3600)
    eqtime = _equation_of_time_min(gamma)
    return day_start_utc_s + (720 - 4 * longitude - eqtime) * 60
