"""A month with a clock change: the report's days are the local calendar days, one of them 25 hours
long, in the minutes it counts and in the energy InfluxDB sums per day (GROUP BY time(1d) tz(...))."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.contract import DeviceKey, Kind, Reading
from core.influxql import InfluxQLClient
from core.site import load_site
from reports.energy import energy_report
from reports.month import ReportMonth
from reports.source import ReportSource
from tests.integration.api_stack import write_readings

pytestmark = pytest.mark.integration
LONDON = ZoneInfo("Europe/London")
SITE = """\
id: uk
name: UK office
timezone: Europe/London
latitude: 51.5
longitude: 0
inverters: [{id: inv, battery_kwh: 10, pv_kwp: 3}]
"""


def test_the_day_the_clocks_go_back_has_25_hours(influx_db: InfluxQLClient, tmp_path: Path) -> None:
    key = DeviceKey("uk", Kind.INVERTER, "inv")
    start = int(datetime(2026, 10, 24, tzinfo=LONDON).timestamp())
    end = int(datetime(2026, 10, 27, tzinfo=LONDON).timestamp())
    readings = []
    for seq, t in enumerate(range(start, end, 60)):
        on_battery = datetime.fromtimestamp(t, LONDON).day == 25
        readings.append(Reading(key, t * 1000, seq, {
            "grid_v": 0.0 if on_battery else 230.0, "grid_ok": not on_battery,
            "mode": "battery" if on_battery else "grid",
            "battery_soc_pct": 80.0, "battery_v": 51.0, "battery_a": -10.0 if on_battery else 0.0, "pv_w": 600.0,
            "load_w": 900.0}))
    write_readings(influx_db, readings)
    (tmp_path / "uk.yaml").write_text(SITE)
    month = ReportMonth.parse("2026-10", LONDON)
    doc = energy_report(ReportSource(influx_db, "uk", month), load_site(tmp_path / "uk.yaml"))

    modes = doc.figures["minutes_by_mode"]["inv"]
    assert modes["battery"][24] == 25 * 60 and modes["grid"][23] == 24 * 60 and modes["grid"][25] == 24 * 60
    assert doc.figures["no_data_min"]["inv"][22] == 24 * 60 and doc.figures["no_data_min"]["inv"][24] == 0
    daily = {row[0]: row for row in doc.tables[0].rows}
    pv = doc.tables[0].columns.index("pv_kwh")
    assert (daily["2026-10-24"][pv], daily["2026-10-25"][pv]) == (14.4, 15.0)  # 600 W for 24 h, for 25 h
    assert doc.figures["load_shedding_unscheduled_min"][24] == 25 * 60
    assert any("without readings" in note for note in doc.not_judged)
