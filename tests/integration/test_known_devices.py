"""Known devices only (`sites.known_devices_only`, on whenever `sites.files` describes a site), through
real Mosquitto and InfluxDB: invented devices and invented labels create no series in InfluxDB, no
site in the API and no alert in the rules engine, and are counted and dead-lettered; the described
devices go on as before. And the compose deployment's configuration serves the site it is given,
never the demo park."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import Role
from core.clock import SystemClock
from core.config import load_config
from core.contract import DeviceKey, Kind, Reading, encode_reading
from core.influxql import InfluxQLClient
from core.settings.sites import SitesSettings
from facmon.commands.api import wired_services
from facmon.servers import InfluxDB, Mosquitto
from tests.integration.api_stack import PARK, make_tokens, stack_config
from tests.integration.collector.harness import Publisher, collector_env, config_from, now_ms, running_collector
from tests.integration.test_rules_notifiers import CaptureServer
from tests.integration.test_rules_service import _inverter, _service
from tests.support import poll_until

REPO = Path(__file__).resolve().parents[2]
INVENTED = 200
METRICS = {"grid_v": 230.0, "grid_ok": True, "mode": "grid", "battery_soc_pct": 80.0, "battery_v": 52.0,
           "battery_a": 1.0, "pv_w": 0.0, "load_w": 500.0}


def _series(db: InfluxQLClient) -> list[str]:
    return sorted(row[0] for s in db.query("SHOW SERIES") for row in s.values)


def test_the_collector_stores_only_described_devices_and_labels(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: InfluxQLClient) -> None:
    env = collector_env(tmp_path, mosquitto.port, influxdb.url, influx_db.database,
                        extra={"FACMON_SITES__FILES": str(PARK)})
    start = now_ms() - 60_000
    lab = DeviceKey("park", Kind.OCCUPANCY, "occ-lab")  # described with room "Lab"
    invented = [Reading(DeviceKey("park", Kind.INVERTER, f"inv-{n}"), start, 1, METRICS) for n in range(INVENTED)]
    rooms = [Reading(lab, start + n, n, {"room": f"Lab {n}" if n % 10 else "Lab", "occupied": True})
             for n in range(100)]
    described = [Reading(DeviceKey("park", Kind.INVERTER, "inv-main"), start + n, n, METRICS) for n in range(5)]
    with running_collector(config_from(env)) as service:
        publisher = Publisher(mosquitto.port)
        publisher.publish_readings([*invented, *rooms, *described])
        publisher.publish(DeviceKey("park", Kind.INVERTER, "inv-9999").status_topic(), b"online")
        publisher.wait_all_acked()
        total = INVENTED + 100 + 5 + 1
        poll_until(lambda: service.drain.counts.lines_written >= total, 30, what="every point and reject stored")
        publisher.close()
        assert dict(service.ingest.counts.rejected) == {"unknown_device": INVENTED + 1, "unknown_label": 90}
        assert service.ingest.counts.readings == 10 + 5
        assert len(service.table) == 2  # the strangers left no state behind
    assert [s for s in _series(influx_db) if not s.startswith("facmon_rejects")] == [
        "inverter,device=inv-main,site=park", "occupancy,device=occ-lab,room=Lab,site=park"]
    entries = [json.loads(line) for line in (tmp_path / "dead-letters.jsonl").read_text().splitlines()]
    assert len(entries) == INVENTED + 1 + 90
    assert "no site file describes inverter 'inv-0' of site 'park'" in entries[0]["detail"]


def test_the_rules_engine_raises_no_alert_for_invented_devices(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    capture = CaptureServer()
    service = _service(tmp_path, mosquitto.port, capture.url, SitesSettings(files=(PARK,)))
    service.start()
    publisher = Publisher(mosquitto.port, "test-known-rules")
    try:
        poll_until(lambda: service._subscription.subscribed, 10, what="engine subscribed")
        for n in range(INVENTED):
            device = f"inv-{n}"
            publisher.publish(DeviceKey("park", Kind.INVERTER, device).reading_topic(),
                              _inverter(device, 1, mode="fault"))
        publisher.publish(DeviceKey("park", Kind.INVERTER, "inv-lab").reading_topic(),
                          _inverter("inv-lab", 1, mode="fault"))
        publisher.wait_all_acked()
        body = poll_until(lambda: capture.bodies, 10, what="the described inverter's InverterFault")[0]
        assert [a["labels"]["device"] for a in body["alerts"]] == ["inv-lab"]
        assert {a.labels["device"] for a in service.engine.alerts() if a.rule == "InverterFault"} == {"inv-lab"}
    finally:
        publisher.close()
        service.stop()
        capture.close()


def test_the_api_serves_only_the_described_sites_and_devices(
        tmp_path: Path, mosquitto: Mosquitto, influx_db: InfluxQLClient) -> None:
    with wired_services(stack_config(tmp_path, mosquitto, influx_db), SystemClock()) as services:
        headers = {"Authorization": f"Bearer {make_tokens(services)[Role.VIEWER]}"}
        with TestClient(create_app(services)) as client:
            poll_until(lambda: services.background[0].subscribed, 10, what="API subscribed")
            publisher = Publisher(mosquitto.port, "test-known-api")
            try:
                for n in range(50):
                    device = DeviceKey(f"site-{n}", Kind.INVERTER, "inv-main")
                    publisher.publish(device.reading_topic(), encode_reading(Reading(device, now_ms(), 1, METRICS)))
                inv_main = DeviceKey("park", Kind.INVERTER, "inv-main")
                publisher.publish(inv_main.reading_topic(), encode_reading(Reading(inv_main, now_ms(), 1, METRICS)))
                publisher.wait_all_acked()
                poll_until(lambda: client.get("/api/v1/sites/park/devices/inv-main", headers=headers).json()["latest"],
                           10, what="the described inverter's reading")
                assert [s["id"] for s in client.get("/api/v1/sites", headers=headers).json()] == ["park"]
                assert 'outcome="reject_unknown_device"} 50\n' in client.get("/metrics").text
            finally:
                publisher.close()


def test_the_compose_configuration_serves_the_site_it_is_given(
        tmp_path: Path, mosquitto: Mosquitto, influx_db: InfluxQLClient) -> None:
    """deploy/facmon.yaml names /etc/facmon/sites/park.yaml, where docker-compose.yml mounts deploy/sites/:
    here a directory holding another site's file stands in for that mount."""
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text(encoding="utf-8"))
    mounts = [v for service in compose["services"].values() for v in service.get("volumes", [])]
    assert "./sites:/etc/facmon/sites:ro" in mounts
    mounted = tmp_path / "etc-facmon-sites"
    mounted.mkdir()
    (mounted / "park.yaml").write_text(PARK.read_text(encoding="utf-8").replace("id: park", "id: multan-tp", 1),
                                       encoding="utf-8")
    deployed = tmp_path / "facmon.yaml"
    deployed.write_text((REPO / "deploy" / "facmon.yaml").read_text(encoding="utf-8")
                        .replace("/etc/facmon/sites", str(mounted)), encoding="utf-8")
    base = stack_config(tmp_path, mosquitto, influx_db)
    config = load_config(deployed, {"FACMON_MQTT__PORT": str(mosquitto.port), "FACMON_MQTT__HOST": "127.0.0.1",
                                    "FACMON_INFLUXDB__URL": influx_db.url,
                                    "FACMON_INFLUXDB__DATABASE": influx_db.database,
                                    "FACMON_API__KEYS_DB": str(base.api.keys_db),
                                    "FACMON_RULES__STORE_PATH": str(base.rules.store_path)})
    assert config.sites.admits_only_known_devices
    with wired_services(config, SystemClock()) as services:
        headers = {"Authorization": f"Bearer {make_tokens(services)[Role.VIEWER]}"}
        with TestClient(create_app(services)) as client:
            assert [s["id"] for s in client.get("/api/v1/sites", headers=headers).json()] == ["multan-tp"]
            assert client.get("/api/v1/sites/park", headers=headers).status_code == 404
