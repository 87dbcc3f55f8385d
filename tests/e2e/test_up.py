"""`facmon up` on local defaults, as a new user runs it: it starts its own broker and InfluxDB, the
collector and the simulators; readings flow into InfluxDB; Ctrl-C stops every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from core.influxql import InfluxQLClient, InfluxQueryError, InfluxUnavailable
from facmon.servers import free_port
from tests.support import poll_until

REPO = Path(__file__).resolve().parents[2]


def test_up_runs_the_stack_and_stops_it_cleanly(tmp_path: Path) -> None:
    influx_port = free_port()
    env = {**os.environ,
           "FACMON_LOCAL__VAR_DIR": str(tmp_path / "var"),
           "FACMON_LOCAL__BROKER_PORT": str(free_port()),
           "FACMON_LOCAL__INFLUXDB_PORT": str(influx_port),
           "FACMON_COLLECTOR__HTTP_LISTEN": f"127.0.0.1:{free_port()}",
           "FACMON_API__LISTEN": f"127.0.0.1:{free_port()}"}
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        up = subprocess.Popen([sys.executable, "-m", "facmon", "up", "--speed", "600"], cwd=tmp_path, env=env,
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
        children = psutil.Process(up.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "mosquitto" in names and "influxd" in names and "facmon collect" in names.replace("-m ", "")
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=60)
        db.close()
    text = log_path.read_text()
    assert code == 0, text[-3000:]
    assert "stopped cleanly" in text
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE], \
        "every process facmon up started must be gone"
