"""The real servers of facmon.servers start, serve, survive restarts as promised and stop."""

from __future__ import annotations

import json
import queue
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import urllib3
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.influxql import InfluxQLClient
from facmon.servers import (
    BROKER_CONF,
    InfluxDB,
    Mosquitto,
    ServerError,
    ServerExited,
    free_port,
)
from tests.servers import Alertmanager, InfluxV2WriteProxy
from tests.support import poll_until

pytestmark = pytest.mark.integration
HTTP = urllib3.PoolManager(retries=False, timeout=5.0)


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except OSError:
        return True
    return False


# --- Mosquitto --------------------------------------------------------------------------------

@contextmanager
def _mqtt(broker: Mosquitto, client_id: str, *, persistent: bool, protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv5,
          resume: bool = False) -> Iterator[tuple[mqtt.Client, queue.Queue[mqtt.MQTTMessage]]]:
    """A connected client whose received messages land in a queue.

    persistent: MQTT 5 session expiry 600 s / MQTT 3.1.1 clean_session=False.
    resume: MQTT 5 clean_start=False (continue or create a stored session); 3.1.1 resumes whenever persistent."""
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    connected: queue.Queue[object] = queue.Queue()
    if protocol == mqtt.MQTTv5:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 600 if persistent else 0
        connect_args: dict[str, object] = {"clean_start": not resume, "properties": properties}
    else:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
                             clean_session=not persistent)
        connect_args = {}
    client.on_message = lambda _c, _u, message: received.put(message)
    client.on_connect = lambda _c, _u, _f, reason_code, _p: connected.put(reason_code)
    client.connect(broker.host, broker.port, **connect_args)  # type: ignore[arg-type]
    client.loop_start()
    try:
        reason = connected.get(timeout=5)
        assert not reason.is_failure, f"CONNECT refused: {reason}"  # type: ignore[attr-defined]
        yield client, received
    finally:
        client.disconnect()
        client.loop_stop()


def test_mosquitto_config_is_the_shipped_file_plus_listener(mosquitto: Mosquitto) -> None:
    generated = mosquitto.config_path.read_text()
    assert generated.startswith(BROKER_CONF.read_text())
    assert f"listener {mosquitto.port} 127.0.0.1\n" in generated
    assert "max_queued_messages 1000000\n" in generated
    assert "autosave_on_changes true\nautosave_interval 1000\n" in generated


def test_mosquitto_delivers_and_stops(mosquitto: Mosquitto) -> None:
    with _mqtt(mosquitto, "sub", persistent=False) as (sub, received):
        sub.subscribe("facmon/v1/#", qos=1)
        with _mqtt(mosquitto, "pub", persistent=False) as (pub, _):
            # subscribe is asynchronous: publish until the subscription is in place, bounded
            poll_until(lambda: pub.publish("facmon/v1/s/uplink/d/reading", b"x", qos=1).wait_for_publish(2)
                       or not received.empty(), timeout_s=5, what="a delivered message")
            assert received.get(timeout=5).payload == b"x"
    mosquitto.stop()
    assert not mosquitto.running
    assert _refuses_connections(mosquitto.port)


def _queue_for_offline_subscriber(broker: Mosquitto, protocol: mqtt.MQTTProtocolVersion,
                                  resume_first: bool = True) -> None:
    """Create a persistent session subscribed with QoS 1, go away, and publish to it with PUBACK.

    resume_first: the first MQTT 5 CONNECT already says clean_start=False (as facmon's collector does)."""
    with _mqtt(broker, "collector", persistent=True, protocol=protocol, resume=resume_first) as (sub, _):
        subacks: queue.Queue[list[object]] = queue.Queue()
        sub.on_subscribe = lambda _c, _u, _mid, reason_codes, _p: subacks.put(reason_codes)
        sub.subscribe("facmon/v1/+/+/+/reading", qos=1)
        [granted] = subacks.get(timeout=5)
        assert granted == 1, f"SUBACK granted {granted}, not QoS 1"
    with _mqtt(broker, "device", persistent=False) as (pub, _):
        info = pub.publish("facmon/v1/site1/inverter/inv1/reading", b'{"seq": 7}', qos=1)
        info.wait_for_publish(5)
        assert info.is_published()


