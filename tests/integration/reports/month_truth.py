"""A simulated month of a small site written into a real InfluxDB 1.6.7 (1 reading per 60 s, on the
minute), with the truth the simulator knew at each minute: which uplink outage the scenario injected,
whether the router had power, each inverter's mode and grid, the battery's capacity and cell spread."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import urllib3

from core.site import load_site
from simulators import scenario as sc
from simulators.backfill import backfill
from simulators.world import Simulation

SITE_YAML = """\
id: testpark
name: Test park
timezone: Asia/Karachi
latitude: 29.8
longitude: 71.8
opening_hours: {daily: ["09:00-18:00"], sun: []}
load_shedding: {daily: ["10:00-11:00", "16:00-17:00", "22:00-23:00"]}
inverters:
  - id: inv-a
    battery_kwh: 10
    pv_kwp: 4
    rated_w: 6000
    simulation: {max_charge_w: 3000, load_base_w: 800, load_peak_w: 2500, capacity_fade_pct_per_month: 3,
                 cell_spread_mv: 25, cell_spread_growth_mv_per_month: 90}
uplinks:
  - id: up-isp
    isp: PTCL
    iface: eth1
    powered_by: inv-a
    sla_pct: 99.5
    maintenance: [{start: "2026-11-12 02:00", end: "2026-11-12 04:00", note: "notice 41"}]
  - {id: up-own, isp: Jazz, iface: wwan0, role: backup}
generators:
  - {id: gen-a, feeds: inv-a, rated_w: 6000, tank_l: 60, auto_start_soc_pct: 30, auto_stop_soc_pct: 80}
tariffs: {currency: PKR, grid_per_kwh: 62, diesel_per_litre: 285}
"""
TZ = ZoneInfo("Asia/Karachi")
START = datetime.combine(date(2026, 11, 1), time(0), TZ).timestamp()
DAYS = 30
GAP = (datetime(2026, 11, 25, 6, 0, tzinfo=TZ).timestamp(), datetime(2026, 11, 25, 8, 30, tzinfo=TZ).timestamp())
"""facmon itself was down: nothing of any device stored."""
UP_OWN_FROM = datetime(2026, 11, 3, 12, 0, tzinfo=TZ).timestamp()
"""The second uplink's probe was installed mid-month."""


def scenario() -> sc.Scenario:
    events: list[dict] = [
        {"type": "uplink_outage", "device": "up-isp", "at": "+2d3h", "duration": "45m", "mode": "fiber_cut"},
        {"type": "uplink_outage", "device": "up-isp", "at": "+19d14h7m", "duration": "1h30m", "mode": "link_down"},
        {"type": "uplink_outage", "device": "up-own", "at": "+8d20h", "duration": "3h"},
    ]
    # Long evening outages drain the battery deeply; on some the generator fails to start, the battery
    # cuts off and the router loses its power.
    for day in (1, 4, 6, 9, 13, 16, 21, 24, 27):
        long = day in (6, 16, 27)
        events.append({"type": "grid_outage", "devices": ["inv-a"], "at": f"+{day}d18h",
                       "duration": "14h" if long else "9h"})
    for day in (6, 16, 27):
        events.append({"type": "generator_fault", "device": "gen-a", "fault": "fail_to_start",
                       "at": f"+{day}d18h", "duration": "9h"})
    return sc.Scenario.model_validate({"name": "report-month", "duration": DAYS * 86400,
                                       "initial": {"battery_soc_pct": {"inv-a": 90}}, "events": events})


@dataclass
class Truth:
    minutes: int
    isp_class: dict[str, np.ndarray] = field(default_factory=dict)
    """Per uplink, per minute: up, down_isp, down_power, maintenance, unknown (the report's names)."""
    mode: list[str] = field(default_factory=list)
    grid_out: list[bool] = field(default_factory=list)
    scheduled: list[bool] = field(default_factory=list)
    capacity_ah: list[float] = field(default_factory=list)
    cell_spread_mv: list[float] = field(default_factory=list)
    stored: list[bool] = field(default_factory=list)


def write_month(tmp: Path, influx_url: str, database: str) -> Truth:
    """Simulate the month, keep the truth, write the readings. InfluxDB takes a batch on its own core
    while the next one is simulated (one write in flight, in order)."""
    site_path = tmp / "testpark.yaml"
    site_path.write_text(SITE_YAML)
    site = load_site(site_path)
    sim = Simulation(site, scenario(), seed=7, start_s=START, step_s=60.0, duration_s=DAYS * 86400 - 60)
    truth = Truth(DAYS * 1440)
    step_t = START + 60.0 * np.arange(truth.minutes)
    scheduled = _within(step_t, site.shedding_windows(START, START + DAYS * 86400))
    maintenance = {u.id: _within(step_t, u.maintenance_intervals(site.tz)) for u in site.uplinks}
    classes: dict[str, list[str]] = {u.id: [] for u in site.uplinks}
    http = urllib3.PoolManager()
    batch: list[str] = []
    with ThreadPoolExecutor(1) as writer:
        in_flight: Future[None] | None = None
        for index, step in enumerate(backfill(sim)):
            stored = not GAP[0] <= step.t < GAP[1]
            inv = step.metrics["inv-a"]
            truth.stored.append(stored)
            truth.mode.append(inv["mode"])
            truth.grid_out.append(not inv["grid_ok"])
            truth.capacity_ah.append(float(sim.inverter_fleet.capacity_ah[0]))
            truth.cell_spread_mv.append(float(sim.inverter_fleet.cell_spread_mv[0]))
            powered = bool(sim.inverter_fleet.site_powered[0])
            for uplink in site.uplinks:
                present = stored and (uplink.id != "up-own" or step.t >= UP_OWN_FROM)
                cut = bool(sim.uplinks[uplink.id].outages)
                own_power = uplink.powered_by is None or powered
                down = cut or not own_power
                classes[uplink.id].append("unknown" if not present else "up" if not down else
                                          "maintenance" if maintenance[uplink.id][index] else
                                          "down_power" if not own_power else "down_isp")
            if stored:
                batch.extend(line for line in step.lines
                             if not (line.startswith("uplink,device=up-own") and step.t < UP_OWN_FROM))
            if len(batch) >= 20_000:
                if in_flight is not None:
                    in_flight.result()
                in_flight = writer.submit(_post, http, influx_url, database, batch)
                batch = []
        if in_flight is not None:
            in_flight.result()
    _post(http, influx_url, database, batch)
    truth.scheduled = scheduled.tolist()
    truth.isp_class = {k: np.array(v) for k, v in classes.items()}
    return truth


def _within(t: np.ndarray, intervals: list[tuple[float, float]]) -> np.ndarray:
    """Per time in `t`: inside one of `intervals` ([start, end))."""
    inside = np.zeros(len(t), dtype=bool)
    for start, end in intervals:
        inside |= (t >= start) & (t < end)
    return inside


def _post(http: urllib3.PoolManager, url: str, database: str, lines: list[str]) -> None:
    if not lines:
        return
    response = http.request("POST", f"{url}/write?db={database}&precision=ns", body="\n".join(lines).encode())
    assert response.status == 204, response.data[:300]
