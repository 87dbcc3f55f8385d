"""The MQTT publisher against a real Mosquitto: every message the simulation makes arrives, in
order per device, statuses are retained, and a dying sensor's last will is published by the broker."""

from __future__ import annotations

import threading
from datetime import datetime

import paho.mqtt.client as mqtt

from core.clock import SystemClock
from core.settings.mqtt import MqttSettings
from core.site import load_site
from facmon.servers import Mosquitto
from simulators.publish import MemoryPublisher, MqttPublisher
from simulators.run import run_simulation
from simulators.scenario import DEFAULT_SITE, load_scenario, resolve_scenario
from simulators.world import Simulation
from tests.support import poll_until

SITE = load_site(DEFAULT_SITE)


def _listener(broker: Mosquitto) -> tuple[mqtt.Client, list[tuple[str, bytes, bool]], threading.Lock]:
    received: list[tuple[str, bytes, bool]] = []
    lock = threading.Lock()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-listener")

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with lock:
            received.append((msg.topic, msg.payload, msg.retain))

    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.subscribe("facmon/#", qos=1)
    client.loop_start()
    return client, received, lock


def test_published_stream_arrives_whole_and_the_will_fires(mosquitto: Mosquitto) -> None:
    start = datetime(2026, 3, 2, 10, 50, tzinfo=SITE.tz).timestamp()
    scenario = load_scenario(resolve_scenario("sensor-faults"))
    expected = MemoryPublisher()
    run_simulation(Simulation(SITE, scenario, 9, start, duration_s=1800), expected, SystemClock(), None)

    client, received, lock = _listener(mosquitto)
    try:
        poll_until(client.is_connected, 5, what="listener connected")
        publisher = MqttPublisher(MqttSettings(host=mosquitto.host, port=mosquitto.port), SystemClock())
        summary = run_simulation(Simulation(SITE, scenario, 9, start, duration_s=1800), publisher, SystemClock(), None)
        sent = [m for m in expected.messages if not m.will]
        poll_until(lambda: len(received) >= len(sent) + 1, 20, what="every message at the listener")
    finally:
        client.disconnect()
        client.loop_stop()
    assert summary.events and summary.events[0][1] == "sensor_silent occ-room-3 starts"
    with lock:
        got = list(received)
    # The will (from the broker) is the one message the simulation did not publish itself.
    will = [(t, p) for t, p, _ in got if t.endswith("occ-room-3/status") and p == b"offline"]
    assert will, "the broker did not publish occ-room-3's last will"
    for device in {m.device for m in sent if m.device is not None}:
        mine = [(m.topic, m.payload) for m in sent if m.device == device]
        theirs = [(t, p) for t, p, _ in got if f"/{device.device}/" in t and (t, p) in set(mine)]
        assert theirs == mine, device
