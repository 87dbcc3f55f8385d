"""`facmon probe` against loopback targets: an open port, a closed port, a slow HTTP server and ICMP
to 127.0.0.1 where this process may; and its readings through a real Mosquitto, decoded by the
collector's own decoder, with retained online, offline on close and the last will on a cut connection."""

from __future__ import annotations

import argparse
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import paho.mqtt.client as mqtt
import pytest

from core.clock import SystemClock
from core.config import FacmonConfig
from core.contract import DeviceKey, Kind, Reading, encode_reading
from core.decode import DecodeLimits, StatusChange, decode_message
from core.settings.mqtt import MqttSettings
from core.settings.probe import ProbeSettings, ProbeTarget, ProbeUplink
from facmon.commands import probe as probe_command
from facmon.servers import Mosquitto
from probe.agent import ProbeAgent
from probe.probers import icmp_socket_type
from probe.publish import DeviceConnection
from tests.support import poll_until

CLOCK = SystemClock()
HTTP_DELAY_S = 0.15


@pytest.fixture
def open_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.fixture
def closed_port() -> Iterator[int]:
    # Bound but not listening: the kernel answers a connect with RST, and no one else can take the port.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


class _Slow(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        threading.Event().wait(HTTP_DELAY_S)  # the delay is what the probe must measure
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_http() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/generate_204"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _settings(*targets: ProbeTarget, probes: int = 3) -> ProbeSettings:
    uplink = ProbeUplink(device="uplink-lo", isp="Loopback", iface="lo", targets=targets)
    return ProbeSettings(uplinks=(uplink,), probes_per_target=probes, spacing_s=0.0, timeout_s=0.5, interval_s=1)


def _one_reading(settings: ProbeSettings) -> Reading:
    (reading,) = ProbeAgent(settings, CLOCK, icmp_socket_type()).round()
    return reading


def _assert_decodes_valid(reading: Reading) -> None:
    decoded = decode_message(reading.device.reading_topic(), encode_reading(reading), CLOCK.now(), DecodeLimits())
    assert decoded == reading


def test_open_port_answers_every_probe(open_port: int) -> None:
    reading = _one_reading(_settings(ProbeTarget(host="127.0.0.1", method="tcp", port=open_port)))
    metrics = reading.metrics
    assert (metrics["link_up"], metrics["loss_pct"], metrics["iface"]) == (True, 0.0, "lo")
    assert 0 < metrics["rtt_ms"] < 100 and metrics["jitter_ms"] >= 0  # type: ignore[operator]
    _assert_decodes_valid(reading)


def test_closed_port_is_full_loss_on_a_link_that_is_up(closed_port: int) -> None:
    reading = _one_reading(_settings(ProbeTarget(host="127.0.0.1", method="tcp", port=closed_port)))
    assert {k: reading.metrics[k] for k in ("link_up", "rtt_ms", "jitter_ms", "loss_pct")} == {
        "link_up": True, "rtt_ms": None, "jitter_ms": None, "loss_pct": 100.0}
    _assert_decodes_valid(reading)


def test_slow_http_server_rtt_includes_its_delay(slow_http: str) -> None:
    reading = _one_reading(_settings(ProbeTarget(url=slow_http), probes=2))
    assert reading.metrics["loss_pct"] == 0.0
    assert HTTP_DELAY_S * 1000 <= reading.metrics["rtt_ms"] < 500  # type: ignore[operator]
    _assert_decodes_valid(reading)


def test_icmp_echo_to_loopback() -> None:
    if icmp_socket_type() is None:
        pytest.skip("this process may not open an ICMP socket (not root, no CAP_NET_RAW, and its group is "
                    "outside net.ipv4.ping_group_range)")
    reading = _one_reading(_settings(ProbeTarget(host="127.0.0.1", method="icmp")))
    assert reading.metrics["loss_pct"] == 0.0
    assert 0 < reading.metrics["rtt_ms"] < 100  # type: ignore[operator]
    _assert_decodes_valid(reading)


def _listen(broker: Mosquitto, got: list[tuple[str, bytes, bool]]) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="probe-test-listener")
    client.on_message = lambda _c, _u, m: got.append((m.topic, m.payload, m.retain))
    client.connect(broker.host, broker.port)
    client.subscribe("facmon/#", qos=1)
    client.loop_start()
    poll_until(client.is_connected, 5, what="listener connected")
    return client


def test_probe_command_publishes_decodable_readings_with_status(mosquitto: Mosquitto, open_port: int) -> None:
    config = FacmonConfig(mqtt=MqttSettings(host=mosquitto.host, port=mosquitto.port),
                          probe=_settings(ProbeTarget(host="127.0.0.1", method="tcp", port=open_port)))
    got: list[tuple[str, bytes, bool]] = []
    listener = _listen(mosquitto, got)
    try:
        code = probe_command.run(argparse.Namespace(once=True, dry_run=False), config, CLOCK, threading.Event())
        assert code == 0
        poll_until(lambda: len(got) >= 3, 10, what="online, a reading and offline")
    finally:
        listener.disconnect()
        listener.loop_stop()
    key = DeviceKey("park", Kind.UPLINK, "uplink-lo")
    assert [(t, p) for t, p, _ in got if t == key.status_topic()] == [(key.status_topic(), b"online"),
                                                                     (key.status_topic(), b"offline")]
    (reading,) = [decode_message(t, p, CLOCK.now(), DecodeLimits()) for t, p, _ in got if t == key.reading_topic()]
    assert isinstance(reading, Reading) and reading.device == key and reading.seq == 0
    assert (reading.metrics["isp"], reading.metrics["loss_pct"]) == ("Loopback", 0.0)


def test_a_cut_connection_fires_the_will_and_online_returns(mosquitto: Mosquitto) -> None:
    key = DeviceKey("park", Kind.UPLINK, "uplink-cut")
    connection = DeviceConnection(MqttSettings(host=mosquitto.host, port=mosquitto.port, reconnect_min_s=0.1,
                                               reconnect_max_s=0.2), key, "probe-cut", CLOCK)
    got: list[tuple[str, bytes, bool]] = []
    listener = _listen(mosquitto, got)
    try:
        assert connection.open()
        poll_until(lambda: (key.status_topic(), b"online", False) in got, 5, what="online")
        connection._publisher._client.socket().shutdown(socket.SHUT_RDWR)  # the cable is cut: no DISCONNECT sent
        poll_until(lambda: [p for t, p, _ in got if t == key.status_topic()][-1:] == [b"online"]
                   and len([t for t, _, _ in got if t == key.status_topic()]) >= 3, 10,
                   what="the will, then online again after reconnecting")
        statuses = [p for t, p, _ in got if t == key.status_topic()]
        assert statuses[:3] == [b"online", b"offline", b"online"]
        assert isinstance(decode_message(key.status_topic(), statuses[1], CLOCK.now(), DecodeLimits()), StatusChange)
    finally:
        connection.close()
        listener.disconnect()
        listener.loop_stop()
