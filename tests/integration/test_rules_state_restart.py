"""Rule state across SIGKILL (issue 19, item 2): `facmon rules run` is killed inside an aggregate
window, a `for` hold, a run-out fit and a `keep_firing_for` hold, and restarted each time; its alerts
are the same, at the same simulated times, as those of an engine that ran through.

Both engines run on device time (`rules.clock: device`), so an alert's time is the simulated time of
the reading or tick that decided it, the same in every run. They hear the same readings from one real
Mosquitto; the killed one refills its windows from a real InfluxDB 1.6.7 at each start. The test
writes each reading to InfluxDB (with the collector's own encoder, `reading_to_line`) before it
publishes it, as a collector would have stored it by then.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from core.clock import SystemClock
from core.contract import DeviceKey, Kind, Reading, encode_reading
from core.influx_write import V1LineWriter
from core.line_protocol import reading_to_line
from core.settings.influxdb import InfluxSettings
from rules.service import DEVICE_CLOCK
from rules.store import AlertStore
from tests.integration.collector.harness import Publisher
from tests.integration.test_rules_restart import RulesProcess
from tests.support import poll_until

STEP_S = 10
STEPS = 60
T0 = math.floor(SystemClock().now() / 3600) * 3600 - 3600  # an hour ago, on the hour: inside decode's max age
PACK = {"rules": [
    # Window of 12 readings: the mean passes 20 at the 7th reading of 40 % loss (k = 16).
    {"name": "LossHigh", "kind": "uplink",
     "condition": {"aggregate": {"metric": "loss_pct", "func": "mean", "window_s": "2m", "op": ">", "value": 20}}},
    # Hot from k = 20 to 39: pending at 200 s, firing at 260 s; cool at 400 s, resolved at 460 s.
    {"name": "InverterHot", "kind": "inverter",
     "condition": {"threshold": {"metric": "inverter_temp_c", "op": ">", "value": 70}},
     "for": "1m", "keep_firing_for": "1m"},
    {"name": "BatteryRunout", "kind": "inverter",
     "condition": {"runout": {"metric": "battery_soc_pct", "window_s": "10m", "min_points": 5, "within_s": "20m",
                              "before_grid_return": False}}},
]}
KILL_AT = (13, 23, 33, 43)  # inside the loss window, the `for`, the run-out fit, the `keep_firing_for`
UPLINK = DeviceKey("park", Kind.UPLINK, "up-1")
INVERTER = DeviceKey("park", Kind.INVERTER, "inv-1")
WARMUP = DeviceKey("park", Kind.OCCUPANCY, "hall")  # matches no rule: only starts the engine's clock


def _t(k: int) -> float:
    return float(T0 + k * STEP_S)


def _readings(k: int) -> list[Reading]:
    ts_ms = int(_t(k) * 1000)
    on_battery = k >= 25
    soc = 100.0 - 2.5 * (k - 25) if on_battery else 100.0
    return [
        Reading(UPLINK, ts_ms, k, {"isp": "fibre", "link_up": True, "rtt_ms": 20.0, "jitter_ms": 1.0,
                                   "loss_pct": 40.0 if 10 <= k < 30 else 0.0}),
        Reading(INVERTER, ts_ms, k, {"grid_v": 0.0 if on_battery else 230.0, "grid_ok": not on_battery,
                                     "mode": "battery" if on_battery else "grid", "battery_soc_pct": max(soc, 0.0),
                                     "battery_v": 50.0, "battery_a": -10.0 if on_battery else 1.0, "pv_w": 0.0,
                                     "load_w": 500.0, "inverter_temp_c": 80.0 if 20 <= k < 40 else 50.0}),
    ]


class Engine:
    """One `facmon rules run` on device time, with its own session and store."""

    def __init__(self, tmp_path: Path, name: str, broker_port: int, influx_url: str, database: str) -> None:
        self.store_path = tmp_path / f"{name}.db"
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump({
            "mqtt": {"host": "127.0.0.1", "port": broker_port, "reconnect_max_s": 1},
            "influxdb": {"url": influx_url, "database": database},
            "rules": {"rule_files": [str(tmp_path / "pack.yaml")], "store_path": str(self.store_path),
                      "clock": "device", "evaluation_interval_s": 5, "write_influx": False,
                      "mqtt_client_id": f"rules-{name}"}}))
        self.process = RulesProcess(config, tmp_path / f"{name}.log")
        self._store: AlertStore | None = None

    def store(self) -> AlertStore:
        if self._store is None:
            self._store = AlertStore(self.store_path, SystemClock())
        return self._store

    def clock(self) -> float | None:
        if not self.store_path.exists():
            return None
        value = self.store().meta(DEVICE_CLOCK)
        return None if value is None else float(value)

    def wait_clock(self, t: float) -> None:
        poll_until(lambda: (self.clock() or 0.0) >= t, 20, 0.02, f"{self.store_path.stem} reached {t - T0:.0f} s")

    def timeline(self) -> list[tuple[str, str, str, float]]:
        return [(t.rule, t.from_state.value, t.to_state.value, t.at - T0) for t in self.store().history()]

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        assert self.process.stop() == 0, self.process.log()[-3000:]


@pytest.fixture
def engines(tmp_path, mosquitto, influxdb, influx_db) -> Iterator[tuple[Engine, Engine]]:
    (tmp_path / "pack.yaml").write_text(yaml.safe_dump(PACK))
    pair = (Engine(tmp_path, "through", mosquitto.port, influxdb.url, influx_db.database),
            Engine(tmp_path, "killed", mosquitto.port, influxdb.url, influx_db.database))
    yield pair
    for engine in pair:
        engine.close()


def test_sigkill_inside_windows_and_timers_gives_the_same_alerts_at_the_same_simulated_times(
        engines, mosquitto, influxdb, influx_db):
    through, killed = engines
    writer = V1LineWriter(InfluxSettings(url=influxdb.url, database=influx_db.database))
    publisher = Publisher(mosquitto.port, "state-restart-devices")
    try:
        for engine in engines:
            engine.process.start()
        # The first reading starts each engine's clock; sent until both subscriptions hear it.
        warmup = Reading(WARMUP, int(_t(-1) * 1000), 0, {"room": "hall", "occupied": False})

        def warm() -> bool:
            publisher.publish(WARMUP.reading_topic(), encode_reading(warmup))
            publisher.wait_all_acked(10)
            return all(engine.clock() is not None for engine in engines)

        poll_until(warm, 20, 0.2, "both engines heard the first reading")
        for k in range(STEPS):
            readings = _readings(k)
            writer.write([reading_to_line(r) for r in readings])
            publisher.publish_readings(readings)
            publisher.wait_all_acked(10)
            if k in KILL_AT:
                killed.wait_clock(_t(k))
                killed.process.kill()
            elif k - 2 in KILL_AT:  # two steps published while it was down: the broker queued them
                killed.process.start()
        for engine in engines:
            engine.wait_clock(_t(STEPS - 1))
    finally:
        publisher.close()
        writer.close()

    expected = through.timeline()
    assert ("LossHigh", "inactive", "firing", 160.0) in expected, expected
    assert ("InverterHot", "inactive", "pending", 200.0) in expected, expected
    assert ("InverterHot", "pending", "firing", 260.0) in expected, expected
    assert ("InverterHot", "firing", "resolved", 460.0) in expected, expected
    assert [t for t in expected if t[0] == "BatteryRunout"][:1] == [("BatteryRunout", "inactive", "firing", 385.0)]
    assert killed.timeline() == expected
    assert killed.process.log().count("rules' windows refilled from InfluxDB") == len(KILL_AT)
