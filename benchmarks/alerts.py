"""Alerting benchmarks (issue 4). Prints figures; not a test.

1. Evaluation throughput in-process: readings/s through the engine with 10 and with 1,000 threshold
   rules (one per device, selected by device matchers, so each reading meets the rules that can match
   it), and their ratio (target: >= 50,000 readings/s at 1,000 rules, within 2x of 10 rules).
2. Latency from the publish of a tripping reading (real Mosquitto) to receipt of the webhook
   (`for: 0`, group_wait 0): p50/p99 over N alerts (target p99 <= 200 ms).
3. Delay of absence alerts past their deadline, on the real clock (target <= 2 s late).

    .venv/bin/python benchmarks/alerts.py [--readings 200000] [--alerts 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import paho.mqtt.client as mqtt

from core.clock import FakeClock, SystemClock
from core.contract import DeviceKey, Kind, Reading, encode_reading
from core.settings.mqtt import MqttSettings
from core.settings.rules import ReceiverSettings, RouteSettings, RulesSettings
from facmon.servers import Mosquitto
from rules.engine import Engine
from rules.model import load_rule_files
from rules.route import Route
from rules.service import RulesService
from rules.store import AlertStore
from tests.integration.test_rules_notifiers import CaptureServer

CLOCK = SystemClock()


class _StampingList(list):
    def __init__(self, on_append) -> None:
        super().__init__()
        self._on_append = on_append

    def append(self, body: object) -> None:
        self._on_append(body)
        super().append(body)


class StampingCapture(CaptureServer):
    """The test's webhook capture server, calling `on_body` the moment each body arrives."""

    def __init__(self, on_body) -> None:
        super().__init__()
        self.bodies = _StampingList(on_body)


def _pack(tmp: Path, rules: int) -> Path:
    lines = ["rules:"]
    for i in range(rules):
        lines += [f"  - name: Hot{i}", "    kind: inverter", f"    match: [\"device=inv-{i}\"]",
                  "    condition: {threshold: {metric: inverter_temp_c, op: '>', value: 70, clear: 60}}"]
    path = tmp / f"pack{rules}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _metrics(temp: float) -> dict:
    return {"grid_v": 230.0, "grid_ok": True, "mode": "grid", "battery_soc_pct": 80.0, "battery_v": 52.0,
            "battery_a": 1.0, "pv_w": 0.0, "load_w": 500.0, "inverter_temp_c": temp}


def throughput(tmp: Path, rules: int, readings: int) -> float:
    clock = FakeClock()
    engine = Engine(load_rule_files([_pack(tmp, rules)]), {}, AlertStore(tmp / f"t{rules}.db", clock),
                    [Route("null", group_wait_s=0)], clock, {"null": []})
    engine.source_connected(True)
    devices = [DeviceKey("park", Kind.INVERTER, f"inv-{i}") for i in range(rules)]
    # Mostly normal readings, with an alert every 10,000 readings (fire/resolve through the store).
    batch = [Reading(devices[n % rules], 1_767_225_600_000 + n, n, _metrics(80.0 if n % 10_000 == 0 else 40.0))
             for n in range(readings)]
    start = CLOCK.monotonic()
    for reading in batch:
        engine.handle(reading)
    return readings / (CLOCK.monotonic() - start)


def _settings(tmp: Path, pack: Path, hook: str, name: str) -> RulesSettings:
    return RulesSettings(rule_files=[pack], store_path=tmp / f"{name}.db", evaluation_interval_s=0.1,
                         reconnect_grace_s=0.5, write_influx=False, mqtt_client_id=f"bench-{name}",
                         receivers=[ReceiverSettings(name="hook", webhooks=[hook])],
                         routes=[RouteSettings(receiver="hook", group_by=["site", "device"], group_wait_s=0,
                                               group_interval_s=0)])


