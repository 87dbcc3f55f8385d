"""Restarts never rewrite history (`facmon simulate --world`, what `facmon up` runs): start, stop
(SIGTERM mid-run, as Ctrl-C on `facmon up` does), start again; InfluxDB then holds, per device, the
same points with the same values as one uninterrupted run of the same world, every one on the step
grid, none twice, no gap. Real Mosquitto, InfluxDB and collector; the simulator is a real process,
on a 2 s step and a 10-minute replay to keep the test short."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.contract import KINDS
from core.influxql import InfluxQLClient, time_literal
from facmon.servers import InfluxDB, Mosquitto
from simulators.stored import stored_ends
from simulators.timeline import load_timeline
from tests.integration.collector.harness import collector_env, config_from, running_collector
from tests.support import poll_until

MEASUREMENTS = tuple(kind.value for kind in KINDS)
DEVICES = 12  # the park's inverters, uplinks, occupancy sensors, generator and plug


@contextmanager
def _simulator(tmp_path: Path, env: dict[str, str], world: Path, name: str, replay: str = "10m") -> Iterator[None]:
    """`facmon simulate --world` running until the context ends (then SIGTERM, as `facmon up` stops it)."""
    with open(tmp_path / f"{name}.log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "facmon", "simulate", "--world", str(world),
                                    "--replay", replay, "--script", "day-in-the-life", "--quiet"],
                                   env={**os.environ, **env, "FACMON_SIMULATE__STEP_S": "2"}, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _live_past(db: InfluxQLClient, site: str, t: float) -> bool:
    ends = stored_ends(db, site)
    return len(ends) == DEVICES and min(ends.values()) >= t


def _points(db: InfluxQLClient, origin_s: float, end_s: float) -> dict[tuple[str, str], list[tuple]]:
    where = f"time >= {time_literal(int(origin_s * 1000))} AND time <= {time_literal(int(end_s * 1000))}"
    points: dict[tuple[str, str], list[tuple]] = {}
    for measurement in MEASUREMENTS:
        for series in db.query(f'SELECT * FROM "{measurement}" WHERE {where} GROUP BY "device"', epoch="ms"):
            points[(measurement, series.tags["device"])] = [tuple(row) for row in series.values]
    return points


def test_a_restart_adds_only_what_is_missing_and_equals_one_run(tmp_path: Path, mosquitto: Mosquitto,
                                                                influxdb: InfluxDB,
                                                                influx_db: InfluxQLClient) -> None:
    single_name = influx_db.database + "_single"
    influxdb.create_database(single_name)
    single_db = InfluxQLClient(influxdb.url, single_name)
    world = tmp_path / "world.json"
    try:
        env = collector_env(tmp_path / "split", mosquitto.port, influxdb.url, influx_db.database)
        with running_collector(config_from(env)):
            for starts, run in enumerate(("first", "second"), start=1):
                with _simulator(tmp_path, env, world, run):
                    started = poll_until(lambda n=starts: (t := load_timeline(world)) and len(t.episodes) == n and t,
                                         30, 0.1, f"the world's timeline saved by the {run} start")
                    # The replayed past is in, and live readings after this start too.
                    now = started.episodes[-1].at_s
                    poll_until(lambda t=now: _live_past(influx_db, "park", t + 2), 60, 0.2,
                               f"{run} start: the past filled and live readings stored")
        timeline = load_timeline(world)
        assert timeline is not None and len(timeline.episodes) == 2, "one world, a script per start"
        end_s = min(stored_ends(influx_db, "park").values())
        split = _points(influx_db, timeline.origin_s, end_s)

        # One uninterrupted run of the same world (its timeline, with both starts' scripts), into an
        # empty database: it fills from the world's origin (within its --replay) on.
        shutil.copy(world, tmp_path / "world-single.json")
        env = collector_env(tmp_path / "single", mosquitto.port, influxdb.url, single_name,
                            client_id="facmon-collector-single")
        with running_collector(config_from(env)), \
                _simulator(tmp_path, env, tmp_path / "world-single.json", "one", replay="1h"):
            poll_until(lambda: _live_past(single_db, "park", end_s), 90, 0.2, "the single run past the split's end")
        single = _points(single_db, timeline.origin_s, end_s)
    finally:
        single_db.close()
        influxdb.drop_database(single_name)

    assert set(split) == set(single) and len(split) == DEVICES
    for key in split:
        assert len(split[key]) == len(single[key]), f"{key}: {len(split[key])} points vs {len(single[key])}"
        assert split[key] == single[key], f"{key}: values differ from one uninterrupted run"
    step_ms = int(timeline.step_s * 1000)
    inverter = split[("inverter", "inv-main")]
    assert all(row[0] % step_ms == 0 for rows in split.values() for row in rows), "every point on the step grid"
    assert [row[0] for row in inverter] == list(range(inverter[0][0], inverter[-1][0] + 1, step_ms)), \
        "one point a step: none twice, no gap at the restart"
    assert inverter[0][0] == int(timeline.origin_s * 1000)
