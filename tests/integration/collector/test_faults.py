"""Nothing accepted is lost, and nothing is stored twice, across the faults a site actually has:
InfluxDB down, the collector killed, the broker restarted, and the spool full.

Each test publishes a known set of readings (distinct device/seq/ts) and asserts InfluxDB ends up with
exactly that set: `count == N` proves none is missing and none doubled (a point is keyed by its tags
and device timestamp, so a re-sent point overwrites itself; a double would need a second timestamp)."""

from __future__ import annotations

import threading
from pathlib import Path

from core.influxql import InfluxQLClient
from facmon.servers import InfluxDB, Mosquitto
from tests.integration.collector.harness import (
    CollectorProcess,
    Publisher,
    collector_env,
    config_from,
    count_points,
    expected_seqs,
    inverter_readings,
    now_ms,
    running_collector,
    seqs_by_device,
    wait_for_points,
)
from tests.support import poll_until


def test_influxdb_outage_mid_stream_loses_nothing(tmp_path: Path, mosquitto: Mosquitto) -> None:
    with InfluxDB(tmp_path / "influxd") as influx:
        influx.wait_ready(30)
        influx.create_database("facmon")
        db = InfluxQLClient(influx.url, "facmon")
        config = config_from(collector_env(tmp_path, mosquitto.port, influx.url, "facmon"))
        readings = inverter_readings("park", devices=4, per_device=150, start_ms=now_ms() - 3_600_000)
        with running_collector(config) as service:
            publisher = Publisher(mosquitto.port)
            publisher.publish_readings(readings[:200])
            publisher.wait_all_acked()
            wait_for_points(db, 200)
            influx.stop()
            publisher.publish_readings(readings[200:])
            publisher.wait_all_acked()
            poll_until(lambda: service.acked >= 600, 30, what="collector acked everything into its spool")
            assert service.spool.pending_bytes > 0
            poll_until(lambda: service.drain.counts.write_failures > 0, 30, what="a failed write attempt")
            influx.start()
            influx.wait_ready(30)
            wait_for_points(db, 600)
            publisher.close()
        assert count_points(db) == 600
        assert seqs_by_device(db) == expected_seqs(4, 150)
        db.close()


def test_collector_sigkill_mid_stream_loses_nothing(tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB,
                                                    influx_db: InfluxQLClient) -> None:
    env = collector_env(tmp_path, mosquitto.port, influxdb.url, influx_db.database)
    readings = inverter_readings("park", devices=10, per_device=300, start_ms=now_ms() - 3_600_000)
    collector = CollectorProcess(env, tmp_path / "collector.log")
    collector.start()
    collector.wait_subscribed()
    publisher = Publisher(mosquitto.port)
    done = threading.Event()

    def publish_steadily() -> None:
        for start in range(0, len(readings), 100):
            publisher.publish_readings(readings[start:start + 100])
            done.wait(0.01)
        done.set()

    thread = threading.Thread(target=publish_steadily)
    thread.start()
    try:
        poll_until(lambda: count_points(influx_db) >= 300, 30, what="some points stored before the kill")
        collector.kill()
        assert count_points(influx_db) < len(readings), "the kill must land mid-stream"
        collector.start()
        thread.join(timeout=60)
        publisher.wait_all_acked()
        wait_for_points(influx_db, len(readings), timeout_s=90)
    finally:
        done.set()
        thread.join(timeout=10)
        publisher.close()
        assert collector.stop() == 0, collector.log_tail()
    assert count_points(influx_db) == len(readings)
    assert seqs_by_device(influx_db) == expected_seqs(10, 300)


def test_broker_restart_with_persistence_loses_nothing(tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB,
                                                       influx_db: InfluxQLClient) -> None:
    config = config_from(collector_env(tmp_path, mosquitto.port, influxdb.url, influx_db.database))
    readings = inverter_readings("park", devices=5, per_device=120, start_ms=now_ms() - 3_600_000)
    thirds = [readings[:200], readings[200:400], readings[400:]]
    with running_collector(config):
        publisher = Publisher(mosquitto.port)
        publisher.publish_readings(thirds[0])
        publisher.wait_all_acked()
        publisher.close()
        wait_for_points(influx_db, 200)
    # The collector is away: the broker queues the next third in its persistent session...
    publisher = Publisher(mosquitto.port)
    publisher.publish_readings(thirds[1])
    publisher.wait_all_acked()
    publisher.close()
    mosquitto.restart()  # ...and keeps it across a restart (persistence is written on shutdown).
    with running_collector(config) as service:
        wait_for_points(influx_db, 400)
        mosquitto.restart()  # and a restart while the collector is connected: it reconnects
        publisher = Publisher(mosquitto.port, client_id="publisher-after-restart")
        publisher.publish_readings(thirds[2])
        publisher.wait_all_acked()
        publisher.close()
        wait_for_points(influx_db, 600)
        assert service.source.connected
    assert count_points(influx_db) == 600
    assert seqs_by_device(influx_db) == expected_seqs(5, 120)


def test_full_spool_applies_back_pressure_not_loss(tmp_path: Path, mosquitto: Mosquitto) -> None:
    spool_bound = 64 * 1024
    influx = InfluxDB(tmp_path / "influxd")  # not started yet: every write fails until it is
    env = collector_env(tmp_path, mosquitto.port, influx.url, "facmon", extra={
        "FACMON_COLLECTOR__SPOOL__MAX_BYTES": str(spool_bound),
        "FACMON_COLLECTOR__MQTT__RECEIVE_MAXIMUM": "50",
    })
    readings = inverter_readings("park", devices=5, per_device=200, start_ms=now_ms() - 3_600_000)
    with running_collector(config_from(env)) as service:
        publisher = Publisher(mosquitto.port)
        publisher.publish_readings(readings)
        publisher.wait_all_acked()  # the broker has all 1000
        poll_until(lambda: service.spool.is_full() and service.held_peak > 0, 30, what="spool full, intake held")
        acked_while_full = service.acked
        assert acked_while_full < len(readings), "the collector must stop acknowledging at the bound"
        one_message_lines = 400  # a reading's line is ~230 bytes; the bound may be passed by one message
        assert service.spool.pending_bytes <= spool_bound + one_message_lines
        try:
            influx.start()
            influx.wait_ready(30)
            influx.create_database("facmon")
            db = InfluxQLClient(influx.url, "facmon")
            wait_for_points(db, len(readings), timeout_s=90)
            assert count_points(db) == len(readings)
            assert seqs_by_device(db) == expected_seqs(5, 200)
            db.close()
        finally:
            publisher.close()
    influx.stop()
