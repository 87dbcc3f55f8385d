"""The broker door (issue 17, item 11): with the shipped mosquitto.conf's authentication (passwd and
acl from `facmon acl generate`, `use_username_as_clientid true`) on a real Mosquitto 2.0, a device
account that connects with the collector's client id neither kicks the collector off nor gets the
readings queued for it; the collector's own account still gets all of them (5 of 5). The same steps
against the shipped authentication *without* `use_username_as_clientid` show the failure the issue
reported, so the test proves the line is what closes the door."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.config import FacmonConfig
from core.contract import DeviceKey, Kind, Reading, encode_reading
from core.influxql import InfluxQLClient
from core.site import load_site
from facmon.commands.acl import generate
from facmon.servers import InfluxDB, Mosquitto, shipped_auth_config
from tests.integration.collector.harness import (
    collector_env,
    config_from,
    count_points,
    now_ms,
    running_collector,
    seqs_by_device,
    wait_for_points,
)
from tests.support import poll_until

PARK = Path(__file__).resolve().parents[2] / "simulators" / "sites" / "park.yaml"
INV_MAIN = DeviceKey("park", Kind.INVERTER, "inv-main")
COLLECTOR_ID = "facmon-collector"
"""The collector's default client id (core/settings/mqtt.py), which the issue's impostor used."""
QUIET_S = 0.5
"""How long a client that must receive nothing is watched, after the broker acknowledged everything."""


class Mqtt5:
    """A paho MQTT 5 client with a chosen client id and session, its CONNACK and messages in queues."""

    def __init__(self, broker: Mosquitto, username: str, password: str, client_id: str, *,
                 clean_start: bool = True, session_expiry_s: int = 0, subscribe: str | None = None) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connacks: queue.Queue[tuple[mqtt.ReasonCode, bool]] = queue.Queue()
        self.disconnects: queue.Queue[mqtt.ReasonCode] = queue.Queue()
        self.paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                                reconnect_on_failure=False)
        self.paho.username_pw_set(username, password)
        self.paho.on_connect = lambda c, u, flags, rc, p: self.connacks.put((rc, bool(flags.session_present)))
        self.paho.on_disconnect = lambda c, u, f, rc, p: self.disconnects.put(rc)
        self.paho.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = session_expiry_s
        self.paho.connect(broker.host, broker.port, clean_start=clean_start, properties=props)
        self.paho.loop_start()
        self.reason, self.session_present = self.connacks.get(timeout=10)
        if subscribe is not None:
            granted: queue.Queue[list[mqtt.ReasonCode]] = queue.Queue()
            self.paho.on_subscribe = lambda c, u, mid, codes, p: granted.put(codes)
            self.paho.subscribe(subscribe, qos=1)
            assert [code.value for code in granted.get(timeout=10)] == [1], f"subscription to {subscribe} refused"

    def publish_all(self, readings: list[Reading]) -> None:
        infos = [self.paho.publish(r.device.reading_topic(), encode_reading(r), qos=1) for r in readings]
        poll_until(lambda: all(i.is_published() for i in infos), 10, what="PUBACK of every reading")

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


def _readings(first_seq: int, count: int) -> list[Reading]:
    start = now_ms() - 60_000
    return [Reading(INV_MAIN, start + seq * 1000, seq, {
        "grid_v": 230.0, "grid_ok": True, "mode": "grid", "battery_soc_pct": 80.0, "battery_v": 52.0,
        "battery_a": 1.0, "pv_w": 100.0 + seq, "load_w": 800.0, "fault_code": None})
        for seq in range(first_seq, first_seq + count)]


class UnboundMosquitto(Mosquitto):
    """The shipped authentication without `use_username_as_clientid`: the broker of issue 17, item 11."""

    def _write_config(self) -> None:
        super()._write_config()
        text = self.config_path.read_text()
        assert "use_username_as_clientid true\n" in text
        self.config_path.write_text(text.replace("use_username_as_clientid true\n", ""))


def secured_broker(broker_class: type[Mosquitto], tmp_path: Path) -> Iterator[tuple[Mosquitto, dict[str, str]]]:
    """A started broker with the shipped authentication and the park's accounts: (broker, username → password)."""
    accounts = generate([load_site(PARK)], tmp_path / "auth")
    broker = broker_class(tmp_path / "mosquitto", auth_dir=tmp_path / "auth")
    broker.start()
    try:
        broker.wait_ready(20)
        yield broker, {a.username: a.password for a in accounts}
    finally:
        broker.stop()


@pytest.fixture
def door(tmp_path: Path) -> Iterator[tuple[Mosquitto, dict[str, str]]]:
    yield from secured_broker(Mosquitto, tmp_path)


@pytest.fixture
def unbound(tmp_path: Path) -> Iterator[tuple[Mosquitto, dict[str, str]]]:
    yield from secured_broker(UnboundMosquitto, tmp_path)


