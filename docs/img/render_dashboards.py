"""Render the overview and power dashboards to PNG for the README — from simulator data, with the
dashboards' own InfluxQL queries, plotted with matplotlib. Not a Grafana screenshot (no Grafana
runs here); the pictures say so.

    .venv/bin/python docs/img/render_dashboards.py        # writes docs/img/overview.png, power.png

It starts a private InfluxDB 1.x (Debian's influxd) in a temporary directory, writes one simulated
day at the park (load-shedding-day scenario) as the collector would, runs each panel's query with
Grafana's substitutions, plots the result, and stops the server.
"""

from __future__ import annotations

import sys
import tempfile
import urllib.request
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from core.contract import Reading  # noqa: E402
from core.decode import DecodeLimits, decode_message  # noqa: E402
from core.line_protocol import reading_to_line  # noqa: E402
from core.site import load_site  # noqa: E402
from dashboards import overview, power  # noqa: E402
from dashboards.queries import ALL_VALUE, TimeRange, render_query  # noqa: E402
from facmon.servers import InfluxDB  # noqa: E402
from simulators.scenario import load_scenario  # noqa: E402
from simulators.world import Simulation  # noqa: E402

TZ = ZoneInfo("Asia/Karachi")
START_S = datetime(2026, 3, 2, 0, 0, tzinfo=TZ).timestamp()
DAY_S = 86_400
DB = "facmon"
OUT = Path(__file__).resolve().parent
COLOURS = {"green": "#56a64b", "orange": "#ff9830", "red": "#e02f44", "blue": "#3274d9", "text": "#8e8e8e"}
LABEL = ("Rendered by docs/img/render_dashboards.py from simulated data (park, load-shedding-day scenario) "
         "with the dashboards' own InfluxQL queries — not a Grafana screenshot")
OVERVIEW_AT_H = 16.75
"""16:45 local: the grid is still out, the sun is low and the batteries carry the load."""
ALERTS = [(14 * 3600 + 60, "GridDown firing"), (17 * 3600 + 60, "GridDown resolved")]


def fill(influxdb: InfluxDB) -> None:
    site = load_site(REPO / "simulators/sites/park.yaml")
    scenario = load_scenario(REPO / "simulators/scenarios/load-shedding-day.yaml")
    lines = []
    for step in Simulation(site, scenario, seed=7, start_s=START_S, step_s=60.0, duration_s=DAY_S).steps():
        for message in step.messages:
            decoded = decode_message(message.topic, message.payload, step.t, DecodeLimits())
            if isinstance(decoded, Reading):
                lines.append(reading_to_line(decoded))
    for offset_s, text in ALERTS:
        name, state = text.split()
        lines.append(f'facmon_alerts,alertname={name},severity=critical,site=park,state={state} text="{text}" '
                     f"{int((START_S + offset_s) * 1e9)}")
    influxdb.create_database(DB)
    request = urllib.request.Request(f"{influxdb.url}/write?db={DB}", data="\n".join(lines).encode(), method="POST")
    urllib.request.urlopen(request, timeout=60).close()


def run(influxdb: InfluxDB, query: str, time_range: TimeRange, **variables: list[str]) -> list:
    values = {"site": ["park"], "device": [ALL_VALUE], **variables}
    return influxdb.query(render_query(query, time_range, values), DB)


def _times(series: object) -> list[datetime]:
    return [datetime.fromtimestamp(t / 1000, TZ) for t, *_ in series.values]  # type: ignore[attr-defined]


