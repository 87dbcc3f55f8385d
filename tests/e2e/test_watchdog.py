"""The off-site dead man's switch end to end on loopback: `facmon rules run` (on a real Mosquitto)
beats to `facmon watchdog serve`, which pages a webhook receiver. No page while heartbeats flow;
SIGKILL the engine, or separately stop the broker → one page within the timeout + 10 s; resume →
one recovery page saying how long the park was dark."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from facmon.servers import free_port
from tests.integration.test_rules_notifiers import CaptureServer
from tests.support import poll_until

TIMEOUT_S = 4.0


def _sites(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/sites", timeout=2) as answer:
            return json.loads(answer.read())
    except OSError:
        return {}


def _start(args: list[str], config: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "facmon", "-c", str(config), *args], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def hook():
    server = CaptureServer()
    yield server
    server.close()


def test_the_watchdog_pages_when_the_engine_dies_or_the_broker_stops_and_once_on_recovery(tmp_path, mosquitto, hook):
    secret = tmp_path / "heartbeat.secret"
    secret.write_text("a shared secret only the park and the watchdog know\n")
    watchdog_port = free_port()
    rules_config = tmp_path / "rules.yaml"
    rules_config.write_text(json.dumps({
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5},
        "rules": {"store_path": str(tmp_path / "alerts.db"), "write_influx": False, "http_listen": None,
                  "heartbeat": {"url": f"http://127.0.0.1:{watchdog_port}/heartbeat", "secret_file": str(secret),
                                "interval_s": 1, "site": "park"}}}))
    watchdog_config = tmp_path / "watchdog.yaml"
    watchdog_config.write_text(json.dumps({"watchdog": {
        "listen": f"127.0.0.1:{watchdog_port}", "secret_file": str(secret), "timeout_s": TIMEOUT_S,
        "store_path": str(tmp_path / "watchdog.db"),
        "receivers": [{"name": "oncall", "webhooks": [hook.url], "feed": False}]}}))
    log = tmp_path / "processes.log"
    watchdog = _start(["watchdog", "serve"], watchdog_config, log)
    rules = _start(["rules", "run"], rules_config, log)
    try:
        first = poll_until(lambda: _sites(watchdog_port).get("park"), 60, 0.2, "the first heartbeat")
        # Heartbeats keep flowing past a whole timeout: no page.
        poll_until(lambda: _sites(watchdog_port)["park"]["last_heard_at"] >= first["last_heard_at"] + TIMEOUT_S + 1,
                   TIMEOUT_S + 10, 0.2, "heartbeats over a whole timeout")
        assert hook.bodies == [], log.read_text()[-2000:]

        rules.send_signal(signal.SIGKILL)
        rules.wait(timeout=10)
        page = poll_until(lambda: hook.bodies, TIMEOUT_S + 10, 0.1, "the page after SIGKILL")[0]
        assert page["status"] == "firing" and page["alerts"][0]["labels"]["alertname"] == "SiteUnreachable"
        assert page["alerts"][0]["annotations"]["summary"].startswith("park unreachable since ")

        rules = _start(["rules", "run"], rules_config, log)
        recovery = poll_until(lambda: hook.bodies[1:], 60, 0.2, "the recovery page")[0]
        assert recovery["status"] == "resolved"
        assert "park reachable again at" in recovery["alerts"][0]["annotations"]["summary"]
        assert " dark; now: " in recovery["alerts"][0]["annotations"]["summary"]

        mosquitto.stop()  # the engine is alive but blind: its heartbeats stop too
        poll_until(lambda: hook.bodies[2:], TIMEOUT_S + 10, 0.1, "the page after the broker stopped")
        assert hook.bodies[2]["status"] == "firing"
        mosquitto.start()
        mosquitto.wait_ready(20)
        poll_until(lambda: hook.bodies[3:], 60, 0.2, "the recovery after the broker returned")
        assert hook.bodies[3]["status"] == "resolved"
        resumed = _sites(watchdog_port)["park"]["last_heard_at"]
        poll_until(lambda: _sites(watchdog_port)["park"]["last_heard_at"] >= resumed + 2, 20, 0.2,
                   "heartbeats after the recovery")
        assert [b["status"] for b in hook.bodies] == ["firing", "resolved", "firing", "resolved"]
    finally:
        _stop(rules)
        _stop(watchdog)