def test_mosquitto_keeps_an_mqtt311_persistent_session_across_restart(mosquitto: Mosquitto) -> None:
    _queue_for_offline_subscriber(mosquitto, mqtt.MQTTv311)
    mosquitto.restart()
    assert mosquitto.persistence_path.exists()
    with _mqtt(mosquitto, "collector", persistent=True, protocol=mqtt.MQTTv311) as (_, received):
        message = received.get(timeout=5)
    assert (message.topic, message.payload, message.qos) == \
        ("facmon/v1/site1/inverter/inv1/reading", b'{"seq": 7}', 1)


def test_mosquitto_keeps_an_mqtt5_persistent_session_across_restart(mosquitto: Mosquitto) -> None:
    _queue_for_offline_subscriber(mosquitto, mqtt.MQTTv5)
    mosquitto.restart()
    with _mqtt(mosquitto, "collector", persistent=True, resume=True) as (_, received):
        message = received.get(timeout=5)
    assert (message.topic, message.payload, message.qos) == \
        ("facmon/v1/site1/inverter/inv1/reading", b'{"seq": 7}', 1)


def test_mosquitto_2_0_11_does_not_save_sessions_begun_with_clean_start(mosquitto: Mosquitto) -> None:
    """A limitation measured on Debian 12's Mosquitto 2.0.11, kept as a test so an upgrade that
    changes it shows up: an MQTT 5 session whose *first* CONNECT had clean_start=True is kept while
    the broker runs (first assertion) but not restored after a clean restart: it and its queue are
    gone, despite a 600 s session expiry. Clients that need their session
    to survive broker restarts must connect with clean_start=False every time, the first included."""
    _queue_for_offline_subscriber(mosquitto, mqtt.MQTTv5, resume_first=False)
    with _mqtt(mosquitto, "collector", persistent=True, resume=True) as (_, received):
        assert received.get(timeout=5).payload == b'{"seq": 7}'
    _queue_for_offline_subscriber(mosquitto, mqtt.MQTTv5, resume_first=False)
    mosquitto.restart()
    with _mqtt(mosquitto, "collector", persistent=True, resume=True) as (_, received), \
            pytest.raises(queue.Empty):
        received.get(timeout=0.5)


def test_mosquitto_crash_loses_what_came_since_the_last_autosave(mosquitto: Mosquitto) -> None:
    """The risk the shipped config documents: a SIGKILL before the next autosave loses the queue."""
    _queue_for_offline_subscriber(mosquitto, mqtt.MQTTv311)
    mosquitto.kill()
    mosquitto.start()
    mosquitto.wait_ready()
    with _mqtt(mosquitto, "collector", persistent=True, protocol=mqtt.MQTTv311) as (_, received), \
            pytest.raises(queue.Empty):
        received.get(timeout=0.5)


def test_mosquitto_that_cannot_start_reports_its_log(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "bad", extra_config="no_such_option 1\n")
    broker.start()
    try:
        with pytest.raises(ServerExited, match="no_such_option"):
            broker.wait_ready(timeout_s=5)
    finally:
        broker.stop()


def test_missing_binary_says_which_package_to_install(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "m")
    broker.binary = "/nonexistent/mosquitto"
    with pytest.raises(ServerError, match="install the Debian package mosquitto"):
        broker.start()


# --- InfluxDB and the v2 write proxy -------------------------------------------------------------

def test_influxdb_writes_and_reads(influxdb: InfluxDB, influx_db: InfluxQLClient) -> None:
    response = HTTP.request("POST", f"{influxdb.url}/write?db={influx_db.database}&precision=ms",
                            body=b"uplink,site=s1,device=d1 rtt_ms=12.5 1767225600000")
    assert response.status == 204, response.data
    [series] = influx_db.query("SELECT rtt_ms FROM uplink")
    assert series.rows() == [{"time": 1767225600000, "rtt_ms": 12.5}]


def test_influxdb_rpc_port_is_not_the_default(influxdb: InfluxDB) -> None:
    assert influxdb.rpc_port != 8088
    assert f'bind-address = "127.0.0.1:{influxdb.rpc_port}"' in influxdb.config_path.read_text()


