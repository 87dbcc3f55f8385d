"""What did not map is visible over HTTP and on the command line; a bridge restart keeps each device's seq."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bridge.http import bridge_http, metrics_text
from core.influxql import InfluxQLClient
from facmon.cli import main
from facmon.servers import InfluxDB, Mosquitto
from tests.integration.bridge.harness import bridge_env, running_bridge
from tests.integration.collector.harness import (
    Publisher,
    collector_env,
    config_from,
    running_collector,
    seqs_by_device,
    wait_for_points,
)
from tests.support import poll_until


def test_rejects_are_listed_by_http_and_by_facmon_bridge_rejects(
        tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    env = bridge_env(tmp_path, ["zigbee2mqtt", "tasmota"])
    env.update({"FACMON_MQTT__PORT": str(mosquitto.port), "FACMON_MQTT__RECONNECT_MAX_S": "1"})
    config = config_from(env)
    with running_bridge(config) as bridge:
        http = bridge_http(bridge, "127.0.0.1", 0)
        http.start()
        try:
            publisher = Publisher(mosquitto.port)
            publisher.publish("zigbee2mqtt/hall_pir", b'{"occupancy": "maybe"}')
            publisher.publish("tele/unknown_plug/SENSOR", b'{"Time":"2026-01-15T14:30:05","Switch1":"ON"}')
            publisher.publish("zigbee2mqtt/hall_pir", b"\xff\xfe not json")
            publisher.wait_all_acked()
            publisher.close()
            poll_until(lambda: bridge.rejects.total() == 3, 10, what="3 drops")
            base = f"http://127.0.0.1:{http.port}"
            body = httpx.get(f"{base}/rejects?limit=2").json()
            assert body["counts"] == {"bad_json": 1, "unknown_device": 1, "wrong_type": 1}
            assert [e["reason"] for e in body["recent"]] == ["bad_json", "unknown_device"]
            assert body["recent"][1]["topic"] == "tele/unknown_plug/SENSOR"
            assert body["recent"][1]["payload_excerpt"].startswith('{"Time":"2026-01-15T14:30:05"')
            metrics = httpx.get(f"{base}/metrics").text
            assert 'facmon_bridge_messages_dropped_total{reason="wrong_type",source="zigbee2mqtt-pir"} 1.0' in metrics
            assert "facmon_bridge_messages_received_total 3.0" in metrics
            assert httpx.get(f"{base}/rejects?limit=x").status_code == 400

            monkeypatch.setenv("FACMON_BRIDGE__HTTP_LISTEN", f"127.0.0.1:{http.port}")
            assert main(["bridge", "rejects", "--reason", "wrong_type"]) == 0
            out = capsys.readouterr().out
            assert "dropped by reason: bad_json=1, unknown_device=1, wrong_type=1" in out
            assert "- wrong_type [zigbee2mqtt-pir] zigbee2mqtt/hall_pir: occupied: 'maybe' is not true/false" in out
        finally:
            http.stop()
    assert main(["bridge", "rejects"]) == 1  # nobody answers now: said, not a traceback
    assert "is `facmon bridge` running?" in capsys.readouterr().err


def test_a_restarted_bridge_goes_on_with_each_devices_seq(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: InfluxQLClient) -> None:
    env = collector_env(tmp_path, mosquitto.port, influxdb.url, influx_db.database)
    env.update(bridge_env(tmp_path, ["zigbee2mqtt"]))
    config = config_from(env)
    publisher = Publisher(mosquitto.port)
    with running_collector(config):
        stored = 0
        for _run in range(2):
            with running_bridge(config) as bridge:
                for occupied in (b"true", b"false"):
                    publisher.publish("zigbee2mqtt/hall_pir", b'{"occupancy": %s}' % occupied)
                    publisher.wait_all_acked()
                    stored += 1
                    # one at a time, so that each has a receive time of its own to the millisecond
                    wait_for_points(influx_db, stored, measurement="occupancy")
                # the first reading of the topic took the general path, the second the topic's plan
                assert "facmon_bridge_readings_planned_total 1.0" in metrics_text(bridge).decode()
    publisher.close()
    assert seqs_by_device(influx_db, "occupancy") == {"pir-hall": [0, 1, 2, 3]}
