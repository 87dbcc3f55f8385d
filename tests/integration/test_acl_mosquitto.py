"""The generated password and ACL files, loaded by a real Mosquitto 2.0 (Debian's), enforce what
`facmon acl generate` promises: a device publishes only under its own topic and reads nothing of
others, the collector reads everything, anonymous clients and wrong passwords are refused. The broker
runs the shipped mosquitto.conf's authentication lines; tests/integration/test_broker_door.py covers
its binding of client ids to accounts."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from facmon.servers import Mosquitto
from tests.integration.test_broker_door import secured_broker
from tests.support import poll_until

INV_MAIN = "facmon/v1/park/inverter/inv-main/reading"
INV_LAB = "facmon/v1/park/inverter/inv-lab/reading"
NOT_AUTHORIZED = ReasonCode(PacketTypes.PUBACK, "Not authorized")
QUIET_S = 0.3
"""After the collector got a message, how long a device that must not see it is watched."""


class Client:
    """A paho MQTT 5 client with its received messages in a queue and its connect result."""

    def __init__(self, broker: Mosquitto, username: str | None, password: str | None) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.pubacks: dict[int, ReasonCode] = {}
        self.paho = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if username is not None:
            self.paho.username_pw_set(username, password)
        self.paho.on_connect = lambda c, u, f, rc, p: self.connack.put(rc)
        self.paho.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        self.paho.on_publish = lambda c, u, mid, rc, p: self.pubacks.__setitem__(mid, rc)
        self.paho.connect(broker.host, broker.port)
        self.paho.loop_start()
        self.result: ReasonCode = self.connack.get(timeout=10)

    def subscribe(self, topic: str) -> None:
        granted: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.paho.on_subscribe = lambda c, u, mid, codes, p: granted.put(codes)
        self.paho.subscribe(topic, qos=1)
        granted.get(timeout=10)

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        info = self.paho.publish(topic, payload, qos=1)
        return poll_until(lambda: self.pubacks.get(info.mid), 10, what=f"PUBACK for {topic}")

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[Mosquitto, dict]]:
    # The shipped mosquitto.conf's authentication lines (facmon.servers.shipped_auth_config).
    yield from secured_broker(Mosquitto, tmp_path)


@pytest.fixture
def connect(secured: tuple[Mosquitto, dict]) -> Iterator[Callable[[str | None, str | None], Client]]:
    broker, _ = secured
    clients: list[Client] = []

    def make(username: str | None, password: str | None) -> Client:
        client = Client(broker, username, password)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _login(secured: tuple[Mosquitto, dict], connect: Callable[..., Client], username: str) -> Client:
    client = connect(username, secured[1][username])
    assert client.result == 0, f"{username} could not connect: {client.result}"
    return client


def test_device_publishes_only_under_its_own_topic_and_the_collector_reads_all(
        secured: tuple[Mosquitto, dict], connect: Callable[..., Client]) -> None:
    collector = _login(secured, connect, "facmon-collector")
    collector.subscribe("facmon/v1/#")
    device = _login(secured, connect, "park.inv-main")

    assert device.publish(INV_MAIN, b"own") == 0
    assert collector.messages.get(timeout=10) == (INV_MAIN, b"own")

    # Another device's topic, another kind, another site: refused with MQTT 5's "Not authorized".
    for foreign in (INV_LAB, "facmon/v1/park/uplink/inv-main/reading", "facmon/v1/other/inverter/inv-main/reading"):
        assert device.publish(foreign, b"spoofed") == NOT_AUTHORIZED, foreign
    assert device.publish(INV_MAIN.replace("reading", "status"), b"online") == 0
    assert collector.messages.get(timeout=10) == (INV_MAIN.replace("reading", "status"), b"online")
    assert collector.messages.empty()


def test_a_device_cannot_read_other_devices(secured: tuple[Mosquitto, dict], connect: Callable[..., Client]) -> None:
    collector = _login(secured, connect, "facmon-collector")
    collector.subscribe("facmon/v1/#")
    snoop = _login(secured, connect, "park.inv-main")
    snoop.subscribe("facmon/v1/#")
    other = _login(secured, connect, "park.inv-lab")

    assert other.publish(INV_LAB, b"private") == 0
    assert collector.messages.get(timeout=10) == (INV_LAB, b"private")
    with pytest.raises(queue.Empty):
        snoop.messages.get(timeout=QUIET_S)


def test_anonymous_and_wrong_password_are_refused(connect: Callable[..., Client]) -> None:
    assert connect(None, None).result == "Not authorized"
    assert connect("park.inv-main", "not-the-password").result == "Not authorized"
    assert connect("nobody", "x").result == "Not authorized"
