"""The rules service against a real Mosquitto: a tripping reading reaches the webhook, a broker
outage yields exactly one MonitoringDegraded (fired and resolved) and no DeviceSilent for devices
that resumed, and a restart of the engine sends nothing twice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from core.clock import SystemClock
from core.contract import DeviceKey, Kind, Reading, encode_reading
from core.settings.mqtt import MqttSettings
from core.settings.rules import ReceiverSettings, RouteSettings, RulesSettings
from core.settings.sites import SitesSettings
from rules.model import load_rule_files
from rules.service import RulesService
from tests.integration.test_rules_notifiers import CaptureServer
from tests.support import poll_until

PACK = """
rules:
  - name: InverterFault
    kind: inverter
    condition: {threshold: {metric: mode, op: "==", value: fault}}
    labels: {severity: critical}
    annotations: {summary: "fault at {device}"}
  - name: DeviceSilent
    condition: {absence: {after_s: 2s, offline: true}}
    labels: {severity: warning}
"""
CLOCK = SystemClock()


def _inverter(device: str, seq: int, mode: str = "grid") -> bytes:
    metrics = {"grid_v": 230.0, "grid_ok": mode == "grid", "mode": mode, "battery_soc_pct": 80.0, "battery_v": 52.0,
               "battery_a": 1.0, "pv_w": 0.0, "load_w": 500.0}
    return encode_reading(Reading(DeviceKey("park", Kind.INVERTER, device), int(CLOCK.now() * 1000), seq, metrics))


class Devices:
    """Two inverters publishing every 0.2 s (through broker outages, paho reconnecting)."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-devices")
        self.client.reconnect_delay_set(1, 1)
        self.client.connect(host="127.0.0.1", port=port)
        self.client.loop_start()
        self.stop = threading.Event()
        self.seq = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.2):
            self.seq += 1
            for device in ("inv-a", "inv-b"):
                self.client.publish(DeviceKey("park", Kind.INVERTER, device).reading_topic(),
                                    _inverter(device, self.seq), qos=1)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.client.disconnect()
        self.client.loop_stop()


def _service(tmp_path: Path, port: int, hook_url: str, sites: SitesSettings | None = None,
             protocol: str = "5") -> RulesService:
    pack_file = tmp_path / "pack.yaml"
    pack_file.write_text(PACK)
    settings = RulesSettings(
        rule_files=[pack_file], store_path=tmp_path / "alerts.db", evaluation_interval_s=0.1, reconnect_grace_s=1.0,
        write_influx=False, receivers=[ReceiverSettings(name="oncall", webhooks=[hook_url])],
        routes=[RouteSettings(receiver="oncall", group_wait_s=0, group_interval_s=0, repeat_interval_s=3600)])
    mqtt_settings = MqttSettings(host="127.0.0.1", port=port, reconnect_min_s=0.5, reconnect_max_s=1.0,
                                 protocol=protocol)
    return RulesService.from_settings(settings, mqtt_settings, CLOCK, None, load_rule_files([pack_file]),
                                      sites or SitesSettings())


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    server = CaptureServer()
    yield server
    server.close()


def _events(capture: CaptureServer) -> list[tuple[str, str]]:
    return [(a["labels"]["alertname"], a["status"]) for body in capture.bodies for a in body["alerts"]]


def test_broker_outage_one_monitoring_degraded_and_no_silent_devices(tmp_path, mosquitto, capture):
    service = _service(tmp_path, mosquitto.port, capture.url)
    service.start()
    devices = Devices(mosquitto.port)
    try:
        poll_until(lambda: service.engine.rules() and service._subscription.subscribed, 10, what="engine subscribed")
        CLOCK.sleep(1.0)  # both devices heard
        mosquitto.stop()
        poll_until(lambda: ("MonitoringDegraded", "firing") in _events(capture), 10, what="MonitoringDegraded")
        CLOCK.sleep(3.0)  # longer than the 2 s absence threshold
        mosquitto.start()
        mosquitto.wait_ready(10)
        poll_until(lambda: ("MonitoringDegraded", "resolved") in _events(capture), 15,
                   what="MonitoringDegraded resolved")
        CLOCK.sleep(2.5)  # past the absence threshold after the grace: the resumed devices stay quiet
    finally:
        devices.close()
        service.stop()
    events = _events(capture)
    assert events.count(("MonitoringDegraded", "firing")) == 1, events
    assert events.count(("MonitoringDegraded", "resolved")) == 1, events
    assert not [e for e in events if e[0] == "DeviceSilent"], events


def test_tripping_reading_reaches_the_webhook_and_restart_sends_nothing_twice(tmp_path, mosquitto, capture):
    service = _service(tmp_path, mosquitto.port, capture.url)
    service.start()
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-fault")
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    try:
        poll_until(lambda: service._subscription.subscribed, 10, what="engine subscribed")
        topic = DeviceKey("park", Kind.INVERTER, "inv-a").reading_topic()
        publisher.publish(topic, _inverter("inv-a", 1, mode="fault"), qos=1).wait_for_publish(5)
        body = poll_until(lambda: capture.bodies, 5, what="the InverterFault webhook")[0]
        assert [(a["labels"]["alertname"], a["labels"]["device"]) for a in body["alerts"]] == [
            ("InverterFault", "inv-a")]
        [alert] = service.engine.alert_by_rule("InverterFault")
        service.engine._store.acknowledge(alert.fingerprint, "amina", "on site")
        service.stop()  # the engine goes away while the alert is firing and acknowledged

        restarted = _service(tmp_path, mosquitto.port, capture.url)
        restarted.start()
        try:
            poll_until(lambda: restarted._subscription.subscribed, 10, what="restarted engine subscribed")
            publisher.publish(topic, _inverter("inv-a", 2, mode="fault"), qos=1).wait_for_publish(5)
            CLOCK.sleep(1.0)
            [after] = restarted.engine.alert_by_rule("InverterFault")
            assert (after.state.value, after.acked_by, after.fired_at) == ("firing", "amina", alert.fired_at)
            assert len(capture.bodies) == 1  # nothing sent again
            publisher.publish(topic, _inverter("inv-a", 3), qos=1).wait_for_publish(5)
            poll_until(lambda: len(capture.bodies) == 2, 5, what="the resolve")
            assert capture.bodies[1]["status"] == "resolved"
        finally:
            restarted.stop()
    finally:
        publisher.disconnect()
        publisher.loop_stop()
