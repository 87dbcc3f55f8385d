"""`facmon up` on local defaults, as a new user runs it: it starts its own broker and InfluxDB, the
collector and the simulators; readings flow into InfluxDB; Ctrl-C stops every process it started."""

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

from core.influxql import InfluxQLClient, InfluxQueryError, InfluxUnavailable
from facmon.servers import free_port
from tests.support import poll_until

REPO = Path(__file__).resolve().parents[2]


def _get_json(url: str, token: str) -> dict | None:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())
    except OSError:  # not listening yet
        return None


def test_up_runs_the_stack_and_stops_it_cleanly(tmp_path: Path) -> None:
    influx_port = free_port()
    api_listen = f"127.0.0.1:{free_port()}"
    env = {**os.environ,
           "FACMON_LOCAL__VAR_DIR": str(tmp_path / "var"),
           "FACMON_LOCAL__BROKER_PORT": str(free_port()),
           "FACMON_LOCAL__INFLUXDB_PORT": str(influx_port),
           "FACMON_COLLECTOR__HTTP_LISTEN": f"127.0.0.1:{free_port()}",
           "FACMON_API__LISTEN": api_listen}
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        up = subprocess.Popen([sys.executable, "-m", "facmon", "up"], cwd=tmp_path, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    db = InfluxQLClient(f"http://127.0.0.1:{influx_port}", "facmon")

    def stored_readings() -> int:
        try:
            series = db.query("SELECT count(seq) FROM inverter, uplink, occupancy")
        except (InfluxUnavailable, InfluxQueryError):  # not up yet, or the collector has not created the db
            return 0
        return sum(int(s.values[0][1]) for s in series)

    try:
        poll_until(lambda: stored_readings() >= 50, 90, 0.5, "simulated readings in InfluxDB")

        def command_lines() -> str:
            lines = []
            for child in psutil.Process(up.pid).children(recursive=True):
                try:
                    lines.append(" ".join(child.cmdline()))
                except psutil.Error:  # a step that just exited, not yet reaped
                    continue
            return " ".join(lines)

        # The rules engine starts once the replayed day is in and the simulators go live.
        poll_until(lambda: "facmon rules run" in command_lines().replace("-m ", ""), 120, 0.5,
                   "the rules engine started after the replay")
        names = command_lines().replace("-m ", "")
        assert all(part in names for part in ("mosquitto", "influxd", "facmon collect", "facmon api",
                                              "facmon simulate --scenario load-shedding-day --speed 1"))
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
