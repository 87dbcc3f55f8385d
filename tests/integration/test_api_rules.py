"""Acks and silences made through the API change what the rules engine sends.

One configuration wires both sides: the API exactly as `facmon api` builds it (wired_services, on the
fixtures' Mosquitto and InfluxDB) and the rules engine as `facmon rules run` builds it
(RulesService.from_settings), sharing `rules.store_path`. The engine runs in-process on the same
FakeClock (ticked and delivered by the test, so hours pass in milliseconds); its notifications go
over HTTP to a real webhook receiver. Operators act only through the API with an operator key.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import Role
from core.clock import FakeClock
from core.config import FacmonConfig
from core.contract import DeviceKey, Kind, Reading
from core.influxql import InfluxQLClient
from facmon.commands.api import wired_services
from facmon.servers import Mosquitto
from rules.model import load_rule_files
from rules.service import RulesService
from tests.integration.test_rules_notifiers import CaptureServer

PACK = """
rules:
  - name: GridOutage
    kind: inverter
    condition: {threshold: {metric: grid_ok, op: "==", value: false}}
    labels: {severity: critical}
    annotations: {summary: "grid down at {device}"}
  - name: BatteryLow
    kind: inverter
    condition: {threshold: {metric: battery_soc_pct, op: "<", value: 20}}
    labels: {severity: warning}
    annotations: {summary: "battery low at {device}"}
"""
REPEAT_S = 600.0
START = 1_767_607_200.0  # 2026-01-05T10:00:00Z


@dataclass
class Park:
    """The API client (operator key), the engine, the webhook receiver and the shared clock."""

    api: TestClient
    headers: dict[str, str]
    operator: str
    """How the store names the operator's key: `<name> (key <id>)`."""
    service: RulesService
    hook: CaptureServer
    clock: FakeClock
    seq: int = 0

    def report(self, device: str, grid_ok: bool = True, soc: float = 80.0) -> None:
        self.seq += 1
        metrics = {"grid_v": 230.0 if grid_ok else 0.0, "grid_ok": grid_ok, "mode": "grid" if grid_ok else "battery",
                   "battery_soc_pct": soc, "battery_v": 52.0, "battery_a": 1.0, "pv_w": 0.0, "load_w": 800.0}
        self.service.engine.handle(Reading(DeviceKey("park", Kind.INVERTER, device), int(self.clock.now() * 1000),
                                           self.seq, metrics))

    def run(self, seconds: float, step: float = 10.0, every: dict[str, dict] | None = None) -> None:
        """`seconds` of fake time: each step the devices in `every` report, the engine ticks and the
        delivery sends what is due (to the webhook, over HTTP)."""
        for _ in range(round(seconds / step)):
            self.clock.advance(step)
            for device, reading in (every or {}).items():
                self.report(device, **reading)
            self.service.engine.tick()
            self.service.delivery.deliver_due(self.clock.now())

    def received(self) -> list[tuple[str, str]]:
        """(alertname, status) of every alert in every webhook body received, in order."""
        return [(a["labels"]["alertname"], a["status"]) for body in self.hook.bodies for a in body["alerts"]]

    def alert(self, name: str) -> dict:
        [found] = [a for a in self.api.get("/api/v1/alerts", headers=self.headers).json()
                   if a["labels"]["alertname"] == name]
        return found


def rfc3339(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def park(tmp_path: Path, mosquitto: Mosquitto, influx_db: InfluxQLClient) -> Iterator[Park]:
    pack = tmp_path / "pack.yaml"
    pack.write_text(PACK)
    hook = CaptureServer()
    config = FacmonConfig.model_validate({
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port},
        "influxdb": {"url": influx_db.url, "database": influx_db.database},
        "collector": {"http_listen": None},
        "rules": {"rule_files": [str(pack)], "store_path": str(tmp_path / "var" / "alerts.db"), "write_influx": False,
                  "receivers": [{"name": "oncall", "webhooks": [hook.url]}],
                  "routes": [{"receiver": "oncall", "group_by": ["alertname", "device"], "group_wait_s": 0,
                              "group_interval_s": 60, "repeat_interval_s": REPEAT_S}]},
        "api": {"keys_db": str(tmp_path / "keys.sqlite")},
    })
    clock = FakeClock(START)
    service = RulesService.from_settings(config.rules, config.mqtt, clock, None, load_rule_files([pack]))
    service.engine.source_connected(True)  # as its MQTT subscription does on connect
    try:
        with wired_services(config, clock) as services:
            key, token = services.keys.create("duty operator", Role.OPERATOR)
            with TestClient(create_app(services)) as client:
                yield Park(client, {"Authorization": f"Bearer {token}"}, f"duty operator (key {key.id})", service,
                           hook, clock)
    finally:
        hook.close()


def test_an_ack_through_the_api_stops_the_engines_repeat_notifications(park: Park) -> None:
    every = {"inv-main": {"grid_ok": False}}
    park.run(10, every=every)
    assert park.received() == [("GridOutage", "firing")]
    park.run(REPEAT_S, every=every)
    assert park.received() == [("GridOutage", "firing")] * 2  # the repeat, as the route says

    fingerprint = park.alert("GridOutage")["fingerprint"]
    response = park.api.post(f"/api/v1/alerts/{fingerprint}/ack", json={"comment": "generator started"},
                             headers=park.headers)
    assert response.status_code == 200, response.text
    park.run(5 * REPEAT_S, every=every)
    assert park.received() == [("GridOutage", "firing")] * 2  # acknowledged: no more repeats
    [engine_alert] = park.service.engine.alert_by_rule("GridOutage")
    assert (engine_alert.state.value, engine_alert.acked_by) == ("firing", park.operator)


def test_a_silence_through_the_api_mutes_a_new_alert_until_it_is_expired(park: Park) -> None:
    every = {"inv-lab": {"soc": 80.0}}
    park.run(10, every=every)
    response = park.api.post("/api/v1/silences", headers=park.headers, json={
        "matchers": ["alertname=BatteryLow", "device=inv-lab"], "ends_at": rfc3339(park.clock.now() + 3600),
        "comment": "battery swap in progress"})
    assert response.status_code == 201, response.text
    silence_id = response.json()["id"]

    every["inv-lab"] = {"soc": 10.0}
    park.run(2 * REPEAT_S, every=every)
    assert park.received() == []
    battery = park.alert("BatteryLow")
    assert (battery["state"], battery["muted_by"]) == ("firing", [f"silence:{silence_id}"])

    response = park.api.delete(f"/api/v1/silences/{silence_id}", headers=park.headers)
    assert (response.status_code, response.json()["state"]) == (200, "expired")
    park.run(10, every=every)
    assert park.received() == [("BatteryLow", "firing")]
    assert park.alert("BatteryLow")["muted_by"] == []
