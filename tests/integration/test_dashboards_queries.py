"""Every panel query of every dashboard, run against a real InfluxDB (Debian's 1.6.7) filled by the
simulators, returns the expected series.

Data: one simulated day at the park under the load-shedding-day scenario (simulators.world, 60 s
steps), each message decoded with the wire contract and written as line protocol to /write — the
points the collector would write. `facmon_alerts` is not written by the rules engine yet in this
tree, so three alert transitions in the documented schema are written by the test itself.

Each query is substituted as Grafana would (time range, $__interval, $site/$device/... variables)
and must return non-empty series with the right columns and tags; the panels whose numbers a
manager acts on are checked against values computed here from the published readings.
"""

from __future__ import annotations

import itertools
import urllib.request
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.contract import Kind, Reading
from core.decode import DecodeLimits, decode_message
from core.line_protocol import reading_to_line
from core.site import load_site
from dashboards import monthly, network, occupancy, overview, power
from dashboards.build import DashboardOptions, build_dashboards, dashboard_json
from dashboards.queries import ALL_VALUE, TimeRange, render_query
from facmon.servers import InfluxDB
from simulators.scenario import load_scenario
from simulators.world import Simulation

REPO = Path(__file__).resolve().parents[2]
PARK = load_site(REPO / "simulators" / "sites" / "park.yaml")
TZ = ZoneInfo("Asia/Karachi")
START_S = datetime(2026, 3, 2, 0, 0, tzinfo=TZ).timestamp()  # a Monday, local midnight
DURATION_S = 86_400
STEP_S = 60.0
DB = "dashboards"
ALERTS = [  # (ms after start, alertname, severity, state, text)
    (14 * 3600_000 + 60_000, "GridDown", "critical", "firing", "grid down at park"),
    (16 * 3600_000 + 60_000, "GridDown", "critical", "resolved", "grid back at park"),
    (20 * 3600_000, "UplinkDegraded", "warning", "firing", "PTCL loss above 5 %"),
]


def _simulated_readings() -> list[Reading]:
    scenario = load_scenario(REPO / "simulators" / "scenarios" / "load-shedding-day.yaml")
    simulation = Simulation(PARK, scenario, seed=7, start_s=START_S, step_s=STEP_S, duration_s=DURATION_S)
    readings = []
    for step in simulation.steps():
        for message in step.messages:
            decoded = decode_message(message.topic, message.payload, step.t, DecodeLimits())
            if isinstance(decoded, Reading):
                readings.append(decoded)
    return readings


