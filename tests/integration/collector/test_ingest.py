"""Readings published to a real Mosquitto reach a real InfluxDB 1.6.7 through the collector, through
both write APIs, exactly once each and with their values intact."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from collector.http import metrics_text
from collector.service import CollectorService
from core.influxql import InfluxQLClient
from facmon.servers import InfluxDB, Mosquitto
from tests.integration.collector.harness import (
    Publisher,
    collector_env,
    config_from,
    count_points,
    inverter_readings,
    now_ms,
    running_collector,
    seqs_by_device,
    wait_for_points,
)
from tests.servers import InfluxV2WriteProxy


def metrics_of(service: CollectorService) -> dict[str, float]:
    """The service's /metrics as {name: value} for the unlabelled samples."""
    return {line.split()[0]: float(line.split()[1]) for line in metrics_text(service).decode().splitlines()
            if line and not line.startswith("#") and "{" not in line}


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_every_reading_lands_once_with_its_values(api: str, tmp_path: Path, mosquitto: Mosquitto,
                                                  influxdb: InfluxDB, influx_v2_proxy: InfluxV2WriteProxy,
                                                  influx_db: InfluxQLClient) -> None:
    url = influxdb.url if api == "v1" else influx_v2_proxy.url
    config = config_from(collector_env(tmp_path, mosquitto.port, url, influx_db.database, api=api))
    start = now_ms() - 3_600_000
    readings = inverter_readings("park", devices=5, per_device=40, start_ms=start)
    with running_collector(config) as service:
        connected_by = time.time()
        publisher = Publisher(mosquitto.port)
        publisher.publish_readings(readings)
        publisher.publish_readings(readings[:10])  # a repeated publish: stored once, counted as duplicates
        publisher.wait_all_acked()
        wait_for_points(influx_db, len(readings))
        publisher.close()
        assert service.table.counts.duplicates == 10
        assert service.ingest.counts.readings == 200
        metrics = metrics_of(service)
        assert metrics["facmon_collector_points_written_total"] == 200
        assert metrics["facmon_collector_broker_connected"] == 1
        assert metrics["facmon_collector_broker_connected_since_seconds"] <= connected_by
        assert connected_by - 30 < metrics["facmon_collector_broker_connected_since_seconds"]
        assert connected_by < metrics["facmon_collector_last_write_time_seconds"] <= time.time()
    assert count_points(influx_db) == 200
    assert seqs_by_device(influx_db) == {f"inv-{d}": list(range(40)) for d in range(5)}
    rows = influx_db.query("SELECT * FROM inverter WHERE device = 'inv-3' AND seq = 17")[0].rows()
    assert rows == [{"time": start + 17_000, "battery_a": -3.5, "battery_soc_pct": 17.0, "battery_v": 51.2,
                     "device": "inv-3", "grid_ok": True, "grid_v": 223.017, "load_w": 900.0, "mode": "grid",
                     "pv_w": 1017.0, "seq": 17, "site": "park"}]


def test_mqtt_311_persistent_session_keeps_readings_while_the_collector_is_away(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: InfluxQLClient) -> None:
    env = collector_env(tmp_path, mosquitto.port, influxdb.url, influx_db.database,
                        extra={"FACMON_MQTT__PROTOCOL": "3.1.1"})
    readings = inverter_readings("park", devices=3, per_device=30, start_ms=now_ms() - 3_600_000)
    with running_collector(config_from(env)) as service:
        assert service.source.protocol_name == "3.1.1"
    publisher = Publisher(mosquitto.port)
    publisher.publish_readings(readings)  # nobody connected: the broker queues them for the session
    publisher.wait_all_acked()
    publisher.close()
    with running_collector(config_from(env)):
        wait_for_points(influx_db, len(readings))
    assert seqs_by_device(influx_db) == {f"inv-{d}": list(range(30)) for d in range(3)}


def test_shared_subscription_splits_the_stream_and_stores_it_once(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: InfluxQLClient) -> None:
    configs = [config_from(collector_env(tmp_path / f"c{i}", mosquitto.port, influxdb.url, influx_db.database,
                                         client_id=f"facmon-collector-{i}",
                                         extra={"FACMON_COLLECTOR__MQTT__SHARED_GROUP": "facmon"})) for i in range(2)]
    readings = inverter_readings("park", devices=10, per_device=40, start_ms=now_ms() - 3_600_000)
    with running_collector(configs[0]) as first, running_collector(configs[1]) as second:
        publisher = Publisher(mosquitto.port)
        publisher.publish_readings(readings)
        publisher.wait_all_acked()
        publisher.close()
        wait_for_points(influx_db, len(readings))
        shares = (first.ingest.counts.readings, second.ingest.counts.readings)
    assert sum(shares) == len(readings) and min(shares) > 0, shares
    assert seqs_by_device(influx_db) == {f"inv-{d}": list(range(40)) for d in range(10)}
