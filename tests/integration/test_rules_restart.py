"""`facmon rules run` killed with SIGKILL while alerts are firing, silenced and acknowledged (the
ack and the silence written through the AlertStore, as the API writes them): after a restart no
notification is sent twice and every state is as it was; the restarted engine still resolves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from core.clock import SystemClock
from core.contract import DeviceKey, Kind, Reading, encode_reading
from rules.matchers import parse_matcher
from rules.store import AlertStore
from tests.integration.collector.harness import Publisher
from tests.integration.test_rules_notifiers import CaptureServer
from tests.support import poll_until

CLOCK = SystemClock()
ROOT = Path(__file__).resolve().parents[2]
PACK = {"rules": [{"name": "InverterFault", "kind": "inverter",
                   "condition": {"threshold": {"metric": "mode", "op": "==", "value": "fault"}},
                   "labels": {"severity": "critical"}, "annotations": {"summary": "fault at {device}"}}]}


class RulesProcess:
    """`python -m facmon --config FILE rules run`, its output in a log file."""

    def __init__(self, config: Path, log: Path) -> None:
        self._config, self._log = config, log
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self._log, "ab") as out:
            self._process = subprocess.Popen([sys.executable, "-m", "facmon", "--config", str(self._config), "rules",
                                              "run"], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
        starts = self.log().count("rules engine connected to the broker") + 1
        poll_until(lambda: self.log().count("rules engine connected to the broker") >= starts, 20, 0.05,
                   "the engine connected")

    def log(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    def kill(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait(10)

    def stop(self) -> int:
        if self._process is None or self._process.poll() is not None:
            return self._process.returncode if self._process else 0
        self._process.send_signal(signal.SIGINT)
        return self._process.wait(30)


@pytest.fixture
def hook() -> Iterator[CaptureServer]:
    server = CaptureServer()
    yield server
    server.close()


def _fault(device: str, seq: int, mode: str = "fault") -> Reading:
    return Reading(DeviceKey("park", Kind.INVERTER, device), int(CLOCK.now() * 1000), seq,
                   {"grid_v": 230.0, "grid_ok": True, "mode": mode, "battery_soc_pct": 80.0, "battery_v": 52.0,
                    "battery_a": 1.0, "pv_w": 0.0, "load_w": 500.0})


def _report(publisher: Publisher, seq: int, modes: dict[str, str]) -> None:
    for device, mode in modes.items():
        reading = _fault(device, seq, mode)
        publisher.publish(reading.device.reading_topic(), encode_reading(reading))
    publisher.wait_all_acked(10)


def _sent(hook: CaptureServer) -> list[tuple[str, str]]:
    return [(b["status"], a["labels"]["device"]) for b in hook.bodies for a in b["alerts"]]


def test_sigkill_while_firing_silenced_and_acked_sends_nothing_twice_and_keeps_every_state(tmp_path, mosquitto,
                                                                                          hook):
    (tmp_path / "pack.yaml").write_text(yaml.safe_dump(PACK))
    store_path = tmp_path / "alerts.db"
    config = tmp_path / "facmon.yaml"
    config.write_text(yaml.safe_dump({
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "reconnect_max_s": 1},
        "rules": {"rule_files": [str(tmp_path / "pack.yaml")], "store_path": str(store_path),
                  "evaluation_interval_s": 0.1, "reconnect_grace_s": 0, "write_influx": False,
                  "receivers": [{"name": "oncall", "webhooks": [hook.url]}],
                  # One incident per device, notified at once; no repeats within the test.
                  "routes": [{"receiver": "oncall", "group_by": ["device"], "group_wait_s": 0,
                              "group_interval_s": 0, "repeat_interval_s": 3600}]}}))
    engine = RulesProcess(config, tmp_path / "rules.log")
    publisher = Publisher(mosquitto.port, "restart-devices")
    store = AlertStore(store_path, CLOCK)  # the API's view of the same file
    try:
        engine.start()
        faults = {"inv-a": "fault", "inv-b": "fault", "inv-c": "fault"}
        # The devices report until the engine (its subscription confirmed a moment after connecting) hears them.
        seq = iter(range(1, 1000))
        poll_until(lambda: _report(publisher, next(seq), faults) or len(hook.bodies) >= 3, 10, 0.2,
                   "the faults notified")
        assert sorted(_sent(hook)) == [("firing", "inv-a"), ("firing", "inv-b"), ("firing", "inv-c")]
        by_device = {a.labels["device"]: a for a in store.active_alerts()}
        store.acknowledge(by_device["inv-c"].fingerprint, "amina", "on site")
        silence = store.create_silence([parse_matcher("device=inv-b")], CLOCK.now(), CLOCK.now() + 3600, "bilal",
                                       "battery swap")
        poll_until(lambda: store.alert(by_device["inv-b"].fingerprint).alert.muted_by == (f"silence:{silence.id}",),
                   10, what="the engine applied the silence")
        before = store.all_alerts()
        engine.kill()
        sent_before_kill = _sent(hook)

        engine.start()
        # Each device reports its fault again, and the engine ticks 10 times a second: nothing is new.
        _report(publisher, next(seq), faults)
        CLOCK.sleep(1.0)  # a window for a duplicate to appear (real I/O; the assertion is that none does)
        assert _sent(hook) == sent_before_kill
        after = {a.fingerprint: a for a in store.all_alerts()}
        for alert in before:
            kept = after[alert.fingerprint]
            assert (kept.state, kept.fired_at, kept.acked_by, kept.ack_comment, kept.muted_by) == (
                alert.state, alert.fired_at, alert.acked_by, alert.ack_comment, alert.muted_by)
        assert [s.id for s in store.list_silences(include_expired=False)] == [silence.id]

        # The restarted engine goes on: inv-a resolves, notified once.
        _report(publisher, next(seq), {"inv-a": "grid"})
        poll_until(lambda: ("resolved", "inv-a") in _sent(hook), 10, what="inv-a resolved")
        sent = _sent(hook)
        assert sent == [*sent_before_kill, ("resolved", "inv-a")], sent
    finally:
        publisher.close()
        store.close()
        assert engine.stop() == 0, engine.log()[-3000:]
