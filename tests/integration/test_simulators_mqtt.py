"""The MQTT publisher against a real Mosquitto: every message the simulation makes arrives, in
order per device, statuses are retained, and a dying sensor's last will is published by the broker."""

from __future__ import annotations

import threading
from datetime import datetime

import paho.mqtt.client as mqtt
import pytest

from core.clock import SystemClock
from core.mqtt_batch import BatchClient
from core.settings.mqtt import MqttSettings
from core.site import load_site
from facmon.servers import Mosquitto
from simulators.publish import MemoryPublisher, MqttPublisher
from simulators.run import run_simulation
from simulators.scenario import DEFAULT_SITE, load_scenario, resolve_scenario
from simulators.world import Simulation
from tests.support import poll_until

SITE = load_site(DEFAULT_SITE)
CLOCK = SystemClock()


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


def _persistent_listener(broker: Mosquitto) -> tuple[mqtt.Client, list[tuple[str, bytes]], threading.Lock]:
    """A QoS 1 subscriber on a persistent 3.1.1 session: it reconnects after a broker restart and the
    broker (which saves sessions on a clean shutdown) keeps what arrived meanwhile."""
    received: list[tuple[str, bytes]] = []
    lock = threading.Lock()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-batch-listener", clean_session=False)
    client.reconnect_delay_set(1, 1)

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with lock:
            received.append((msg.topic, msg.payload))

    def on_connect(c: mqtt.Client, _u: object, _f: object, _r: object, _p: object) -> None:
        c.subscribe("facmon/#", qos=1)

    client.on_message = on_message
    client.on_connect = on_connect
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client, received, lock


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311], ids=["mqtt5", "mqtt311"])
def test_batches_arrive_whole_and_in_order_across_a_broker_restart(mosquitto: Mosquitto,
                                                                   protocol: mqtt.MQTTProtocolVersion) -> None:
    window = 200
    listener, received, lock = _persistent_listener(mosquitto)
    client = BatchClient(mqtt.CallbackAPIVersion.VERSION2, client_id="test-batch-publisher", protocol=protocol)
    client.configure_batching(CLOCK, max_inflight=window)
    client.reconnect_delay_set(1, 1)
    topics = [f"facmon/v1/test/inverter/inv-{i}/reading" for i in range(20)]
    sent: dict[str, list[bytes]] = {topic: [] for topic in topics}

    def publish(seqs: range) -> None:
        batch = [(topic, b'{"seq":%d}' % seq, False) for seq in seqs for topic in topics]
        for topic, payload, _ in batch:
            sent[topic].append(payload)
        client.publish_batch(batch, stall_timeout_s=30)

    try:
        poll_until(lambda: listener.is_connected() and listener.subscribe, 5, what="listener connected")
        client.connect(mosquitto.host, mosquitto.port)
        client.loop_start()
        poll_until(lambda: client.online, 5, what="publisher connected")
        publish(range(0, 100))            # 2,000 messages through a window of 200: publish_batch waits for PUBACKs
        own = client.publish("facmon/v1/test/inverter/paho/reading", b"paho's own", qos=1)  # ids must not collide
        publish(range(100, 107))          # 140 in flight, likely unacknowledged when the broker stops
        mosquitto.stop()
        # The broker comes back a second later on another thread: if the window is already full,
        # the next publish_batch waits for room (it never drops), so it cannot restart the broker itself.
        comeback = threading.Timer(1.0, lambda: (mosquitto.start(), mosquitto.wait_ready(10)))
        comeback.start()
        publish(range(107, 109))          # 40 more while the broker is down: held, sent after the reconnect
        comeback.join(15)
        publish(range(109, 300))          # and the stream goes on
        assert client.wait_all_acked(20) == 0
        own.wait_for_publish(5)
        total = sum(len(v) for v in sent.values())
        poll_until(lambda: len({m for m in received if m[0] in sent}) >= total, 20, what="every message delivered")
    finally:
        client.disconnect()
        client.loop_stop()
        listener.disconnect()
        listener.loop_stop()
    assert own.is_published()
    assert client.resent >= 40, "what was published while the broker was down must be re-sent"
    assert client.peak_unacked <= window
    assert client.refused == {}
    with lock:
        got = list(received)
    for topic in topics:
        theirs = [payload for t, payload in got if t == topic]
        # QoS 1: a re-sent message may arrive twice, but each first arrival is in order and none is missing.
        assert list(dict.fromkeys(theirs)) == sent[topic], topic
        assert set(theirs) == set(sent[topic])
