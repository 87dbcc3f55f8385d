"""Bad input through real Mosquitto, the collector and real InfluxDB 1.6.7: one message for each reject
reason among valid readings. The collector survives, stores every valid reading once, counts each
reason exactly, and dead-letters each reject to the file and to `facmon_rejects`; InfluxDB refusing a
contract-valid point costs only that point; rejects are logged without flooding.

`bad_topic` cannot arrive through the collector's subscriptions (the broker only delivers
`facmon/v1/+/+/+/reading|status`); tests/unit/core/test_decode.py covers it."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest
import urllib3

from core.contract import DeviceKey, Kind, Reading
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
from tests.support import poll_until

WEEK_MS = 7 * 86_400_000


def _valid_body(ts_ms: int) -> dict[str, object]:
    return {"ts": ts_ms, "seq": 1, "grid_v": 230.0, "grid_ok": True, "mode": "grid", "battery_soc_pct": 50.0,
            "battery_v": 51.0, "battery_a": 1.0, "pv_w": 0.0, "load_w": 100.0}


def bad_messages(now: int) -> dict[str, tuple[str, bytes]]:
    """One message per decode reject reason that can reach the collector: reason → (topic, payload)."""
    topic = DeviceKey("park", Kind.INVERTER, "inv-bad").reading_topic()

    def body(**changes: object) -> bytes:
        return json.dumps({k: v for k, v in {**_valid_body(now - 60_000), **changes}.items() if v != "DROP"}).encode()

    return {
        "payload_too_large": (topic, b'{"fault_code": "' + b"E" * 17_000 + b'"}'),
        "unknown_kind": ("facmon/v1/park/pump/p-1/reading", body()),
        "bad_id": ("facmon/v1/park/inverter/INV-9/reading", body()),
        "bad_encoding": (topic, b'{"ts": "\xff\xfe"}'),
        "bad_json": (topic, b'{"ts": '),
        "not_an_object": (topic, b"[1, 2]"),
        "missing_field": (topic, body(pv_w="DROP")),
        "unknown_field": (topic, body(pv_watts=10.0)),
        "wrong_type": (topic, body(grid_ok="yes")),
        "non_finite": (topic, body().replace(b'"grid_v": 230.0', b'"grid_v": NaN')),
        "out_of_range": (topic, body(battery_soc_pct=101)),
        "bad_choice": (topic, body(mode="eco")),
        "bad_label": (DeviceKey("park", Kind.UPLINK, "wan-a").reading_topic(), json.dumps(
            {"ts": now, "seq": 1, "isp": "", "link_up": True, "rtt_ms": 1.0, "jitter_ms": 1.0,
             "loss_pct": 0.0}).encode()),
        "bad_seq": (topic, body(seq=-1)),
        "bad_ts": (topic, body(ts="yesterday")),
        "ts_without_offset": (topic, body(ts="2026-01-01T09:30:00")),
        "ts_in_future": (topic, body(ts=now + 86_400_000)),
        "ts_too_old": (topic, body(ts=now // 1000)),  # epoch seconds by mistake
        "bad_status": (DeviceKey("park", Kind.INVERTER, "inv-bad").status_topic(), b"maybe"),
    }


def _write(influxdb: InfluxDB, database: str, line: str) -> None:
    response = urllib3.request("POST", f"{influxdb.url}/write?db={database}&precision=ns", body=line.encode())
    assert response.status == 204, response.data


def _rejects_by_reason(db: InfluxQLClient) -> dict[str, int]:
    series = db.query('SELECT count("count") FROM "facmon_rejects" GROUP BY "reason"')
    return {s.tags["reason"]: int(s.values[0][1]) for s in series}


def test_bad_input_is_counted_dead_lettered_and_costs_no_valid_reading(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: InfluxQLClient) -> None:
    config = config_from(collector_env(tmp_path, mosquitto.port, influxdb.url, influx_db.database))
    now = now_ms()
    valid = inverter_readings("park", devices=3, per_device=10, start_ms=now - 3_600_000)
    bad = bad_messages(now)
    restart = Reading(valid[0].device, now - 60_000, 0, valid[0].metrics)  # inv-0 rebooted: seq 0 again, new ts
    # A contract-valid point that InfluxDB refuses: its shard (weeks ago) already has grid_v as an integer.
    old_ms = (now - 8 * WEEK_MS) // WEEK_MS * WEEK_MS + 3 * 86_400_000
    _write(influxdb, influx_db.database, f"inverter,device=inv-old,site=park grid_v=5i {old_ms * 1_000_000}")
    refused = Reading(DeviceKey("park", Kind.INVERTER, "inv-old"), old_ms + 1, 0, valid[0].metrics)
    with running_collector(config) as service:
        publisher = Publisher(mosquitto.port)
        publisher.publish_readings(valid[:15])
        for topic, payload in bad.values():
            publisher.publish(topic, payload)
        publisher.publish_readings([refused, *valid[15:]])
        publisher.publish_readings(valid[:5])  # repeated publishes: stored once, counted as duplicates
        publisher.publish_readings([restart])
        publisher.wait_all_acked()
        published = len(valid) + len(bad) + 1 + 5 + 1
        poll_until(lambda: service.ingest.counts.received == published, 20, what=f"{published} messages received")
        wait_for_points(influx_db, len(valid) + 1)  # + the restart
        poll_until(lambda: sum(_rejects_by_reason(influx_db).values()) >= len(bad) + 1, 20,
                   what="every reject in facmon_rejects")
        publisher.close()

        counts = service.ingest.counts
        assert dict(counts.rejected) == dict.fromkeys(bad, 1)
        assert counts.readings == len(valid) + 2  # + the restart and the point InfluxDB refuses
        assert (service.table.counts.duplicates, service.table.counts.restarts) == (5, 1)
        assert service.drain.counts.lines_refused == 1

    # Every valid reading stored exactly once (inv-0 also has its post-reboot seq 0); the refused one not.
    assert seqs_by_device(influx_db) == {"inv-0": [*range(10), 0], "inv-1": list(range(10)),
                                         "inv-2": list(range(10))}
    assert count_points(influx_db) == len(valid) + 1
    [old] = influx_db.query("SELECT * FROM inverter WHERE device = 'inv-old'")
    assert [(row["time"], row["grid_v"]) for row in old.rows()] == [(old_ms, 5)]  # only what was there before
    assert _rejects_by_reason(influx_db) == {**dict.fromkeys(bad, 1), "influx_refused": 1}

    entries = [json.loads(line) for line in (tmp_path / "dead-letters.jsonl").read_text().splitlines()]
    assert Counter(e["reason"] for e in entries) == {**dict.fromkeys(bad, 1), "influx_refused": 1}
    by_reason = {e["reason"]: e for e in entries}
    for reason, (topic, payload) in bad.items():
        entry = by_reason[reason]
        assert entry["topic"] == topic and entry["detail"] and entry["payload_bytes"] == len(payload)
    assert by_reason["bad_json"]["payload"] == '{"ts": '
    assert by_reason["payload_too_large"]["payload"].endswith("…")  # an excerpt, not 17 kB
    assert "field type conflict" in by_reason["influx_refused"]["detail"]
    assert by_reason["influx_refused"]["payload"].startswith("inverter,device=inv-old,site=park ")


def test_a_flood_of_bad_messages_logs_a_few_lines_and_counts_all(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: InfluxQLClient,
        caplog: pytest.LogCaptureFixture) -> None:
    config = config_from(collector_env(tmp_path, mosquitto.port, influxdb.url, influx_db.database))
    topic = DeviceKey("park", Kind.INVERTER, "chatty").reading_topic()
    caplog.set_level(logging.WARNING, logger="facmon.collector")
    with running_collector(config) as service:
        publisher = Publisher(mosquitto.port)
        for n in range(500):
            publisher.publish(topic, b'{"seq": %d, ' % n)
        publisher.publish_readings(inverter_readings("park", devices=1, per_device=1, start_ms=now_ms() - 1000))
        publisher.wait_all_acked()
        poll_until(lambda: service.ingest.counts.received == 501, 20, what="501 messages received")
        wait_for_points(influx_db, 1)  # the collector kept working after the flood
        publisher.close()
        assert service.ingest.counts.rejected == {"bad_json": 500}
    rejected_lines = [r for r in caplog.records if r.getMessage() == "message rejected"]
    assert 1 <= len(rejected_lines) <= 3, [r.__dict__.get("suppressed_since_last") for r in rejected_lines]
    assert len((tmp_path / "dead-letters.jsonl").read_text().splitlines()) == 500
