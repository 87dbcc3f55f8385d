"""The broker's queue limit is not a silent cliff (issue 19, item 3): a real Mosquitto 2.0 with a small
`max_queued_messages` queues for a collector that is away; the rules service, reading the broker's
`$SYS` counters, warns at half the limit, pages when the broker drops, counts the drops exactly,
and resolves the warning when the collector comes back and drains its queue."""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.clock import SystemClock
from core.contract import DeviceKey, Kind, Reading, encode_reading
from core.settings.mqtt import MqttSettings
from core.settings.rules import BrokerWatchSettings, RulesSettings
from rules.broker_watch import DROPPING, QUEUE_FILLING
from rules.model import load_rule_files
from rules.service import RulesService
from rules.store import AlertStore
from tests.integration.collector.harness import Publisher
from tests.integration.test_rules_service import PACK
from tests.support import poll_until

LIMIT = 200
CLOCK = SystemClock()


def _collector_session(port: int, received: list[bytes]) -> mqtt.Client:
    """A collector's persistent QoS 1 session (MQTT 5, clean_start false), connected and subscribed;
    what it is delivered goes to `received`."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="facmon-collector", protocol=mqtt.MQTTv5)
    client.on_message = lambda _c, _u, message: received.append(message.payload)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    granted: list[bool] = []
    client.on_subscribe = lambda *_args: granted.append(True)
    client.connect("127.0.0.1", port, clean_start=False, properties=properties)
    client.loop_start()
    poll_until(client.is_connected, 10, what="collector session connected")
    client.subscribe("facmon/v1/#", qos=1)
    poll_until(lambda: granted, 10, what="collector subscribed")
    return client


def _publish(publisher: Publisher, first: int, count: int) -> None:
    device = DeviceKey("park", Kind.INVERTER, "inv-q")
    for seq in range(first, first + count):
        reading = Reading(device, int(CLOCK.now() * 1000), seq, {
            "grid_v": 230.0, "grid_ok": True, "mode": "grid", "battery_soc_pct": 80.0, "battery_v": 52.0,
            "battery_a": 1.0, "pv_w": 0.0, "load_w": 500.0})
        publisher.publish(device.reading_topic(), encode_reading(reading))
    publisher.wait_all_acked(10)


def test_queue_warning_before_the_limit_drops_counted_and_resolved_after_the_drain(tmp_path, mosquitto_factory):
    broker = mosquitto_factory(extra_config=f"sys_interval 1\nmax_queued_messages {LIMIT}\n")
    pack = tmp_path / "pack.yaml"
    pack.write_text(PACK)
    settings = RulesSettings(rule_files=[pack], store_path=tmp_path / "alerts.db", evaluation_interval_s=0.2,
                             write_influx=False,
                             broker_watch=BrokerWatchSettings(queue_limit=LIMIT, warn_fraction=0.5, warn_left_s=0,
                                                              drop_hold_s=3600))
    service = RulesService.from_settings(settings, MqttSettings(host="127.0.0.1", port=broker.port), CLOCK, None,
                                         load_rule_files([pack]))
    collector = _collector_session(broker.port, [])
    collector.disconnect()  # away (InfluxDB down, disk full): the broker queues for its session
    collector.loop_stop()
    publisher = Publisher(broker.port, "queue-devices")
    store = AlertStore(tmp_path / "alerts.db", CLOCK)  # the engine's store, read as the API reads it

    def state(rule: str) -> str | None:
        found = [a for a in store.all_alerts() if a.rule == rule]
        return found[0].state.value if found else None

    service.start()
    try:
        poll_until(lambda: service.broker_watch.estimate() is not None, 10, what="the broker's counters heard")
        assert service.broker_watch.estimate().queued == 0
        _publish(publisher, 0, LIMIT // 2 - 10)
        poll_until(lambda: service.broker_watch.estimate().queued == LIMIT // 2 - 10, 10, what="90 queued")
        assert state(QUEUE_FILLING) is None  # below half the limit

        _publish(publisher, 1000, 20)
        poll_until(lambda: state(QUEUE_FILLING) == "firing", 10, what="the queue warning")
        assert state(DROPPING) is None  # nothing dropped yet
        [warning] = [a for a in store.all_alerts() if a.rule == QUEUE_FILLING]
        assert warning.annotations["queued"] == str(LIMIT // 2 + 10)

        _publish(publisher, 2000, LIMIT)  # 110 + 200: the broker keeps 200 and drops the newest 110
        poll_until(lambda: state(DROPPING) == "firing", 10, what="the drop alert")
        poll_until(lambda: service.broker_watch.dropped_total == LIMIT // 2 + 10, 10, what="110 drops counted")
        [dropping] = [a for a in store.all_alerts() if a.rule == DROPPING]
        assert dropping.labels["severity"] == "critical"

        delivered: list[bytes] = []
        back = _collector_session(broker.port, delivered)  # the collector returns and takes its queue
        poll_until(lambda: len(delivered) == LIMIT, 10, what="the queue delivered")
        poll_until(lambda: state(QUEUE_FILLING) == "resolved", 10, what="the warning resolved")
        back.disconnect()
        back.loop_stop()
    finally:
        publisher.close()
        service.stop()
        store.close()


def test_an_acl_without_the_broker_counters_leaves_the_engine_subscribed_to_the_readings(tmp_path):
    """An ACL generated before the broker watch existed does not grant `$SYS/broker/#` to facmon-rules.
    Mosquitto 2.0 then grants the subscription in the SUBACK and delivers nothing of it (a broker that
    refuses it there gets a warning logged: the counters are optional topics, judged apart); either
    way the engine stays subscribed to the readings."""
    import logging

    from core.mqtt_subscriber import SessionSpec, Subscriber
    from core.site import load_site
    from facmon.commands.acl import BROKER_COUNTERS, generate
    from facmon.servers import Mosquitto
    from rules.broker_watch import TOPICS
    from simulators.scenario import DEFAULT_SITE
    from tests.integration.test_acl_mosquitto import Client as AclClient

    accounts = {a.username: a.password for a in generate([load_site(DEFAULT_SITE)], tmp_path / "auth")}
    acl = tmp_path / "auth" / "acl"
    old = [line for line in acl.read_text().splitlines() if BROKER_COUNTERS not in line]
    assert len(old) < len(acl.read_text().splitlines())  # the generated file grants them today
    acl.write_text("\n".join(old) + "\n")
    broker = Mosquitto(tmp_path / "mosquitto", auth_dir=tmp_path / "auth")
    broker.start()
    got: list[str] = []
    settings = MqttSettings(host=broker.host, port=broker.port, username="facmon-rules",
                            password=accounts["facmon-rules"])
    session = SessionSpec("facmon-rules", ("facmon/v1/+/+/+/reading",), qos=1, persistent=False,
                          optional_topics=TOPICS)
    subscriber = Subscriber(settings, session, SystemClock(), "the rules engine", logging.getLogger("test"),
                            lambda topic, _payload: got.append(topic))
    try:
        broker.wait_ready(20)
        subscriber.start()
        poll_until(lambda: subscriber.subscribed, 10, what="subscribed to the readings")
        device = AclClient(broker, "park.inv-main", accounts["park.inv-main"])
        try:
            assert device.publish("facmon/v1/park/inverter/inv-main/reading", b"{}") == 0
        finally:
            device.close()
        poll_until(lambda: "facmon/v1/park/inverter/inv-main/reading" in got, 10, what="the reading delivered")
        assert not any(topic.startswith("$SYS") for topic in got)
    finally:
        subscriber.stop()
        broker.stop()
