"""deploy/mosquitto/bridge-to-central.conf.example, filled in as a site would, bridges a real site
Mosquitto (the shipped facmon-broker.conf) to a real central Mosquitto: readings published to the
site reach a persistent session at the central, including those the site took while the central
was down (the bridge's own queue, resent when the central returns)."""

from __future__ import annotations

from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from core.contract import encode_reading
from facmon.servers import Mosquitto
from tests.integration.collector.harness import Publisher, inverter_readings, now_ms
from tests.support import poll_until

pytestmark = pytest.mark.integration
BRIDGE_EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "bridge-to-central.conf.example"


def bridge_config(central_port: int, try_private: bool = True) -> str:
    """The example as a site fills it in: this central's address, a site's client ids, and
    `try_private false` for a RabbitMQ central (benchmarks/broker_durability.py --bridge uses it too)."""
    text = BRIDGE_EXAMPLE.read_text()
    for line, filled in (("address central.example.org:1883", f"address 127.0.0.1:{central_port}"),
                         ("try_private true", f"try_private {'true' if try_private else 'false'}")):
        if line not in text:
            raise ValueError(f"{BRIDGE_EXAMPLE}: no line {line!r} to fill in")
        text = text.replace(line, filled)
    return text.replace("SITE", "park")


def _central_session(port: int, subscribe: bool) -> tuple[mqtt.Client, set[bytes]]:
    """The central's subscriber, MQTT 3.1.1 with a persistent session, collecting payloads; with
    `subscribe`, it subscribes to every facmon topic and waits for the grant."""
    got: set[bytes] = set()
    granted: list[int] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="central-sink", protocol=mqtt.MQTTv311,
                         clean_session=False)
    client.on_message = lambda _c, _u, message: got.add(message.payload)
    client.on_subscribe = lambda _c, _u, mid, *_rest: granted.append(mid)
    client.connect("127.0.0.1", port)
    client.loop_start()
    poll_until(client.is_connected, 10, what="the central subscriber connected")
    if subscribe:
        mid = client.subscribe("facmon/#", qos=1)[1]
        poll_until(lambda: mid in granted, 10, what="the central subscription granted")
    return client, got


def test_the_example_bridge_forwards_what_the_site_took_while_the_central_was_down(tmp_path):
    central = Mosquitto(tmp_path / "central")
    central.start()
    central.wait_ready()
    site = Mosquitto(tmp_path / "site", extra_config=bridge_config(central.port))
    sink: mqtt.Client | None = None
    try:
        sink, got = _central_session(central.port, subscribe=True)
        site.start()
        site.wait_ready()
        readings = inverter_readings("park", 10, 20, now_ms())
        before, during = readings[:100], readings[100:]
        publisher = Publisher(site.port)
        publisher.publish_readings(before)
        publisher.wait_all_acked()
        poll_until(lambda: len(got) >= len(before), 20, what="the first readings at the central")
        sink.disconnect()
        sink.loop_stop()
        central.stop()  # the central down: the site keeps taking readings and queues them for the bridge
        publisher.publish_readings(during)
        publisher.wait_all_acked()
        publisher.close()
        central.start()
        central.wait_ready()
        # Its session held what the bridge forwarded since the central came back.
        sink, got = _central_session(central.port, subscribe=False)
        taken_while_down = {encode_reading(r) for r in during}
        poll_until(lambda: taken_while_down <= got, 30, what="the readings taken while the central was down")
        # QoS 1 is at least once: a reading in flight when the central stopped may come again (the
        # collector keeps one per device and seq); nothing else may.
        assert got - taken_while_down <= {encode_reading(r) for r in before}
    finally:
        if sink is not None:
            sink.disconnect()
            sink.loop_stop()
        site.stop()
        central.stop()

