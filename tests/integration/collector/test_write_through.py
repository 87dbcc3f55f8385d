"""The collector at a trickle writes a commit's points straight to a real InfluxDB 1.6.7 and
acknowledges them once InfluxDB confirmed them (`collector.spool.write_through`): the spool's file
does not grow. With InfluxDB gone, the same points go through the spool (written and fsynced before
the ack) and reach InfluxDB when it is back; nothing is lost either way."""

from __future__ import annotations

from pathlib import Path

import pytest

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

pytestmark = pytest.mark.integration


def _spooled_bytes(spool: Path) -> int:
    return sum(segment.stat().st_size for segment in spool.glob("*.lp"))


def test_a_trickle_goes_straight_to_influxdb_and_through_the_spool_while_it_is_away(
        tmp_path: Path, mosquitto: Mosquitto, own_influxd: InfluxDB) -> None:
    config = config_from(collector_env(tmp_path, mosquitto.port, own_influxd.url, "through"))
    readings = inverter_readings("park", devices=1, per_device=8, start_ms=now_ms() - 60_000)
    with running_collector(config) as service, InfluxQLClient(own_influxd.url, "through") as db:
        publisher = Publisher(mosquitto.port)

        def publish_acknowledged(count: int) -> None:
            """Each reading in a commit of its own: the next is sent once the collector acknowledged it."""
            for reading in readings[service.acked:service.acked + count]:
                acked = service.acked
                publisher.publish_readings([reading])
                poll_until(lambda acked=acked: service.acked == acked + 1, 30, what="the collector's ack")

        publish_acknowledged(1)  # the first goes the spool's way: InfluxDB not yet written to
        wait_for_points(db, 1)
        spooled = _spooled_bytes(tmp_path / "spool")
        publish_acknowledged(4)
        assert count_points(db) == 5  # stored before they were acknowledged
        assert _spooled_bytes(tmp_path / "spool") == spooled  # written through, never spooled
        assert service.drain.counts.batches_written == 5
        own_influxd.stop()
        publish_acknowledged(3)  # acknowledged after the spool's fsync
        assert _spooled_bytes(tmp_path / "spool") > spooled
        own_influxd.start()
        own_influxd.wait_ready(60)
        wait_for_points(db, 8)
        publisher.close()
        assert seqs_by_device(db) == {"inv-0": list(range(8))}