def _collector_config(tmp_path: Path, broker: Mosquitto, passwords: dict[str, str], influxdb: InfluxDB,
                      influx_db: InfluxQLClient) -> FacmonConfig:
    return config_from(collector_env(tmp_path, broker.port, influxdb.url, influx_db.database, client_id=COLLECTOR_ID,
                                     extra={"FACMON_MQTT__USERNAME": "facmon-collector",
                                            "FACMON_MQTT__PASSWORD": passwords["facmon-collector"]}))


def test_the_test_broker_runs_the_shipped_authentication_lines(tmp_path: Path) -> None:
    lines = shipped_auth_config(tmp_path)
    assert lines == ["allow_anonymous false", f"password_file {tmp_path / 'passwd'}", f"acl_file {tmp_path / 'acl'}",
                     "use_username_as_clientid true"]


def test_an_impostor_with_the_collectors_client_id_gets_nothing_and_kicks_nobody(
        tmp_path: Path, door: tuple[Mosquitto, dict[str, str]], influxdb: InfluxDB,
        influx_db: InfluxQLClient) -> None:
    broker, passwords = door
    config = _collector_config(tmp_path, broker, passwords, influxdb, influx_db)
    with running_collector(config):
        pass  # the collector's persistent session and subscription now exist; it goes away
    device = Mqtt5(broker, "park.inv-main", passwords["park.inv-main"], "inv-main-firmware")
    device.publish_all(_readings(0, 5))  # queued for the absent collector

    # A device account resuming "the collector's" session, then one starting it afresh (which would wipe it).
    for clean_start in (False, True):
        impostor = Mqtt5(broker, "park.inv-lab", passwords["park.inv-lab"], COLLECTOR_ID, clean_start=clean_start,
                         session_expiry_s=3600)
        assert impostor.reason == 0 and impostor.session_present is False
        with pytest.raises(queue.Empty):
            impostor.messages.get(timeout=QUIET_S)
        impostor.close()

    with running_collector(config) as service:
        assert wait_for_points(influx_db, 5) == 5  # 5 of 5 queued readings
        since = service.source.connected_since
        impostor = Mqtt5(broker, "park.occ-lab", passwords["park.occ-lab"], COLLECTOR_ID, clean_start=False,
                         session_expiry_s=3600, subscribe="facmon/v1/#")
        device.publish_all(_readings(5, 1))
        assert wait_for_points(influx_db, 6) == 6
        assert service.source.connected and service.source.connected_since == since  # never kicked off
        with pytest.raises(queue.Empty):
            impostor.messages.get(timeout=QUIET_S)  # its subscription is refused by the ACL anyway
        impostor.close()
    device.close()
    assert count_points(influx_db) == 6
    assert seqs_by_device(influx_db) == {"inv-main": [0, 1, 2, 3, 4, 5]}


def test_without_the_binding_the_impostor_takes_the_collectors_session(
        tmp_path: Path, unbound: tuple[Mosquitto, dict[str, str]], influxdb: InfluxDB,
        influx_db: InfluxQLClient) -> None:
    broker, passwords = unbound
    config = _collector_config(tmp_path, broker, passwords, influxdb, influx_db)
    with running_collector(config):
        pass
    device = Mqtt5(broker, "park.inv-main", passwords["park.inv-main"], "inv-main-firmware")
    device.publish_all(_readings(0, 5))
    impostor = Mqtt5(broker, "park.inv-lab", passwords["park.inv-lab"], COLLECTOR_ID, clean_start=False)
    assert impostor.reason == 0 and impostor.session_present is True  # the collector's session, queue and all
    impostor.close()  # session expiry 0: the session and the collector's queue are gone
    with running_collector(config) as service:
        device.publish_all(_readings(5, 1))
        assert wait_for_points(influx_db, 1) == 1
        assert service.source.connected
    device.close()
    assert seqs_by_device(influx_db) == {"inv-main": [5]}  # 0 of the 5 queued readings arrived


def test_each_facmon_service_has_its_own_account_and_one_connection_per_account(
        door: tuple[Mosquitto, dict[str, str]]) -> None:
    broker, passwords = door
    services = {name: Mqtt5(broker, name, passwords[name], client_id, subscribe="facmon/v1/#")
                for name, client_id in (("facmon-collector", "facmon-collector"), ("facmon-rules", "facmon-rules"),
                                        ("facmon-api", "facmon-api-1a2b3c4d"))}
    device = Mqtt5(broker, "park.inv-main", passwords["park.inv-main"], "inv-main-firmware")
    device.publish_all(_readings(0, 1))
    for name, client in services.items():
        topic, _ = client.messages.get(timeout=10)
        assert topic == INV_MAIN.reading_topic(), name
        assert client.disconnects.empty(), name

    # A second connection on the same account is the same client: it takes over and the first is closed.
    second_api = Mqtt5(broker, "facmon-api", passwords["facmon-api"], "facmon-api-ffffffff")
    assert second_api.reason == 0
    assert services["facmon-api"].disconnects.get(timeout=10) is not None
    assert services["facmon-collector"].disconnects.empty() and services["facmon-rules"].disconnects.empty()
    for client in (*services.values(), device, second_api):
        client.close()
