"""How long each monthly report takes from InfluxDB 1.6.7 on this machine, for a month of a
100-device site at one reading per 10 s (the issue's target: 10 s each).

    .venv/bin/python benchmarks/reports.py [--days 30] [--devices 100] [--step-s 10]

The month is synthetic (patterns, not physics: the simulator would take longer to run than the
queries do), written into a fresh influxd in a temp dir, the demo park scaled to `--devices`
(simulators.world.scale_site). Each report is timed as `facmon report` runs it (queries over HTTP,
computation, HTML+CSV+PDF), against a reference measured in the same run: one `count()` over all of
the month's uplink and inverter points, i.e. InfluxDB merely reading what the reports read. Then the
month's figures are stored for the Monthly dashboard as `facmon report store` does (the three reports,
DELETE of the month's stored points, the write), twice: the second run replaces the first.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date, datetime
from datetime import time as clock_time
from pathlib import Path

import numpy as np
import urllib3

# The repository first: this script's own folder would otherwise make `reports` mean this file.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.influx_write import V1LineWriter
from core.influxql import InfluxQLClient
from core.settings.influxdb import InfluxSettings
from core.site import Site, load_site
from facmon.servers import InfluxDB
from reports.build import REPORTS, build_report
from reports.month import ReportMonth
from reports.render import write_report
from reports.store import store_month
from simulators.scenario import DEFAULT_SITE
from simulators.world import scale_site

BATCH = 50_000


def lines_for(site: Site, t: np.ndarray) -> list[str]:
    """One reading per device per time in `t` (epoch s), as line protocol."""
    hour = (t % 86_400) / 3600
    out: list[str] = []
    for n, inv in enumerate(site.inverters):
        off = ((hour + 5) % 24 >= 18 + n % 3) & ((hour + 5) % 24 < 21 + n % 3)
        soc = np.where(off, 90 - 20 * (((hour + 5) % 24) - 18 - n % 3), 90.0)
        amps = np.where(off, -40.0, 2.0)
        for ts, o, s, a in zip(t.tolist(), off.tolist(), soc.tolist(), amps.tolist(), strict=True):
            out.append(f'inverter,device={inv.id},site={site.id} grid_v={0.0 if o else 230.0},'
                       f'grid_ok={"false" if o else "true"},'
                       f'mode="{"battery" if o else "grid"}",battery_soc_pct={s:.2f},battery_v={50 + a * 0.02:.2f},'
                       f'battery_a={a},pv_w=500.0,load_w=900.0 {ts}000000000')
    for n, up in enumerate(site.uplinks):
        down = (t // 60) % 4000 < 30 + n
        for ts, d in zip(t.tolist(), down.tolist(), strict=True):
            out.append(f'uplink,device={up.id},isp={up.isp.replace(" ", chr(92) + " ")},site={site.id} link_up=true,'
                       f'loss_pct={100.0 if d else 0.0},rtt_ms=40.0 {ts}000000000')
    for gen in site.generators:
        out.extend(f'generator,device={gen.id},site={site.id} running=false,state="off",output_w=0.0,fuel_pct=70.0,'
                   f'engine_hours=1200.0 {ts}000000000' for ts in t.tolist())
    for occ in site.occupancy_sensors:
        out.extend(f'occupancy,device={occ.id},room=r,site={site.id} occupied=true,people=3i {ts}000000000'
                   for ts in t.tolist())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--step-s", type=int, default=10)
    parser.add_argument("--data", type=Path, default=None,
                        help="keep InfluxDB's files here and reuse them on the next run (same --days/--devices)")
    args = parser.parse_args()
    site = scale_site(load_site(DEFAULT_SITE), args.devices)
    start = int(datetime.combine(date(2026, 11, 1), clock_time(0), site.tz).timestamp())
    with tempfile.TemporaryDirectory() as tmp, InfluxDB(args.data or Path(tmp) / "influxd") as server:
        loaded = server.workdir / f"loaded-{args.days}d-{args.devices}-{args.step_s}s"
        if not loaded.exists():
            load(server, site, start, args.days, args.step_s)
            loaded.touch()
        time_reports(server, site, start, args.days, Path(tmp))


def load(server: InfluxDB, site: Site, start: int, days: int, step_s: int) -> None:
    server.create_database("bench")
    http = urllib3.PoolManager()
    began = time.perf_counter()
    points = 0
    for day in range(days):
        for hour in range(0, 24, 6):
            t = np.arange(start + day * 86_400 + hour * 3600, start + day * 86_400 + (hour + 6) * 3600, step_s)
            lines = lines_for(site, t)
            for i in range(0, len(lines), BATCH):
                r = http.request("POST", f"{server.url}/write?db=bench&precision=ns",
                                 body="\n".join(lines[i:i + BATCH]).encode())
                assert r.status == 204, r.data[:200]
            points += len(lines)
    print(f"{points:,} readings loaded in {time.perf_counter() - began:.0f} s")


def time_reports(server: InfluxDB, site: Site, start: int, days: int, out: Path) -> None:
    devices = (len(site.inverters), len(site.uplinks), len(site.occupancy_sensors), len(site.generators))
    print(f"site: {sum(devices)} devices (inverters, uplinks, sensors, generators = {devices}), {days} days")
    client = InfluxQLClient(server.url, "bench", timeout_s=300)
    span = f"time >= {start}s AND time < {start + days * 86400}s"
    began = time.perf_counter()
    client.query(f"SELECT count(loss_pct) FROM uplink WHERE {span}; SELECT count(load_w) FROM inverter WHERE {span}")
    reference = time.perf_counter() - began
    print(f"reference: count() over the month's uplink and inverter points: {reference:.2f} s")
    for kind in REPORTS:
        began = time.perf_counter()
        doc = build_report(kind, client, site, "2026-11")
        built = time.perf_counter() - began
        write_report(doc, out / "out")
        total = time.perf_counter() - began
        print(f"{kind:8s} report: {built:.2f} s from InfluxDB ({built / reference:.1f}x the reference), "
              f"{total:.2f} s with HTML+CSV+PDF")
    writer = V1LineWriter(InfluxSettings(url=server.url, database="bench"))
    for run in ("first", "again"):
        began = time.perf_counter()
        points = store_month(client, writer, site, ReportMonth.parse("2026-11", site.tz))
        took = time.perf_counter() - began
        print(f"store ({run}): {points} points in {took:.2f} s ({took / reference:.1f}x the reference)")
    writer.close()
    client.close()


if __name__ == "__main__":
    main()
