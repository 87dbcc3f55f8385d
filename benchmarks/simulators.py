"""Simulators as a load generator (issue 3). Prints figures; not a test.

Readings/s that one process offers: the default site scaled to `--devices` devices, the
`load-shedding-day` scenario run as backfill (no pacing) for `--minutes` of simulated time,
    1. in memory, no broker (the reference: model stepping + encoding only), and
    2. to a real Mosquitto (facmon's shipped settings, temp dir, loopback) over MQTT 5, QoS 1, every
       PUBACK awaited before the clock stops, with each connection's in-flight window at
       `--max-inflight` and, for comparison, at paho's default of 20.
Target: >= 20,000 readings/s over MQTT. Wall-clock rates depend on what else the machine runs, so
each line also gives the generator process's CPU time and the rate per CPU-second.

    .venv/bin/python benchmarks/simulators.py [--devices 1000] [--minutes 10] [--max-inflight 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clock import SystemClock
from core.settings.mqtt import MqttSettings
from core.site import load_site
from facmon.servers import Mosquitto
from simulators.publish import MemoryPublisher, MqttPublisher, Publisher
from simulators.run import run_simulation
from simulators.scenario import DEFAULT_SITE, load_scenario, resolve_scenario
from simulators.world import Simulation, scale_site

CLOCK = SystemClock()
START_S = 1_772_420_400.0  # 2026-03-02 08:00 at the park: a working morning, every model busy


@dataclass(frozen=True)
class Run:
    name: str
    readings: int
    messages: int
    wall_s: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return self.readings / self.wall_s

    def line(self) -> str:
        return (f"{self.name:<34} {self.readings:>8} readings ({self.messages} messages) in {self.wall_s:6.2f} s "
                f"= {self.rate:>9,.0f} readings/s; CPU {self.cpu_s:6.2f} s = "
                f"{self.readings / self.cpu_s:>9,.0f} readings per CPU-second")


def measure(name: str, devices: int, minutes: float, publisher: Publisher) -> Run:
    site = scale_site(load_site(DEFAULT_SITE), devices)
    simulation = Simulation(site, load_scenario(resolve_scenario("load-shedding-day")), 1, START_S,
                            duration_s=minutes * 60)
    cpu0, wall0 = time.process_time(), CLOCK.monotonic()  # CPU time: this process only, not the broker
    summary = run_simulation(simulation, publisher, CLOCK, None)  # MqttPublisher.close awaits every PUBACK
    wall, cpu = CLOCK.monotonic() - wall0, time.process_time() - cpu0
    return Run(name, sum(summary.readings_by_kind.values()), summary.messages, wall, cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10.0, help="simulated minutes (10 s steps)")
    parser.add_argument("--max-inflight", type=int, default=1000)
    args = parser.parse_args()

    memory = measure("in memory (reference)", args.devices, args.minutes, MemoryPublisher(keep=False))
    print(memory.line(), flush=True)
    with tempfile.TemporaryDirectory(prefix="facmon-bench-sim-") as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto")
        broker.start()
        try:
            broker.wait_ready(20)
            settings = MqttSettings(host=broker.host, port=broker.port)
            runs = []
            for window in (args.max_inflight, 20):
                publisher = MqttPublisher(settings, CLOCK, client_id_prefix=f"bench-{window}", max_inflight=window)
                runs.append(measure(f"MQTT QoS 1, window {window}", args.devices, args.minutes, publisher))
                print(runs[-1].line(), flush=True)
        finally:
            broker.stop()
    mqtt = runs[0]
    print(f"ratio MQTT / in memory: {mqtt.rate / memory.rate:.2f} (wall), "
          f"{(mqtt.readings / mqtt.cpu_s) / (memory.readings / memory.cpu_s):.2f} (per CPU-second)")
    print(f"window {args.max_inflight} / window 20: {runs[0].rate / runs[1].rate:.2f}x")
    print(f"target >= 20,000 readings/s over MQTT: {'met' if mqtt.rate >= 20_000 else 'NOT met'} "
          f"({mqtt.rate:,.0f}/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