def _write(influxdb: InfluxDB, lines: list[str]) -> None:
    for i in range(0, len(lines), 5000):
        body = "\n".join(lines[i:i + 5000]).encode()
        request = urllib.request.Request(f"{influxdb.url}/write?db={DB}", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 204


@pytest.fixture(scope="module")
def filled(influxdb: InfluxDB) -> list[Reading]:
    influxdb.create_database(DB)
    readings = _simulated_readings()
    start_ms = int(START_S * 1000)
    alert_lines = [f"facmon_alerts,alertname={name},severity={sev},site=park,state={state} text=\"{text}\" "
                   f"{(start_ms + offset) * 1_000_000}" for offset, name, sev, state, text in ALERTS]
    _write(influxdb, [reading_to_line(r) for r in readings] + alert_lines)
    yield readings
    influxdb.drop_database(DB)


RANGE = TimeRange(int(START_S * 1000), int((START_S + DURATION_S) * 1000), "10m")
NOW = TimeRange(RANGE.from_ms, RANGE.from_ms + 15 * 3600_000, "10m")
"""A range ending at 15:00 local, in the outage, with rooms occupied and one alert firing: every
"now" panel has something to show."""
ALL = {"site": ["park"], "device": [ALL_VALUE], "isp": [ALL_VALUE], "room": [ALL_VALUE]}


def _query(influxdb: InfluxDB, text: str, variables: dict[str, list[str]] = ALL, time_range: TimeRange = RANGE) -> list:
    return influxdb.query(render_query(text, time_range, variables), DB)


def _targets() -> list[tuple[str, str, dict]]:
    """Every panel target except the Monthly dashboard's: those read the figures the reports store, and
    tests/integration/reports/test_monthly_dashboard.py runs them against a stored simulated month."""
    out = []
    for built in build_dashboards(DashboardOptions.from_sites([PARK])):
        if built.uid == monthly.UID:
            continue
        data = dashboard_json(built)
        for panel in data["panels"]:
            for target in panel.get("targets", []):
                out.append((built.uid, panel["title"], target))
    return out


TARGETS = _targets()


@pytest.mark.parametrize(("uid", "title", "target"), TARGETS,
                         ids=[f"{u.removeprefix('facmon-')}:{t[:30]}:{tg['refId']}" for u, t, tg in TARGETS])
def test_every_panel_query_returns_series(influxdb: InfluxDB, filled: list[Reading], uid: str, title: str,
                                          target: dict) -> None:
    series = _query(influxdb, target["query"], time_range=NOW if uid == overview.UID else RANGE)
    if target["query"] == power.FAULTS and not any(r.metrics.get("fault_code") for r in filled):
        assert series == [], "no reading had a fault code, so no fault may be counted"
        return
    assert series, f"{uid} / {title}: no series"
    for s in series:
        assert s.columns[0] == "time" and len(s.columns) >= 2
        assert any(v is not None for row in s.values for v in row[1:]), f"{uid} / {title}: only nulls"


def test_the_annotation_query_returns_the_alert_transitions(influxdb: InfluxDB, filled: list[Reading]) -> None:
    data = dashboard_json(build_dashboards(DashboardOptions())[0])
    [annotation] = data["annotations"]["list"]
    [series] = _query(influxdb, annotation["query"])
    assert series.columns == ("time", "text", "alertname", "severity", "state")
    assert [row[1:] for row in series.values] == [(t, n, s, st) for _, n, s, st, t in ALERTS]


def _last(readings: list[Reading], kind: Kind, metric: str, until_ms: int) -> dict[str, object]:
    out: dict[str, object] = {}
    for r in sorted((r for r in readings if r.device.kind is kind and r.ts_ms <= until_ms), key=lambda r: r.ts_ms):
        if r.metrics.get(metric) is not None:
            out[r.device.device] = r.metrics[metric]
    return out


def test_overview_now_values_match_the_last_published(influxdb: InfluxDB, filled: list[Reading]) -> None:
    got = {s.tags["device"]: s.values[0][1] for s in _query(influxdb, overview.SOC_NOW, time_range=NOW)}
    assert got == pytest.approx(_last(filled, Kind.INVERTER, "battery_soc_pct", NOW.to_ms))
    got = {s.tags["device"]: s.values[0][1] for s in _query(influxdb, overview.POWER_SOURCE_NOW, time_range=NOW)}
    assert got == _last(filled, Kind.INVERTER, "mode", NOW.to_ms)
    assert set(got.values()) <= {"battery", "solar"}  # 15:00 is in the afternoon outage
    rooms = _last(filled, Kind.OCCUPANCY, "occupied", NOW.to_ms)
    [occupied] = _query(influxdb, overview.ROOMS_OCCUPIED_NOW, time_range=NOW)
    assert occupied.values[0][1] == sum(1 for v in rooms.values() if v) > 0
    [firing] = _query(influxdb, overview.ACTIVE_ALERTS, time_range=NOW)
    assert firing.values[0][1] == 1  # GridDown fired at 14:01; UplinkDegraded comes at 20:00
    [firing] = _query(influxdb, overview.ACTIVE_ALERTS)
    assert firing.values[0][1] == 1  # by midnight GridDown is resolved and UplinkDegraded fires


def test_device_variable_narrows_the_query(influxdb: InfluxDB, filled: list[Reading]) -> None:
    series = _query(influxdb, power.SOC, {**ALL, "device": ["inv-lab"]})
    assert [s.tags["device"] for s in series] == ["inv-lab"]
    assert _query(influxdb, power.SOC, {**ALL, "site": ["elsewhere"]}) == []


def test_availability_per_isp_matches_the_readings(influxdb: InfluxDB, filled: list[Reading]) -> None:
    answered: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in filled:
        if r.device.kind is Kind.UPLINK:
            answered[str(r.metrics["isp"])][0] += r.metrics.get("rtt_ms") is not None
            answered[str(r.metrics["isp"])][1] += 1
    got = {s.tags["isp"]: s.values[0][1] for s in _query(influxdb, network.AVAILABILITY)}
    assert got == pytest.approx({isp: 100 * a / n for isp, (a, n) in answered.items()})
    assert set(got) == {"PTCL", "Jazz 4G"}


def test_grid_timeline_shows_the_afternoon_outage(influxdb: InfluxDB, filled: list[Reading]) -> None:
    series = _query(influxdb, power.GRID_TIMELINE, {**ALL, "device": ["inv-main"]})
    by_hour = {datetime.fromtimestamp(t / 1000, TZ).strftime("%H:%M"): v for t, v in series[0].values}
    assert by_hour["15:00"] is False and by_hour["13:00"] is True and by_hour["12:00"] is True


def test_solar_energy_per_day_is_the_integral_of_pv_power(influxdb: InfluxDB, filled: list[Reading]) -> None:
    query = power.ENERGY_SOLAR.format(tz="Asia/Karachi")
    got = {s.tags["device"]: sum(v for _, v in s.values if v is not None) for s in _query(influxdb, query)}
    expected = {}
    for device in ("inv-main", "inv-lab"):
        points = sorted((r.ts_ms, float(r.metrics["pv_w"])) for r in filled
                        if r.device.kind is Kind.INVERTER and r.device.device == device)
        wh = sum((t2 - t1) / 3_600_000 * (p1 + p2) / 2 for (t1, p1), (t2, p2) in itertools.pairwise(points))
        expected[device] = wh / 1000
    assert got == pytest.approx(expected, rel=1e-6)
    assert all(kwh > 1 for kwh in got.values())  # a sunny March day with 6-10 kWp


def test_peak_people_per_room(influxdb: InfluxDB, filled: list[Reading]) -> None:
    peaks: dict[str, int] = {}
    for r in filled:
        if r.device.kind is Kind.OCCUPANCY and r.metrics.get("people") is not None:
            room = str(r.metrics["room"])
            peaks[room] = max(peaks.get(room, 0), int(r.metrics["people"]))
    got = {s.tags["room"]: s.values[0][1] for s in _query(influxdb, occupancy.PEAK_PEOPLE)}
    assert got == peaks and "Meeting room" not in got  # the PIR-only room counts no people


def test_runtime_at_current_drain_during_the_outage(influxdb: InfluxDB, filled: list[Reading]) -> None:
    # The panel looks at the last 30 minutes. The grid is out 14:00-17:00 (the scenario's 2 h outage,
    # then the scheduled 16:00-17:00 load-shedding). Until ~16:00 the sun carries both inverters'
    # loads on full batteries: "not discharging", not "0 h". From ~16:00 the PV falls below the load
    # and both batteries drain: a finite runtime. Which of the two a window shows follows from the
    # physics (the sun's height, the schedule), not from one seed's cloud dips.
    for start_h, draining in ((15.0, False), (16.25, True)):
        window = TimeRange(int((START_S + start_h * 3600) * 1000), int((START_S + (start_h + 0.5) * 3600) * 1000),
                           "1m")
        series = influxdb.query(render_query(overview.RUNTIME_NOW, window, ALL), DB)
        runtime_h = {s.tags["device"]: s.values[0][1] for s in series}
        expected = {}
        for device in ("inv-main", "inv-lab"):
            soc = [float(r.metrics["battery_soc_pct"]) for r in sorted(filled, key=lambda r: r.ts_ms)
                   if r.device.device == device and window.from_ms <= r.ts_ms <= window.to_ms]
            expected[device] = soc[-1] * overview.RUNTIME_WINDOW_H / (soc[0] - soc[-1] + overview.RUNTIME_EPSILON_PCT)
        assert runtime_h == pytest.approx(expected), start_h
        for device, hours in runtime_h.items():
            if draining:
                assert 0 < hours < overview.NOT_DISCHARGING_ABOVE_H, (start_h, device, hours)
            else:
                assert hours >= overview.NOT_DISCHARGING_ABOVE_H, (start_h, device, hours)