def latency(tmp: Path, broker: Mosquitto, alerts: int) -> list[float]:
    pack = tmp / "latency.yaml"
    pack.write_text("rules:\n  - name: Fault\n    kind: inverter\n"
                    "    condition: {threshold: {metric: mode, op: '==', value: fault}}\n")
    received: dict[str, float] = {}

    def stamp(body: dict) -> None:
        for alert in body["alerts"]:
            if alert["status"] == "firing":
                received.setdefault(alert["labels"]["device"], CLOCK.monotonic())

    capture = StampingCapture(stamp)
    service = RulesService.from_settings(_settings(tmp, pack, capture.url, "latency"),
                                         MqttSettings(port=broker.port), CLOCK, None, None)
    service.start()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    delays = []
    try:
        deadline = CLOCK.monotonic() + 10
        while not service._subscription.connected and CLOCK.monotonic() < deadline:
            CLOCK.sleep(0.01)
        # Connected is not yet subscribed: a reading published before the SUBSCRIBE is processed goes
        # nowhere. Publish a warm-up fault until its alert arrives, then measure.
        warmup = DeviceKey("park", Kind.INVERTER, "warmup")
        while "warmup" not in received and CLOCK.monotonic() < deadline + 10:
            metrics = {**_metrics(40.0), "mode": "fault", "grid_ok": False}
            client.publish(warmup.reading_topic(), encode_reading(Reading(warmup, int(CLOCK.now() * 1000), 1, metrics)),
                           qos=1)
            CLOCK.sleep(0.2)
        for i in range(alerts):
            device = f"inv-{i}"
            metrics = {**_metrics(40.0), "mode": "fault", "grid_ok": False}
            payload = encode_reading(Reading(DeviceKey("park", Kind.INVERTER, device), int(CLOCK.now() * 1000), 1,
                                             metrics))
            sent = CLOCK.monotonic()
            client.publish(DeviceKey("park", Kind.INVERTER, device).reading_topic(), payload, qos=1)
            deadline = sent + 5
            while device not in received and CLOCK.monotonic() < deadline:
                CLOCK.sleep(0.001)
            if device in received:
                delays.append(received[device] - sent)
    finally:
        client.disconnect()
        client.loop_stop()
        service.stop()
        capture.close()
    return delays


def absence_delay(tmp: Path, broker: Mosquitto, devices: int, after_s: float) -> list[float]:
    pack = tmp / "absence.yaml"
    pack.write_text(f"rules:\n  - name: Silent\n    condition: {{absence: {{after_s: {after_s}, offline: false}}}}\n")
    fired: dict[str, float] = {}

    def stamp(body: dict) -> None:
        for alert in body["alerts"]:
            fired.setdefault(alert["labels"]["device"], CLOCK.now())

    capture = StampingCapture(stamp)
    service = RulesService.from_settings(_settings(tmp, pack, capture.url, "absence"),
                                         MqttSettings(port=broker.port), CLOCK, None, None)
    service.start()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-abs")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    last_sent: dict[str, float] = {}
    try:
        deadline = CLOCK.monotonic() + 10
        while not service._subscription.connected and CLOCK.monotonic() < deadline:
            CLOCK.sleep(0.01)
        CLOCK.sleep(0.6)  # past the reconnect grace
        for i in range(devices):
            device = f"inv-{i}"
            info = client.publish(DeviceKey("park", Kind.INVERTER, device).reading_topic(),
                                  encode_reading(Reading(DeviceKey("park", Kind.INVERTER, device),
                                                         int(CLOCK.now() * 1000), 1, _metrics(40.0))), qos=1)
            info.wait_for_publish(5)
            last_sent[device] = CLOCK.now()
            CLOCK.sleep(0.05)
        done = threading.Event()
        deadline = CLOCK.monotonic() + after_s + 10
        while len(fired) < devices and CLOCK.monotonic() < deadline and not done.is_set():
            CLOCK.sleep(0.02)
    finally:
        client.disconnect()
        client.loop_stop()
        service.stop()
        capture.close()
    return [fired[d] - (last_sent[d] + after_s) for d in last_sent if d in fired]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--alerts", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        t10 = throughput(tmp, 10, args.readings)
        t1000 = throughput(tmp, 1000, args.readings)
        print(f"throughput, 10 rules:    {t10:10,.0f} readings/s")
        print(f"throughput, 1000 rules:  {t1000:10,.0f} readings/s   (10/1000 ratio {t10 / t1000:.2f}x; "
              "targets >= 50,000/s, ratio <= 2)")
        with Mosquitto(tmp / "broker") as broker:
            delays = np.array(latency(tmp, broker, args.alerts)) * 1000
            missed = args.alerts - len(delays)
            print(f"publish -> webhook ({len(delays)} alerts, {missed} not received within 5 s): "
                  f"p50 {np.percentile(delays, 50):.1f} ms, "
                  f"p99 {np.percentile(delays, 99):.1f} ms, max {delays.max():.1f} ms   (target p99 <= 200 ms)")
            late = np.array(absence_delay(tmp, broker, 20, 2.0))
            print(f"absence alerts past deadline ({len(late)} devices, tick 0.1 s): "
                  f"p50 {np.percentile(late, 50):.3f} s, "
                  f"max {late.max():.3f} s   (target <= 2 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
