"""Simulators as a load generator (issue 3). Prints figures; not a test.

Readings/s that one process offers: the default site scaled to `--devices` devices, the
`load-shedding-day` scenario run as backfill (no pacing) for `--minutes` of simulated time,
    1. in memory, no broker (the reference: model stepping + encoding only),
    2. to a real Mosquitto (facmon's shipped settings, temp dir, loopback) over MQTT 5, QoS 1, every
       PUBACK awaited before the clock stops, with `MqttPublisher` (batched `BatchClient`s) on its
       default 2 shared connections and, for comparison, on 64 (one paho network thread each), and
    3. the same with paho's own `publish()` per message on one connection (the reference the batch
       publisher replaced; `--skip-paho` leaves it out, it is slow).
Target: >= 20,000 readings/s over MQTT. Wall-clock rates depend on what else the machine runs, so
each line also gives the generator process's CPU time, the rate per CPU-second and CPU per reading.

    .venv/bin/python benchmarks/simulators.py [--devices 1000] [--minutes 10] [--max-inflight 1000] [--skip-paho]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.clock import SystemClock
from core.contract import DeviceKey
from core.settings.mqtt import MqttSettings
from core.site import load_site
from facmon.servers import Mosquitto
from simulators.publish import MemoryPublisher, MqttPublisher, Publisher
from simulators.run import run_simulation
from simulators.scenario import DEFAULT_SITE, load_scenario, resolve_scenario
from simulators.world import Message, Simulation, scale_site

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
                f"{self.readings / self.cpu_s:>9,.0f} readings per CPU-second "
                f"({self.cpu_s / self.readings * 1e6:5.1f} µs CPU per reading)")


class PahoPublisher:
    """Reference: paho's `publish()` per message, QoS 1, one connection, `window` in flight."""

    def __init__(self, settings: MqttSettings, window: int) -> None:
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-paho", protocol=mqtt.MQTTv5)
        self._client.max_inflight_messages_set(window)
        self._settings = settings

    def open(self, devices: Sequence[DeviceKey]) -> None:
        self._client.connect(self._settings.host, self._settings.port)
        self._client.loop_start()
        while not self._client.is_connected():
            CLOCK.sleep(0.01)

    def publish_step(self, messages: Sequence[Message]) -> None:
        for message in messages:
            self._client.publish(message.topic, message.payload, qos=1, retain=message.retain)
        while len(self._client._out_messages) > 20_000:  # bounded memory, as MqttPublisher
            CLOCK.sleep(0.005)

    def close(self) -> None:
        while self._client._out_messages:
            CLOCK.sleep(0.005)
        self._client.disconnect()
        self._client.loop_stop()


def measure(name: str, devices: int, minutes: float, publisher: Publisher) -> Run:
    site = scale_site(load_site(DEFAULT_SITE), devices)
    simulation = Simulation(site, load_scenario(resolve_scenario("load-shedding-day")), 1, START_S,
                            duration_s=minutes * 60)
    cpu0, wall0 = time.process_time(), CLOCK.monotonic()  # CPU time: this process only, not the broker
    summary = run_simulation(simulation, publisher, CLOCK, None)  # every publisher's close awaits every PUBACK
    wall, cpu = CLOCK.monotonic() - wall0, time.process_time() - cpu0
    return Run(name, sum(summary.readings_by_kind.values()), summary.messages, wall, cpu)


def publisher_alone(settings: MqttSettings, max_inflight: int, messages: int = 200_000) -> str:
    """The batched publisher without the simulation: 240-byte readings prepared beforehand, steps of
    1,000 messages on one connection, every PUBACK awaited. What publishing itself can do."""
    payload = b"x" * 240
    steps = [[Message(f"facmon/v1/bench/inverter/inv-{i}/reading", payload, device=None) for i in range(1000)]
             for _ in range(messages // 1000)]
    publisher = MqttPublisher(settings, CLOCK, client_id_prefix="bench-alone", max_inflight=max_inflight)
    publisher.open([])
    cpu0, wall0 = time.process_time(), CLOCK.monotonic()
    for step in steps:
        publisher.publish_step(step)
    publisher.close()
    wall, cpu = CLOCK.monotonic() - wall0, time.process_time() - cpu0
    return (f"{'publisher alone (no simulation)':<34} {messages:>8} messages in {wall:6.2f} s = "
            f"{messages / wall:>9,.0f} messages/s; CPU {cpu:6.2f} s = {cpu / messages * 1e6:5.1f} µs CPU per message")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10.0, help="simulated minutes (10 s steps)")
    parser.add_argument("--max-inflight", type=int, default=1000)
    parser.add_argument("--skip-paho", action="store_true", help="leave out the slow paho publish() reference")
    args = parser.parse_args()

    print(f"load average before: {_load()}", flush=True)
    measure("warm-up", args.devices, 2, MemoryPublisher(keep=False))  # first-run costs (imports, caches)
    memory = measure("in memory (reference)", args.devices, args.minutes, MemoryPublisher(keep=False))
    print(memory.line(), flush=True)
    with tempfile.TemporaryDirectory(prefix="facmon-bench-sim-") as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto")
        broker.start()
        try:
            broker.wait_ready(20)
            settings = MqttSettings(host=broker.host, port=broker.port)
            runs = []
            for connections in (2, 64):
                publisher = MqttPublisher(settings, CLOCK, client_id_prefix=f"bench-{connections}",
                                          shared_connections=connections, max_inflight=args.max_inflight)
                runs.append(measure(f"MQTT QoS 1 batched, {connections} conns", args.devices, args.minutes,
                                    publisher))
                print(runs[-1].line(), flush=True)
            alone = publisher_alone(settings, args.max_inflight)
            print(alone, flush=True)
            if not args.skip_paho:
                runs.append(measure("MQTT QoS 1 paho publish(), 1 conn", args.devices, args.minutes,
                                    PahoPublisher(settings, args.max_inflight)))
                print(runs[-1].line(), flush=True)
        finally:
            broker.stop()
    batched = runs[0]
    print(f"ratio MQTT batched / in memory: {batched.rate / memory.rate:.2f} (wall), "
          f"{(batched.readings / batched.cpu_s) / (memory.readings / memory.cpu_s):.2f} (per CPU-second); "
          f"publishing costs {(batched.cpu_s - memory.cpu_s) / batched.readings * 1e6:.1f} µs CPU per reading")
    print(f"2 connections / 64 connections: {runs[0].rate / runs[1].rate:.2f}x (wall)")
    if not args.skip_paho:
        print(f"batched / paho publish(): {runs[0].rate / runs[2].rate:.2f}x (wall), "
              f"{runs[2].cpu_s / runs[0].cpu_s:.2f}x less CPU")
    print(f"target >= 20,000 readings/s over MQTT: {'met' if batched.rate >= 20_000 else 'NOT met'} "
          f"({batched.rate:,.0f}/s wall; {batched.readings / batched.cpu_s:,.0f} per CPU-second)")
    print(f"load average after: {_load()} (wall-clock figures mean little above ~1 on 2 cores)")
    return 0


def _load() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


if __name__ == "__main__":
    raise SystemExit(main())
