"""The API against a real broker and a real InfluxDB: history equals what was written (downsampling
checked on known data), latest state follows readings published through Mosquitto, and hostile
input never changes a query."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import Role
from core.clock import SystemClock
from core.contract import DeviceKey, Kind, Reading, encode_reading
from core.influxql import InfluxQLClient
from facmon.commands.api import wired_services
from facmon.servers import Mosquitto
from tests.integration.api_stack import make_tokens, stack_config, write_readings
from tests.support import poll_until

INV = DeviceKey("park", Kind.INVERTER, "inv-main")
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a minute boundary


def soc_at(i: int) -> float:
    return round(50 + 30 * ((i * 7919) % 1000) / 1000, 3)


def inverter(ts_ms: int, seq: int, soc: float, grid_ok: bool = True) -> Reading:
    return Reading(INV, ts_ms, seq, {"grid_v": 230.0 if grid_ok else 0.0, "grid_ok": grid_ok,
                                     "mode": "grid" if grid_ok else "battery", "battery_soc_pct": soc,
                                     "battery_v": 52.0, "battery_a": 1.0, "pv_w": 100.0, "load_w": 900.0})


@pytest.fixture
def stack(tmp_path: Path, mosquitto: Mosquitto, influx_db: InfluxQLClient):
    config = stack_config(tmp_path, mosquitto, influx_db)
    with wired_services(config, SystemClock()) as services:
        tokens = make_tokens(services)
        with TestClient(create_app(services)) as client:
            yield client, services, {"Authorization": f"Bearer {tokens[Role.VIEWER]}"}


def test_history_equals_what_was_written_and_downsamples_exactly(stack, influx_db: InfluxQLClient) -> None:
    client, _, headers = stack
    readings = [inverter(T0_MS + i * 1000, i, soc_at(i)) for i in range(600)]  # 10 min of 1 s data
    write_readings(influx_db, readings)
    window = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:10:00Z", "metrics": "battery_soc_pct"}
    for agg, expect in (("mean", statistics.fmean), ("min", min), ("max", max), ("last", lambda v: v[-1])):
        response = client.get("/api/v1/history/park/inv-main", params={**window, "interval": "1m", "agg": agg},
                              headers=headers)
        assert response.status_code == 200, response.text
        (series,) = response.json()["series"]
        values = series["values"]["battery_soc_pct"]
        expected = [expect([soc_at(i) for i in range(m * 60, m * 60 + 60)]) for m in range(10)]
        assert len(values) == 10
        assert values == pytest.approx(expected, abs=1e-9), agg
        assert series["times"][0] == "2026-01-01T00:00:00Z" and series["times"][9] == "2026-01-01T00:09:00Z"
    raw = client.get("/api/v1/history/park/inv-main", params={**window, "interval": "1s", "agg": "last",
                                                              "metrics": "grid_ok"}, headers=headers).json()
    assert raw["series"][0]["values"]["grid_ok"] == [True] * 600


def test_group_history_has_one_series_per_device(stack, influx_db: InfluxQLClient) -> None:
    client, _, headers = stack
    other = DeviceKey("park", Kind.INVERTER, "inv-lab")
    write_readings(influx_db, [inverter(T0_MS + i * 1000, i, 60.0) for i in range(120)]
                   + [Reading(other, r.ts_ms, r.seq, r.metrics) for r in
                      (inverter(T0_MS + i * 1000, i, 40.0) for i in range(120))])
    body = client.get("/api/v1/history/park", params={"kind": "inverter", "start": "2026-01-01T00:00:00Z",
                                                      "end": "2026-01-01T00:02:00Z", "interval": "1m",
                                                      "metrics": "battery_soc_pct"}, headers=headers).json()
    assert {s["device"]: s["values"]["battery_soc_pct"] for s in body["series"]} == {
        "inv-lab": [40.0, 40.0], "inv-main": [60.0, 60.0]}


def test_hostile_input_is_refused_and_the_data_is_unchanged(stack, influx_db: InfluxQLClient) -> None:
    client, _, headers = stack
    write_readings(influx_db, [inverter(T0_MS + i * 1000, i, 70.0) for i in range(60)])
    hostile = {"start": "2026-01-01T00:00:00Z' ; DROP MEASUREMENT inverter; --", "end": "2026-01-02T00:00:00Z"}
    assert client.get("/api/v1/history/park/inv-main", params=hostile, headers=headers).status_code == 422
    assert client.get("/api/v1/history/park'%20OR%20'1'='1", params={"kind": "inverter", **hostile},
                      headers=headers).status_code == 422
    count = influx_db.query('SELECT count("seq") FROM "inverter"')[0].values[0][1]
    assert count == 60


def test_latest_state_follows_readings_and_status_through_the_broker(stack, mosquitto: Mosquitto) -> None:
    client, services, headers = stack
    poll_until(lambda: services.background[0].subscribed, 10, what="API subscribed")
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-device")
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    try:
        url = "/api/v1/sites/park/devices/inv-main"
        now_ms = int(SystemClock().now() * 1000)
        publisher.publish(INV.status_topic(), "online", qos=1, retain=True).wait_for_publish(5)
        publisher.publish(INV.reading_topic(), encode_reading(inverter(now_ms, 1, 77.0)), qos=1).wait_for_publish(5)
        body = poll_until(lambda: (b := client.get(url, headers=headers).json())["latest"] and b, 10,
                          what="first reading in the API")
        assert (body["presence"], body["latest"]["seq"], body["latest"]["metrics"]["battery_soc_pct"]) == (
            "online", 1, 77.0)
        publisher.publish(INV.reading_topic(), encode_reading(inverter(now_ms + 1000, 2, 76.5, grid_ok=False)),
                          qos=1).wait_for_publish(5)
        body = poll_until(lambda: (b := client.get(url, headers=headers).json())["latest"]["seq"] == 2 and b, 10)
        assert body["latest"]["metrics"]["grid_ok"] is False
        publisher.publish(INV.status_topic(), "offline", qos=1, retain=True).wait_for_publish(5)
        poll_until(lambda: client.get(url, headers=headers).json()["reason"] == "announced_offline", 10)
        bad = json.dumps({"ts": now_ms, "seq": 3}).encode()  # missing metrics: rejected, state unchanged
        publisher.publish(INV.reading_topic(), bad, qos=1).wait_for_publish(5)
        poll_until(lambda: "reject_missing_field" in client.get("/metrics").text, 10)
        assert client.get(url, headers=headers).json()["latest"]["seq"] == 2
    finally:
        publisher.loop_stop()
        publisher.disconnect()


def test_facmon_api_takes_each_devices_max_quiet_from_its_site_file(tmp_path: Path, mosquitto: Mosquitto,
                                                                    influx_db: InfluxQLClient) -> None:
    from core.clock import FakeClock
    from tests.integration.api_stack import PARK

    site = tmp_path / "park.yaml"
    site.write_text(PARK.read_text(encoding="utf-8").replace("{id: occ-lab, room: Lab, capacity: 30}",
                                                             "{id: occ-lab, room: Lab, capacity: 30, max_quiet: 2h}"))
    clock = FakeClock()
    with wired_services(stack_config(tmp_path, mosquitto, influx_db, site_files=[site]), clock) as services:
        lab, room = (DeviceKey("park", Kind.OCCUPANCY, device) for device in ("occ-lab", "occ-room-1"))
        for key in (lab, room):
            services.states.observe(Reading(key, int(clock.now() * 1000), 1, {"room": "x", "occupied": False}),
                                    clock.now())
        clock.advance(services.settings.stale_after_s + 1)
        assert [e.state.device for e in services.states.sweep(clock.now())] == [room]
        clock.advance(7200)
        assert [e.state.device for e in services.states.sweep(clock.now())] == [lab]


def test_readyz_reports_broker_influx_and_store(stack) -> None:
    client, services, _ = stack
    poll_until(lambda: services.background[0].subscribed, 10, what="API subscribed")
    body = client.get("/readyz").json()
    assert body == {"ready": True, "checks": [
        {"name": "broker", "ok": True, "detail": "connected"},
        {"name": "influxdb", "ok": True, "detail": "ping ok"},
        {"name": "rules_store", "ok": True, "detail": "readable"}]}
