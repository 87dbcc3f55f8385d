"""Poison messages through real Mosquitto, one test per stage that decodes readings: the collector,
the rules engine and the API. Each gets the messages that used to stop it (a `ts` of 401 digits, a
`seq` leaping to 2^62, a second reading with the same `ts`) and one that makes its handler fail on
purpose (standing in for a bug nobody has found yet); each keeps running, and the readings that
follow are stored, alerted on and served."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import Role
from core.clock import SystemClock
from core.contract import DeviceKey, Kind, Reading, encode_reading
from core.influxql import InfluxQLClient
from facmon.commands.api import wired_services
from facmon.servers import InfluxDB, Mosquitto
from tests.integration.api_stack import make_tokens, stack_config
from tests.integration.collector.harness import (
    Publisher,
    collector_env,
    config_from,
    now_ms,
    running_collector,
    seqs_by_device,
    wait_for_points,
)
from tests.integration.test_rules_notifiers import CaptureServer
from tests.integration.test_rules_service import _inverter, _service
from tests.support import poll_until

INV = DeviceKey("park", Kind.INVERTER, "inv-a")
METRICS = {"grid_v": 230.0, "grid_ok": True, "mode": "grid", "battery_soc_pct": 80.0, "battery_v": 52.0,
           "battery_a": 1.0, "pv_w": 0.0, "load_w": 500.0}


def _body(ts: object, seq: object, **changes: object) -> bytes:
    return json.dumps({"ts": ts, "seq": seq, **METRICS, **changes}).encode()


def poison(device: DeviceKey, ts_ms: int) -> list[bytes]:
    """What used to stop a stage or lose a reading silently, for `device`, whose last good reading is
    seq 1 at `ts_ms`."""
    return [
        _body(10**400, 2),                  # OverflowError in the decoder
        _body(ts_ms + 1000, 2**62),         # MemoryError in the collector's duplicate window
        _body(ts_ms + 1000, 2**62 + 1),     # same ts as the reading before, another seq
        _body(ts_ms + 2000, 1).replace(b'"seq": 1', b'"seq": ' + b"[" * 900 + b"]" * 900),  # repr() recursing
    ]


class _FailOn:
    """Wraps a handler so that it raises for one marker: the stand-in for a bug in facmon."""

    def __init__(self, handler: Callable[..., object], marker: Callable[[object], bool]) -> None:
        self.handler, self.marker, self.raised = handler, marker, 0

    def __call__(self, *args: object) -> object:
        if any(self.marker(arg) for arg in args):
            self.raised += 1
            raise RuntimeError("a bug nobody has found yet")
        return self.handler(*args)


def test_the_collector_dead_letters_poison_and_stores_what_follows(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: InfluxQLClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = config_from(collector_env(tmp_path, mosquitto.port, influxdb.url, influx_db.database))
    start = now_ms() - 60_000
    first = Reading(INV, start, 1, METRICS)
    later = [Reading(INV, start + 10_000 + i * 1000, 2**62 + 1 + i, METRICS) for i in range(3)]
    marked = Reading(DeviceKey("park", Kind.INVERTER, "inv-bug"), start, 1, METRICS)
    with running_collector(config) as service:
        table_observe = _FailOn(service.table._observe, lambda arg: arg == 1234567)
        monkeypatch.setattr(service.table, "_observe", table_observe)
        publisher = Publisher(mosquitto.port)
        publisher.publish_readings([first])
        for payload in poison(INV, start):
            publisher.publish(INV.reading_topic(), payload)
        publisher.publish(marked.device.reading_topic(), encode_reading(Reading(marked.device, start, 1234567,
                                                                                METRICS)))
        publisher.publish_readings(later)
        publisher.wait_all_acked()
        poll_until(lambda: service.ingest.counts.received == 9, 20, what="9 messages received")
        wait_for_points(influx_db, 5)
        poll_until(lambda: service.acked == 9, 20, what="every message acknowledged, poison included")
        publisher.close()
        assert dict(service.ingest.counts.rejected) == {"bad_ts": 1, "ts_conflict": 1, "bad_seq": 1,
                                                        "handler_failed": 1}
        assert (service.table.counts.jumps, service.table.counts.gaps, table_observe.raised) == (1, 0, 1)
    assert seqs_by_device(influx_db) == {"inv-a": [1, 2**62, *(r.seq for r in later)]}
    entries = [json.loads(line) for line in (tmp_path / "dead-letters.jsonl").read_text().splitlines()]
    assert sorted(e["reason"] for e in entries) == ["bad_seq", "bad_ts", "handler_failed", "ts_conflict"]


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    server = CaptureServer()
    yield server
    server.close()


def test_the_rules_engine_skips_poison_and_alerts_on_what_follows(
        tmp_path: Path, mosquitto: Mosquitto, capture: CaptureServer, monkeypatch: pytest.MonkeyPatch) -> None:
    service = _service(tmp_path, mosquitto.port, capture.url)
    handle = _FailOn(service.engine.handle, lambda arg: isinstance(arg, Reading) and arg.device.device == "inv-bug")
    monkeypatch.setattr(service.engine, "handle", handle)
    service._subscription._on_message = handle  # built with the engine's handle before the patch
    service.start()
    publisher = Publisher(mosquitto.port, "test-poison-rules")
    try:
        poll_until(lambda: service._subscription.subscribed, 10, what="engine subscribed")
        start = now_ms() - 5000
        publisher.publish(INV.reading_topic(), _body(start, 1))
        for payload in poison(INV, start):
            publisher.publish(INV.reading_topic(), payload)
        publisher.publish(DeviceKey("park", Kind.INVERTER, "inv-bug").reading_topic(), _inverter("inv-bug", 1))
        publisher.publish(INV.reading_topic(), _body(now_ms(), 2**62 + 7, mode="fault", grid_ok=False))
        publisher.wait_all_acked()
        body = poll_until(lambda: capture.bodies, 10, what="the InverterFault webhook after the poison")[0]
        assert [(a["labels"]["alertname"], a["labels"]["device"]) for a in body["alerts"]] == [
            ("InverterFault", "inv-a")]
        assert (service._subscription.poison_messages, handle.raised) == (1, 1)
        assert service._subscription.subscribed
    finally:
        publisher.close()
        service.stop()


def test_the_api_skips_poison_and_serves_what_follows(
        tmp_path: Path, mosquitto: Mosquitto, influx_db: InfluxQLClient, monkeypatch: pytest.MonkeyPatch) -> None:
    config = stack_config(tmp_path, mosquitto, influx_db, site_files=())  # its devices are in no site file
    with wired_services(config, SystemClock()) as services:
        headers = {"Authorization": f"Bearer {make_tokens(services)[Role.VIEWER]}"}
        subscription = services.background[0]
        monkeypatch.setattr(subscription, "_on_events", _FailOn(
            subscription._on_events, lambda events: any(e.state.device.device == "inv-bug" for e in events)))
        with TestClient(create_app(services)) as client:
            poll_until(lambda: subscription.subscribed, 10, what="API subscribed")
            publisher = Publisher(mosquitto.port, "test-poison-api")
            try:
                start = now_ms() - 5000
                publisher.publish(INV.reading_topic(), _body(start, 1))
                for payload in poison(INV, start):
                    publisher.publish(INV.reading_topic(), payload)
                publisher.publish(DeviceKey("park", Kind.INVERTER, "inv-bug").reading_topic(),
                                  _inverter("inv-bug", 1))
                publisher.publish(INV.reading_topic(), _body(now_ms(), 2**62 + 9, battery_soc_pct=42.5))
                publisher.wait_all_acked()
                url = "/api/v1/sites/park/devices/inv-a"
                latest = poll_until(lambda: (b := client.get(url, headers=headers).json().get("latest"))
                                    and b["seq"] == 2**62 + 9 and b, 10, what="the reading after the poison")
                assert latest["metrics"]["battery_soc_pct"] == 42.5
                metrics = client.get("/metrics").text
                assert '{outcome="handler_failed"} 1\n' in metrics, metrics
                assert '{outcome="reject_bad_ts"} 1\n' in metrics
                assert subscription.subscribed
            finally:
                publisher.close()
