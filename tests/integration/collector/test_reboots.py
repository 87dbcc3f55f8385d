"""A device without a real-time clock reboots and counts `seq` from 0 again, its clock behind or
corrected: through real Mosquitto and InfluxDB, every distinct reading is stored, the reboot is
counted (a clock step back, per device in /state), and a reading that would land on the millisecond
of a stored one is dead-lettered as `ts_conflict` instead of overwriting it silently."""

from __future__ import annotations

from pathlib import Path

from core.contract import DeviceKey, Kind, Reading
from core.influxql import InfluxQLClient
from facmon.servers import InfluxDB, Mosquitto
from tests.integration.collector.harness import (
    Publisher,
    collector_env,
    config_from,
    count_points,
    now_ms,
    running_collector,
)
from tests.support import poll_until

METRICS = {"grid_v": 230.0, "grid_ok": True, "mode": "grid", "battery_soc_pct": 80.0, "battery_v": 52.0,
           "battery_a": 1.0, "pv_w": 0.0, "load_w": 500.0}


def _runs(device: DeviceKey, first_ms: int, second_ms: int) -> list[Reading]:
    return ([Reading(device, first_ms + seq * 1000, seq, METRICS) for seq in range(200)]
            + [Reading(device, second_ms + seq * 1000, seq, METRICS) for seq in range(200)])


def test_reboots_with_the_clock_behind_lose_no_reading_and_overwrite_none(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: InfluxQLClient) -> None:
    start = now_ms() - 3 * 3_600_000
    behind = DeviceKey("park", Kind.INVERTER, "inv-behind")      # second run an hour behind: 400 distinct
    corrected = DeviceKey("park", Kind.INVERTER, "inv-ntp")      # second run 10 s before the first run began
    readings = _runs(behind, start + 3_600_000, start) + _runs(corrected, start, start - 10_000)
    with running_collector(config_from(collector_env(tmp_path, mosquitto.port, influxdb.url,
                                                     influx_db.database))) as service:
        publisher = Publisher(mosquitto.port)
        publisher.publish_readings(readings)
        publisher.wait_all_acked()
        poll_until(lambda: service.ingest.counts.received == 800, 20, what="800 readings received")
        poll_until(lambda: count_points(influx_db) == 400 + 210, 30, what="610 points stored")
        publisher.close()
        counts = service.table.counts
        assert (counts.restarts, counts.clock_steps_back, counts.duplicates) == (2, 2, 0)
        assert dict(service.ingest.counts.rejected) == {"ts_conflict": 190}
        assert {s.device.device: s.clock_steps_back for s in service.table.snapshot()} == {
            "inv-behind": 1, "inv-ntp": 1}
