"""`facmon up` on local defaults, as a new user runs it: it starts its own broker and InfluxDB, the
collector, the rules engine and the simulated park; readings flow into InfluxDB; the day-in-the-life
script's alerts fire, are notified into the local feed (NOTIFY lines) and resolve; Ctrl-C stops
every process it started.

Compressed timeline: `--script-replayed` places the 15-minute script so it ends at the start, and
`--replay 1h` keeps the replayed past short, so the whole script is replayed in seconds and the
rules engine (`rules.clock: catch_up`) judges it on its readings' time: its alerts are in the alert
history at the simulated times they happened (tests/unit/rules/test_catch_up.py proves the live
switch to the wall clock)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil

from core.clock import SystemClock
from core.influxql import InfluxQLClient, InfluxQueryError, InfluxUnavailable
from core.site import load_site
from facmon.servers import free_port
from rules.alerts import AlertState
from rules.store import AlertStore
from simulators.scenario import DEFAULT_SITE
from simulators.timeline import load_timeline
from tests.support import poll_until

REPO = Path(__file__).resolve().parents[2]
SITE = load_site(DEFAULT_SITE)


def _get_json(url: str, token: str) -> dict | None:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())
    except OSError:  # not listening yet
        return None


def _closed_throughout(start_s: float, end_s: float) -> bool:
    opening = SITE.opening_hours.intervals(SITE.tz, SITE.local_time(start_s - 86_400).date(), 3)
    return not any(begin < end_s and start_s < end for begin, end in opening)


def test_up_runs_the_stack_plays_the_script_and_stops_cleanly(tmp_path: Path) -> None:
    influx_port = free_port()
    api_listen = f"127.0.0.1:{free_port()}"
    env = {**os.environ,
           "FACMON_LOCAL__VAR_DIR": str(tmp_path / "var"),
           "FACMON_LOCAL__BROKER_PORT": str(free_port()),
           "FACMON_LOCAL__INFLUXDB_PORT": str(influx_port),
           "FACMON_COLLECTOR__HTTP_LISTEN": f"127.0.0.1:{free_port()}",
           "FACMON_RULES__HTTP_LISTEN": f"127.0.0.1:{free_port()}",
           "FACMON_API__LISTEN": api_listen}
    # A base day without events of its own (the park's load-shedding-day has an evening congestion
    # and an afternoon outage that would overlap the script at those hours); the site's published
    # load-shedding windows still apply, and are allowed for below.
    quiet = tmp_path / "quiet-day.yaml"
    quiet.write_text("name: quiet-day\nduration: 24h\nevents: []\n")
    env["FACMON_SIMULATE__SCENARIO"] = str(quiet)
    log_path = tmp_path / "up.log"
    started_s = SystemClock().now()
    with open(log_path, "wb") as log:
        up = subprocess.Popen([sys.executable, "-m", "facmon", "up", "--replay", "1h", "--script-replayed"],
                              cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    db = InfluxQLClient(f"http://127.0.0.1:{influx_port}", "facmon")
    store_path = tmp_path / "var" / "alerts.db"

    def stored_readings() -> int:
        try:
            series = db.query("SELECT count(seq) FROM inverter, uplink, occupancy")
        except (InfluxUnavailable, InfluxQueryError):  # not up yet, or the collector has not created the db
            return 0
        return sum(int(s.values[0][1]) for s in series)

    def states(rule: str) -> list[AlertState]:
        if not store_path.exists():
            return []
        store = AlertStore(store_path, SystemClock())
        try:
            return [t.to_state for t in store.history(limit=10_000) if t.rule == rule]
        finally:
            store.close()

    try:
        poll_until(lambda: stored_readings() >= 50, 90, 0.5, "simulated readings in InfluxDB")
        names = _command_lines(up.pid)
        assert all(part in names for part in ("mosquitto", "influxd", "facmon collect", "facmon api",
                                              "facmon rules run", "facmon simulate --world"))
        # The script's grid outage and lossy ISP fire and resolve, on the replayed readings' time
        # (the grid's only when no published load-shedding window takes the grid down around it).
        script_at = poll_until(lambda: load_timeline(tmp_path / "var" / "simulators" / "world.json"), 30, 0.5,
                               "the world's timeline").episodes[-1].at_s
        grid_is_the_script = not SITE.shedding_windows(script_at - 300, script_at + 300)
        for rule in ("GridOutage", "UplinkDegradedLoss")[0 if grid_is_the_script else 1:]:
            poll_until(lambda r=rule: AlertState.RESOLVED in states(r), 120, 0.5, f"{rule} fired and resolved")
            assert AlertState.FIRING in states(rule)
        store = AlertStore(store_path, SystemClock())
        try:
            history = store.history(limit=10_000)
            lossy = [t for t in history if t.rule == "UplinkDegradedLoss" and t.to_state is AlertState.FIRING]
            assert lossy and all(t.at < started_s for t in lossy), "judged on device time: before the start"
            if grid_is_the_script:
                # The engine saw the outage from its first reading (it was subscribed before the past
                # went by): pending when the script's grid fails, 30 s after its placement, firing 10 s later.
                # (A published load-shedding window inside the replayed hour, 22:00-23:00 in the park,
                # makes an outage of its own earlier: only the script's, after its placement, counts.)
                outage = [t for t in history if t.rule == "GridOutage" and t.to_state is AlertState.FIRING
                          and t.at >= script_at]
                pending = min(t.at for t in history if t.rule == "GridOutage" and t.at >= script_at)
                assert script_at + 30 <= pending <= script_at + 31, (pending, script_at)
                assert min(t.at for t in outage) == pending + 10
        finally:
            store.close()

        def lab_fired() -> list:
            store = AlertStore(store_path, SystemClock())
            try:
                return [t for t in store.history(limit=10_000) if t.rule == "OccupancyAfterHours"
                        and t.labels.get("device") == "occ-lab" and t.to_state is AlertState.FIRING]
            finally:
                store.close()

        def feed() -> str:
            store = AlertStore(store_path, SystemClock())
            try:
                return "\n".join(e.body for e in store.feed(0, limit=1000))
            finally:
                store.close()

        # Notified into the feed: grouped per site, each change at the group's next flush.
        grid_texts = ("GridOutage: Grid down at park (inv-main)", "RESOLVED GridOutage") if grid_is_the_script else ()
        for text in (*grid_texts, "UplinkDegraded: Uplink PTCL at park loses", "RESOLVED UplinkDegraded"):
            poll_until(lambda t=text: t in feed(), 60, 0.5, f"{text!r} in the notifications feed")
        poll_until(lambda: "NOTIFY [" in log_path.read_text(), 30, 0.5, "NOTIFY lines printed by facmon up")
        # Someone in the lab for 12 minutes: an alert only when the building is closed then.
        in_lab = (started_s - 15 * 60 + 30, started_s - 15 * 60 + 30 + 12 * 60)
        if _closed_throughout(*in_lab):
            # The replay may still be on its way past the lab's tenth minute when the uplink's alert resolved.
            lab = poll_until(lab_fired, 60, 0.5, "OccupancyAfterHours for the lab")
            assert any(in_lab[0] + 600 <= t.at <= in_lab[1] for t in lab), "after-hours presence in the lab"
        # The printed link signs the page in with the demo's viewer key.
        link = re.search(rf"http://{api_listen}/status/#key=(\S+)", log_path.read_text())
        assert link, log_path.read_text()[-3000:]
        me = poll_until(lambda: _get_json(f"http://{api_listen}/api/v1/keys/me", link.group(1)), 60, 0.5,
                        "the API answering with the demo viewer key")
        assert me["role"] == "viewer"
        children = psutil.Process(up.pid).children(recursive=True)
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=60)
        db.close()
    text = log_path.read_text()
    assert code == 0, text[-3000:]
    assert "stopped cleanly" in text
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE], \
        "every process facmon up started must be gone"
    store = AlertStore(store_path, SystemClock())
    try:
        silent = [t for t in store.history(limit=10_000) if t.rule == "DeviceSilent"]
    finally:
        store.close()
    assert not silent, "stopping the stack stops the rules engine first: the devices' wills page nobody"


def _command_lines(pid: int) -> str:
    lines = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            lines.append(" ".join(child.cmdline()))
        except psutil.Error:  # a process that just exited, not yet reaped
            continue
    return " ".join(lines).replace("-m ", "")
