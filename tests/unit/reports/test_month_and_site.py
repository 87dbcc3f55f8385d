"""The report month in a zone with a clock change, the site file's report keys refused with their
line, and the minute classification's rules on hand-made minutes."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from core.site import SiteFileError, load_site
from reports.isp import MinuteClass, UplinkMinutes, classify, outages
from reports.month import BadMonth, ReportMonth


def test_a_month_with_a_clock_change_has_its_25_hour_day() -> None:
    month = ReportMonth.parse("2026-10", ZoneInfo("Europe/London"))
    per_day = month.minutes_per_day()
    assert month.minutes == 31 * 1440 + 60
    assert per_day[24] == 25 * 60  # 25 October 2026: clocks go back
    assert per_day.sum() == month.minutes
    assert month.local(0).hour == 0 and month.local(month.minutes - 1).strftime("%d %H:%M") == "31 23:59"


@pytest.mark.parametrize("text", ["2026-13", "2026-1", "november", "1969-01", "9999-12", "2026-00"])
def test_bad_months_are_refused_naming_the_form(text: str) -> None:
    with pytest.raises(BadMonth, match="YYYY-MM"):
        ReportMonth.parse(text, ZoneInfo("Asia/Karachi"))


def test_site_file_report_keys_are_refused_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("id: s\nname: S\nlatitude: 1\nlongitude: 1\ninverters: [{id: i, battery_kwh: 5, pv_kwp: 1}]\n"
                    "uplinks:\n  - id: u\n    isp: X\n    iface: eth0\n    sla_pct: 101\n"
                    "    maintenance: [{start: '2026-11-12 04:00', end: '2026-11-12 02:00'}]\n"
                    "tariffs: {currency: rupees, grid_per_kwh: 60, diesel_per_litre: 280}\n")
    with pytest.raises(SiteFileError) as err:
        load_site(path)
    text = str(err.value)
    assert f"{path}:10: uplinks.0.sla_pct:" in text
    assert f"{path}:11: uplinks.0.maintenance.0: maintenance ends (2026-11-12 02:00) before it starts" in text
    assert f"{path}:12: tariffs.currency:" in text


def _minutes(n: int = 10, **overrides: np.ndarray | None) -> UplinkMinutes:
    base = {"down": np.zeros(n, bool), "missing": np.zeros(n, bool), "loss_pct": np.full(n, np.nan),
            "link_down": np.zeros(n, bool), "maintenance": np.zeros(n, bool), "power_out": np.zeros(n, bool),
            "power_missing": np.zeros(n, bool)}
    return UplinkMinutes(**(base | overrides))


def test_classification_rules() -> None:
    down = np.array([0, 1, 1, 1, 1, 1, 1, 1, 0, 1], bool)
    power_out = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0, 0], bool)
    maintenance = np.array([0, 0, 0, 0, 0, 0, 1, 0, 0, 0], bool)
    power_missing = np.array([0, 0, 0, 0, 0, 0, 0, 1, 0, 0], bool)
    missing = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 1], bool)
    m = _minutes(down=down, power_out=power_out, maintenance=maintenance, power_missing=power_missing,
                 missing=missing, loss_pct=np.where(down, 100.0, np.nan))
    got = [MinuteClass(c).name for c in classify(m)]
    # minute 2 power out; 3 and 4 the router boots; 5 the ISP; 6 announced; 7 power unknown; 9 no data
    assert got == ["UP", "DOWN_ISP", "DOWN_POWER", "DOWN_POWER", "DOWN_POWER", "DOWN_ISP", "MAINTENANCE",
                   "UNKNOWN", "UP", "UNKNOWN"]
    found = [(o.start_minute, o.end_minute, o.cause.name) for o in outages(classify(m), m)]
    assert found == [(1, 2, "DOWN_ISP"), (2, 5, "DOWN_POWER"), (5, 6, "DOWN_ISP"), (6, 7, "MAINTENANCE")]


def test_an_uplink_with_its_own_supply_is_never_down_for_our_power() -> None:
    m = _minutes(down=np.ones(4, bool), power_out=None, power_missing=None, n=4)
    assert set(classify(m).tolist()) == {MinuteClass.DOWN_ISP}


def test_coulomb_counting_on_hand_made_buckets() -> None:
    # A 200 Ah battery discharged at 40 A for 2.5 h (10 buckets of 15 min) falls 50 points; a pause, a
    # shallow 10-point dip (left out of the estimate), then a recharge.
    from reports.battery import discharge_swings

    soc = np.array([100.0] + [100 - 5 * k for k in range(1, 11)] + [50, 60, 70, 60, 75, 90])
    amps = np.array([0.0] + [-40.0] * 10 + [0, 40, 40, -40, 60, 60])
    swings = discharge_swings(soc, amps)
    assert [(s.first, s.last, s.depth_pct, s.ah) for s in swings] == [(0, 10, 50.0, 100.0), (13, 14, 10.0, 10.0)]
    assert 100 * swings[0].ah / swings[0].depth_pct == 200.0