@pytest.mark.parametrize("bucket_suffix", ["/autogen", ""])
def test_v2_client_writes_through_the_proxy(influx_v2_proxy: InfluxV2WriteProxy, influx_db: InfluxQLClient,
                                            bucket_suffix: str) -> None:
    lines = [
        "inverter,device=inv1,site=s1 battery_soc_pct=81.5,grid_ok=true 1767225600000",
        "inverter,device=inv1,site=s1 battery_soc_pct=80.25,grid_ok=false 1767225601000",
        "inverter,device=inv2,site=s1 battery_soc_pct=55.0,grid_ok=true 1767225600500",
    ]
    with InfluxDBClient(url=influx_v2_proxy.url, token="x", org="facmon") as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=influx_db.database + bucket_suffix, record=lines, write_precision="ms")
    [series] = influx_db.query('SELECT battery_soc_pct, grid_ok, device FROM inverter')
    assert series.values == (
        (1767225600000, 81.5, True, "inv1"),
        (1767225600500, 55.0, True, "inv2"),
        (1767225601000, 80.25, False, "inv1"),
    )


@pytest.mark.parametrize(("precision", "timestamp"), [("s", 1767225600), ("us", 1767225600000000),
                                                      ("ns", 1767225600000000000)])
def test_v2_proxy_maps_precision(influx_v2_proxy: InfluxV2WriteProxy, influx_db: InfluxQLClient,
                                 precision: str, timestamp: int) -> None:
    response = HTTP.request("POST", f"{influx_v2_proxy.url}/api/v2/write?org=facmon&precision={precision}"
                            f"&bucket={influx_db.database}%2Fautogen", body=f"m v=1 {timestamp}".encode())
    assert response.status == 204, response.data
    assert influx_db.query("SELECT v FROM m")[0].values == ((1767225600000, 1.0),)


def test_v2_proxy_refuses_unknown_precision(influx_v2_proxy: InfluxV2WriteProxy, influx_db: InfluxQLClient) -> None:
    response = HTTP.request("POST", f"{influx_v2_proxy.url}/api/v2/write?bucket={influx_db.database}&precision=h",
                            body=b"m v=1 1")
    assert response.status == 400
    assert influx_db.query("SELECT v FROM m") == []


def test_v2_proxy_returns_influx_errors(influx_v2_proxy: InfluxV2WriteProxy, influx_db: InfluxQLClient) -> None:
    with InfluxDBClient(url=influx_v2_proxy.url, token="x", org="facmon") as client, \
            pytest.raises(ApiException) as caught:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=f"{influx_db.database}/autogen", record="inverter,site=s1 battery_soc_pct=", write_precision="ms")
    assert caught.value.status == 400
    assert "unable to parse" in json.loads(caught.value.body)["error"]


def test_v2_proxy_health_and_ping(influx_v2_proxy: InfluxV2WriteProxy) -> None:
    health = HTTP.request("GET", f"{influx_v2_proxy.url}/health")
    assert (health.status, json.loads(health.data)["status"]) == (200, "pass")
    ping = HTTP.request("GET", f"{influx_v2_proxy.url}/ping")
    assert ping.status == 204
    assert "X-Influxdb-Version" in ping.headers


# --- Alertmanager ------------------------------------------------------------------------------

def test_alertmanager_accepts_and_lists_an_alert(alertmanager: Callable[..., Alertmanager]) -> None:
    server = alertmanager()
    alert = {"labels": {"alertname": "GridDown", "site": "s1", "severity": "critical"},
             "annotations": {"summary": "grid lost at s1"}}
    posted = HTTP.request("POST", f"{server.url}/api/v2/alerts", body=json.dumps([alert]).encode(),
                          headers={"Content-Type": "application/json"})
    assert posted.status == 200, posted.data

    def listed() -> list[dict[str, object]]:
        return json.loads(HTTP.request("GET", f"{server.url}/api/v2/alerts").data)

    [got] = poll_until(listed, timeout_s=5, what="the alert listed")
    assert got["labels"] == alert["labels"]
    assert got["annotations"] == alert["annotations"]
    server.stop()
    assert _refuses_connections(server.port)


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
