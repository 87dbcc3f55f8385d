"""A scenario end to end: `facmon simulate --scenario bad-payloads`, accelerated, through a real
Mosquitto into the real collector and InfluxDB. Every reading it published lands (count per device
equal), and every malformed message is rejected with the reason the scenario promised.

The expected stream comes from the same site, scenario, seed and start run in memory: the
simulators are deterministic, so that run publishes exactly what the command publishes."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from core.clock import SystemClock
from core.contract import KINDS
from core.influxql import InfluxQLClient, quote_ident
from core.settings.simulate import SimulateSettings
from core.site import iter_devices, load_site
from facmon.commands.simulate import is_farewell
from facmon.servers import InfluxDB, Mosquitto
from simulators.publish import MemoryPublisher
from simulators.run import Summary, run_simulation
from simulators.scenario import DEFAULT_SITE, load_scenario, resolve_scenario
from simulators.world import Simulation
from tests.integration.collector.harness import collector_env, config_from, running_collector
from tests.support import poll_until

CLOCK = SystemClock()
SCENARIO = "bad-payloads"
SEED = 5
SPEED = "900"  # the scenario's hour in 4 s


def _expected(start_s: float) -> tuple[Summary, int]:
    """The run's summary, and how many farewell `offline`s it does not publish (it leaves statuses as found)."""
    settings = SimulateSettings()
    simulation = Simulation(load_site(DEFAULT_SITE), load_scenario(resolve_scenario(SCENARIO)), SEED, start_s,
                            step_s=settings.step_s, occupancy_every=settings.occupancy_every_steps)
    stream = MemoryPublisher()
    summary = run_simulation(simulation, stream, CLOCK, None)
    return summary, sum(1 for message in stream.messages if is_farewell(message))


def env_url(env: dict[str, str]) -> str:
    return f"mqtt://{env['FACMON_MQTT__HOST']}:{env['FACMON_MQTT__PORT']}"


def _points_by_device(db: InfluxQLClient) -> dict[str, int]:
    counts: dict[str, int] = {}
    for measurement in KINDS:
        for series in db.query(f"SELECT count(seq) FROM {quote_ident(measurement.value)} GROUP BY device"):
            counts[series.tags["device"]] = int(series.values[0][1])
    return counts


def test_bad_payloads_scenario_lands_every_reading_and_rejects_every_malformed_one(
        tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB, influx_db: InfluxQLClient) -> None:
    start = datetime.fromtimestamp(int(CLOCK.now()) - 3600, UTC)  # the simulated hour ends now
    expected, farewells = _expected(start.timestamp())
    site = load_site(DEFAULT_SITE)
    every_device = {d.id for d in iter_devices(site)}
    assert set(expected.readings_by_device) == every_device and sum(expected.malformed.values()) >= 40

    config = config_from(collector_env(tmp_path, mosquitto.port, influxdb.url, influx_db.database))
    env = {**os.environ, "FACMON_MQTT__HOST": mosquitto.host, "FACMON_MQTT__PORT": str(mosquitto.port),
           "FACMON_LOG__LEVEL": "warning"}
    env.pop("FACMON_CONFIG", None)
    with running_collector(config) as service:
        command = [sys.executable, "-m", "facmon", "simulate", "--scenario", SCENARIO, "--speed", SPEED,
                   "--seed", str(SEED), "--start", start.isoformat(), "--quiet"]
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        # The first line says where the run publishes; the summary follows.
        assert done.stdout.startswith(f"facmon simulate: site park (the site file's id) to {env_url(env)}")
        assert f"{expected.messages} messages" in done.stdout.splitlines()[1], done.stdout
        # The run leaves each device's retained status as it found it: none, so no farewell `offline` but a
        # clear (an empty status, which the collector takes as a device gone, not as a malformed message).
        arriving = expected.messages - farewells + len(every_device)
        poll_until(lambda: service.ingest.counts.received >= arriving, 20, what=f"{arriving} messages at the collector")
        readings = sum(expected.readings_by_device.values())
        poll_until(lambda: sum(_points_by_device(influx_db).values()) >= readings, 20,
                   what=f"{readings} readings in InfluxDB")
        counts = service.ingest.counts
        assert counts.received == arriving
        assert dict(counts.rejected) == dict(expected.malformed)
    assert _points_by_device(influx_db) == dict(expected.readings_by_device)
