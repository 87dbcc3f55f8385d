"""The rules engine on MQTT 3.1.1, against real Mosquitto: as configured (`mqtt.protocol: 3.1.1`),
and by falling back when a broker refuses MQTT 5. Its persistent session keeps what devices publish
while it is away, on 3.1.1 as on 5.

No broker that runs here refuses MQTT 5, so `Refuses5` stands in for one (an older broker, or a
gateway speaking only 3.1.1): in front of the real Mosquitto it answers an MQTT 5 CONNECT as such a
broker does, with CONNACK reason 0x84 "unsupported protocol version", and passes every 3.1.1
connection through untouched."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.contract import DeviceKey, Kind
from facmon.servers import Mosquitto
from tests.integration.collector.harness import Publisher
from tests.integration.test_rules_notifiers import CaptureServer
from tests.integration.test_rules_service import _inverter, _service
from tests.relay import Relay
from tests.support import poll_until

CONNACK_UNSUPPORTED_VERSION_V5 = bytes([0x20, 0x03, 0x00, 0x84, 0x00])
INV = DeviceKey("park", Kind.INVERTER, "inv-a")


class Refuses5(Relay):
    """A TCP stand-in on a free loopback port: MQTT 5 CONNECTs refused, 3.1.1 relayed to `upstream_port`."""

    def __init__(self, upstream_port: int) -> None:
        self.refused = 0
        self.relayed = 0
        super().__init__(upstream_port)

    def _admit(self, conn: socket.socket, first: bytes) -> bool:
        # `first`: a CONNECT's first bytes: fixed header, "MQTT", protocol level
        name_at = next(i for i in range(1, 5) if first[i] < 0x80) + 1  # past the remaining-length bytes
        if len(first) > name_at + 6 and first[name_at:name_at + 6] == b"\x00\x04MQTT" and first[name_at + 6] == 5:
            self.refused += 1
            conn.sendall(CONNACK_UNSUPPORTED_VERSION_V5)
            return False
        self.relayed += 1
        return True


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    server = CaptureServer()
    yield server
    server.close()


def _fault_reaches_the_hook_and_the_session_outlives_a_restart(tmp_path: Path, port: int, capture: CaptureServer,
                                                                protocol: str, device_port: int) -> str:
    """The engine's protocol after connecting through `port` (the device publishes through
    `device_port`); asserts what every protocol must do."""
    service = _service(tmp_path, port, capture.url, protocol=protocol)
    service.start()
    publisher = Publisher(device_port, "test-311-device")
    try:
        poll_until(lambda: service._subscription.subscribed, 15, what="engine subscribed")
        spoken = service._subscription.protocol_name
        service.stop()  # away: the broker keeps its session and queues what comes
        publisher.publish(INV.reading_topic(), _inverter("inv-a", 1, mode="fault"))
        publisher.wait_all_acked()
        restarted = _service(tmp_path, port, capture.url, protocol=protocol)
        restarted.start()
        try:
            body = poll_until(lambda: capture.bodies, 15, what="the fault published while the engine was away")[0]
            assert [a["labels"]["alertname"] for a in body["alerts"]] == ["InverterFault"]
        finally:
            restarted.stop()
        return spoken
    finally:
        publisher.close()


def test_the_rules_engine_speaks_311_when_configured(tmp_path: Path, mosquitto: Mosquitto,
                                                     capture: CaptureServer) -> None:
    assert _fault_reaches_the_hook_and_the_session_outlives_a_restart(tmp_path, mosquitto.port, capture,
                                                                      "3.1.1", mosquitto.port) == "3.1.1"


def test_the_rules_engine_falls_back_to_311_when_the_broker_refuses_5(tmp_path: Path, mosquitto: Mosquitto,
                                                                      capture: CaptureServer) -> None:
    broker = Refuses5(mosquitto.port)
    try:
        assert _fault_reaches_the_hook_and_the_session_outlives_a_restart(tmp_path, broker.port, capture,
                                                                          "5", mosquitto.port) == "3.1.1"
        assert broker.refused >= 2 and broker.relayed >= 2  # each engine tried 5 first (perhaps twice), then 3.1.1
    finally:
        broker.close()


def test_a_publisher_falls_back_to_311_and_loses_nothing_queued_before(mosquitto: Mosquitto) -> None:
    """The shared publishing layer (`core.mqtt_publisher`), which the probe and the bridge use: what was
    published before the broker refused MQTT 5 reaches it over 3.1.1, with the last will and the
    announcement of the new connection."""
    import logging

    from core.clock import SystemClock
    from core.mqtt_publisher import Outgoing
    from core.mqtt_publisher import Publisher as SessionPublisher
    from core.settings.mqtt import MqttSettings
    from tests.integration.test_probe import _listen

    broker = Refuses5(mosquitto.port)
    got: list[tuple[str, bytes, bool]] = []
    listener = _listen(mosquitto, got)
    settings = MqttSettings(host="127.0.0.1", port=broker.port, reconnect_min_s=0.1, reconnect_max_s=0.2)
    publisher = SessionPublisher(settings, "test-311-publisher", SystemClock(), stage="a test publisher",
                                 log=logging.getLogger("test"),
                                 will=Outgoing(INV.status_topic(), "offline", retain=True),
                                 announce=[Outgoing(INV.status_topic(), "online", retain=True)])
    try:
        for seq in range(5):  # queued before any connection exists
            assert publisher.publish(INV.reading_topic(), _inverter("inv-a", seq))
        publisher.open(wait_s=0)
        poll_until(lambda: len([t for t, _, _ in got if t == INV.reading_topic()]) == 5, 15,
                   what="the five readings, over 3.1.1")
        assert publisher.protocol_name == "3.1.1" and broker.refused >= 1
        assert (INV.status_topic(), b"online", False) in got
        assert publisher.close([Outgoing(INV.status_topic(), "offline", retain=True)]) == 0
        poll_until(lambda: got[-1][:2] == (INV.status_topic(), b"offline"), 5, what="offline at close")
    finally:
        listener.disconnect()
        listener.loop_stop()
        broker.close()