def render_overview(influxdb: InfluxDB) -> Path:
    now = TimeRange(int(START_S * 1000), int((START_S + OVERVIEW_AT_H * 3600) * 1000), "10m")
    half_hour = TimeRange(now.to_ms - 1_800_000, now.to_ms, "1m")
    tiles: list[tuple[str, str, str]] = []
    for s in run(influxdb, overview.POWER_SOURCE_NOW, now):
        mode = s.values[0][1]
        tiles.append((f"Power source {s.tags['device']}", mode,
                      {"grid": "green", "solar": "green", "battery": "orange"}.get(mode, "red")))
    for s in run(influxdb, overview.SOC_NOW, now):
        soc = s.values[0][1]
        tiles.append((f"Battery {s.tags['device']}", f"{soc:.0f} %", "red" if soc < 20 else "orange" if soc < 50
                      else "green"))
    for s in run(influxdb, overview.RUNTIME_NOW, half_hour):
        hours = s.values[0][1]
        idle = hours < 0 or hours >= overview.NOT_DISCHARGING_ABOVE_H
        tiles.append((f"Runtime {s.tags['device']}", "not discharging" if idle else f"{hours:.1f} h",
                      "green" if idle or hours >= 3 else "orange" if hours >= 1 else "red"))
    for s in run(influxdb, overview.UPLINKS_NOW, now):
        up = s.values[0][1]
        tiles.append((f"Uplink {s.tags['isp']}", "up" if up else "down", "green" if up else "red"))
    rooms = run(influxdb, overview.ROOMS_OCCUPIED_NOW, now)
    tiles.append(("Rooms occupied now", str(rooms[0].values[0][1] if rooms else 0), "blue"))
    firing = run(influxdb, overview.ACTIVE_ALERTS, now)
    count = firing[0].values[0][1] if firing else 0
    tiles.append(("Active alerts", str(count), "red" if count else "green"))

    columns = 4
    rows = (len(tiles) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(12, 1.9 * rows + 0.8))
    for ax, (title, value, colour) in zip(axes.flat, tiles + [("", "", "")] * (rows * columns - len(tiles)),
                                          strict=True):
        ax.set_axis_off()
        if not title:
            continue
        ax.add_patch(plt.Rectangle((0, 0), 1, 1, color=COLOURS[colour], transform=ax.transAxes))
        ax.text(0.5, 0.72, title, ha="center", va="center", color="white", fontsize=10, transform=ax.transAxes)
        ax.text(0.5, 0.35, value, ha="center", va="center", color="white", fontsize=20 if len(value) < 10 else 14,
                weight="bold",
                transform=ax.transAxes)
    fig.suptitle("facmon — Park overview at 16:45 (Asia/Karachi), late in the afternoon grid outage", fontsize=13)
    fig.text(0.5, 0.01, LABEL, ha="center", fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    path = OUT / "overview.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render_power(influxdb: InfluxDB) -> Path:
    day = TimeRange(int(START_S * 1000), int((START_S + DAY_S) * 1000), "5m")
    fig, axes = plt.subplots(4, 1, figsize=(12, 11), sharex=False,
                             gridspec_kw={"height_ratios": [1.1, 2, 2.4, 1.6]})
    grid_ax, soc_ax, power_ax, energy_ax = axes
    for row, s in enumerate(run(influxdb, power.GRID_TIMELINE, day)):
        for t, ok in zip(_times(s), (v for _, v in s.values), strict=True):
            if ok is not None:
                grid_ax.barh(row, 5 / 1440, left=mdates.date2num(t), height=0.7,
                             color=COLOURS["green" if ok else "red"], linewidth=0)
        grid_ax.text(mdates.date2num(_times(s)[0]), row, f" {s.tags['device']}", va="center", fontsize=8)
    grid_ax.set_yticks([])
    grid_ax.set_title("Grid availability (red bands: outages)", loc="left", fontsize=10)
    for s in run(influxdb, power.SOC, day):
        soc_ax.plot(_times(s), [v for _, v in s.values], label=s.tags["device"])
    soc_ax.axhspan(0, 20, color=COLOURS["red"], alpha=0.08)
    soc_ax.set_ylim(0, 100)
    soc_ax.set_ylabel("%")
    soc_ax.set_title("Battery state of charge", loc="left", fontsize=10)
    for query, what in ((power.PV_W, "solar"), (power.LOAD_W, "load"), (power.BATTERY_W, "battery")):
        for s in run(influxdb, query, day, device=["inv-main"]):
            power_ax.plot(_times(s), [v for _, v in s.values], label=f"{what} {s.tags['device']}")
    power_ax.axhline(0, color="#999999", linewidth=0.6)
    power_ax.set_ylabel("W")
    power_ax.set_title("Solar, load and battery power, inv-main (battery: + charging, − discharging)", loc="left",
                       fontsize=10)
    for ax in (grid_ax, soc_ax, power_ax):
        for offset_s, _ in ALERTS:
            ax.axvline(datetime.fromtimestamp(START_S + offset_s, TZ), color=COLOURS["red"], linestyle="--",
                       linewidth=0.8)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=TZ))
        ax.set_xlim(datetime.fromtimestamp(START_S, TZ), datetime.fromtimestamp(START_S + DAY_S, TZ))
    soc_ax.legend(fontsize=8, loc="lower left")
    power_ax.legend(fontsize=8, ncol=3, loc="upper left")
    soc_ax.text(datetime.fromtimestamp(START_S + ALERTS[0][0], TZ), 95, " alert: GridDown", color=COLOURS["red"],
                fontsize=8, va="top")
    labels, bottoms = [], {}
    for query, what, colour in ((power.ENERGY_SOLAR, "solar", "orange"), (power.ENERGY_BATTERY, "battery", "blue"),
                                (power.ENERGY_GRID, "grid", "green")):
        for s in run(influxdb, query.format(tz="Asia/Karachi"), day):
            kwh = sum(v for _, v in s.values if v is not None)
            device = s.tags["device"]
            energy_ax.barh(device, kwh, left=bottoms.get(device, 0), color=COLOURS[colour],
                           label=what if what not in labels else None)
            bottoms[device] = bottoms.get(device, 0) + kwh
            labels.append(what)
    energy_ax.set_xlabel("kWh on 2 March (local day)")
    energy_ax.set_title("Energy per day by source", loc="left", fontsize=10)
    energy_ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("facmon — Power, one simulated day at the park (Asia/Karachi)", fontsize=13)
    fig.text(0.5, 0.005, LABEL, ha="center", fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.015, 1, 0.97))
    path = OUT / "power.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="facmon-render-") as workdir:
        influxdb = InfluxDB(Path(workdir))
        influxdb.start()
        try:
            influxdb.wait_ready(30)
            fill(influxdb)
            for path in (render_overview(influxdb), render_power(influxdb)):
                print(path)
        finally:
            influxdb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
