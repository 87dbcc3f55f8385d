"""A full disk under the spool is back-pressure, never loss (issue 18, item 2).

The spool lives on a real 20 MiB tmpfs (mounted by the test; it needs root, else it is skipped with
the reason). Another writer fills that disk while InfluxDB is down, so the spool's next commit meets a
real ENOSPC: the collector must keep the lines in memory, stop acknowledging, say so on /metrics and
/state, survive a broker restart that redelivers what it never acknowledged (the device table must
not drop those as duplicates), and store every reading exactly once when the space comes back."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.http import CollectorHttp, metrics_text
from core.influxql import InfluxQLClient
from facmon.servers import InfluxDB, Mosquitto
from tests.integration.collector.harness import (
    MountRefused,
    Publisher,
    collector_env,
    config_from,
    count_points,
    expected_seqs,
    fill_disk,
    inverter_readings,
    mounted_tmpfs,
    now_ms,
    running_collector,
    seqs_by_device,
    wait_for_points,
)
from tests.support import poll_until

DISK_MIB = 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 20 MiB tmpfs of its own, unmounted after the test."""
    try:
        with mounted_tmpfs(tmp_path / "disk", DISK_MIB) as disk:
            yield disk
    except MountRefused as refused:
        pytest.skip(str(refused))


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_a_full_disk_stops_acks_and_loses_nothing_when_space_returns(tmp_path: Path, small_disk: Path,
                                                                     mosquitto: Mosquitto) -> None:
    influx = InfluxDB(tmp_path / "influxd")  # not started yet: the spool only grows
    env = collector_env(tmp_path, mosquitto.port, influx.url, "facmon", extra={
        "FACMON_COLLECTOR__SPOOL__DIR": str(small_disk / "spool"),
        "FACMON_COLLECTOR__SPOOL__SEGMENT_BYTES": str(64 * 1024),
        "FACMON_COLLECTOR__DEAD_LETTERS__FILE": str(small_disk / "dead-letters.jsonl"),
        "FACMON_COLLECTOR__MQTT__RECEIVE_MAXIMUM": "100",
    })
    readings = inverter_readings("park", devices=5, per_device=200, start_ms=now_ms() - 3_600_000)
    with running_collector(config_from(env)) as service:
        http = CollectorHttp(service, "127.0.0.1", 0)
        http.start()
        publisher = Publisher(mosquitto.port)
        try:
            publisher.publish_readings(readings[:300])
            publisher.wait_all_acked()
            poll_until(lambda: service.acked >= 300, 30, what="the first 300 acknowledged into the spool")
            ballast = fill_disk(small_disk)
            publisher.publish_readings(readings[300:])
            publisher.wait_all_acked()  # the broker has all 1000
            poll_until(lambda: service.back_pressure() == "spool_unwritable", 30, what="the spool's ENOSPC seen")
            # The last page of the open segment may still take a message or two after the fill.
            acked_when_full = service.acked
            assert 300 <= acked_when_full < 310, "nothing may be acknowledged that the disk did not take"
            assert service.spool.write_failures >= 1 and "ENOSPC" in (service.spool.last_error or "")
            assert service.spool.unwritten_bytes > 0
            metrics = metrics_text(service).decode()
            assert "facmon_collector_spool_writable 0.0" in metrics
            assert 'facmon_collector_back_pressure{reason="spool_unwritable"} 1.0' in metrics
            state = get_json(f"http://127.0.0.1:{http.port}/state")["spool"]
            assert isinstance(state, dict) and state["back_pressure"] == "spool_unwritable"
            assert state["writable"] is False and "ENOSPC" in state["last_error"]

            # The broker restarts while the disk is full: it redelivers everything unacknowledged,
            # including the messages whose lines the collector holds in memory...
            unwritten = service.spool.unwritten_bytes
            mosquitto.restart()
            poll_until(lambda: service.source.subscribed and service.held_messages > 0, 30,
                       what="redeliveries held after the restart")
            assert service.acked == acked_when_full and service.back_pressure() == "spool_unwritable"
            assert service.spool.unwritten_bytes == unwritten

            ballast.unlink()
            poll_until(lambda: service.back_pressure() is None and service.held_messages == 0, 30,
                       what="the spool writable again and nothing held")
            # ...which the device table then recognises as readings already spooled, not new ones.
            assert service.table.counts.duplicates > 0
            poll_until(lambda: 'facmon_collector_spool_writable 1.0' in metrics_text(service).decode(), 5,
                       what="/metrics saying the spool is writable")
            influx.start()
            influx.wait_ready(30)
            influx.create_database("facmon")
            db = InfluxQLClient(influx.url, "facmon")
            wait_for_points(db, len(readings), timeout_s=60)
            assert count_points(db) == len(readings)
            assert seqs_by_device(db) == expected_seqs(5, 200)
            db.close()
            assert service.source.connected, "the collector kept running throughout"
        finally:
            publisher.close()
            http.stop()
    influx.stop()
