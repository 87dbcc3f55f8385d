"""Bridge and agent benchmark, over the wire as users reach them.

Starts its own Mosquitto and InfluxDB 1.6.7 (facmon.servers, temp dirs), `facmon collect` and `facmon bridge`
as child processes (the bridge with a Zigbee2MQTT-style occupancy mapping for N devices), and a
separate publisher process sending foreign messages (`zigbee2mqtt/pir-<d>` =
`{"occupancy":true,…,"last_seen":<epoch ms>}`) with core's batch client (`core.mqtt_batch`).

Phases (each prints its figures):
  1. reference   `mosquitto_sub` subscribed to the foreign topics while the publisher sends M messages as
                 fast as it can: the broker's own delivery rate (first publish → last received)
  2. forward     the same M messages through the bridge: messages/s forwarded (first publish → the bridge's
                 forwarded counter reaching M), the bridge's CPU (by thread), the CPU of what runs beside it
                 (broker, collector, InfluxDB, the load generator), and loss counted in InfluxDB after the
                 collector stored them (broker, collector and InfluxDB run beside it, as in a park)
  3. latency     an offered rate (default 2,000/s): a subscriber in its own process receives each foreign
                 message and its contract reading; the added latency is the difference of their arrival
                 times (p50/p99), matched per device in order
  4. modbus      `facmon agent` polling one Deye map (91 registers, two requests) on pymodbus's own server
                 every second: CPU seconds a poll, projected to one poll every 5 s as % of a core; the
                 reference is the same two reads with a bare pymodbus client in this process.
                 `--modbus-map sunspec_hybrid`: a SunSpec device whose models are not where the map's
                 file puts them (the agent walks the chain once, at connect, before the measurement);
                 `--modbus-map growatt_spf`: a Growatt SPF's 80 input registers in one read

    .venv/bin/python benchmarks/bridge.py
    .venv/bin/python benchmarks/bridge.py --messages 200000 --devices 2000 --rate 5000
    .venv/bin/python benchmarks/bridge.py --modbus-map sunspec_hybrid
    .venv/bin/python benchmarks/bridge.py --channels 2   # two-channel devices: `occupancy` an array, each
                                                         # device listed with channels; 2 readings a message
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.influxql import InfluxQLClient  # noqa: E402
from facmon.servers import InfluxDB, Mosquitto, free_port  # noqa: E402

MAPPING = """time_zone: UTC
sources:
  - name: bench-pir
    topic: zigbee2mqtt/{device}
    availability: zigbee2mqtt/{device}/availability
    site: bench
    kind: occupancy
    labels: {room: "{device}"}
    ts: {from: last_seen, format: epoch_ms}
    fields:
      occupied: {from: occupancy}
      sensor_battery_pct: {from: battery}
"""


def mapping_text(devices: int, channels: int) -> str:
    """MAPPING; with channels > 1, every device listed with that many channels (pir-<d>-<c>), each taking
    its place in the payload's occupancy array: the translator's general path, which multi-channel
    devices take (no plan), one foreign message giving `channels` readings."""
    if channels == 1:
        return MAPPING
    listed = "".join(f"      pir-{d}: {{channels: [{', '.join(f'pir-{d}-{c}' for c in range(1, channels + 1))}]}}\n"
                     for d in range(devices))
    return (MAPPING.replace("occupied: {from: occupancy}", 'occupied: {from: "occupancy.{index}"}')
            + "    only_listed_devices: true\n    devices:\n" + listed)


def publisher_main(port: int, devices: int, total: int, rate: float, channels: int, ready: mp.Event,
                   go: mp.Event, result: mp.Queue) -> None:
    """`total` foreign messages round-robin over `devices`, at `rate`/s (0: as fast as it can), QoS 1, with
    the simulators' batched client (one socket write a chunk)."""
    from core.clock import SystemClock
    from core.mqtt_batch import BatchClient

    client = BatchClient(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-z2m", protocol=mqtt.MQTTv311)
    client.configure_batching(SystemClock(), max_inflight=2000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    while not client.online:
        time.sleep(0.01)
    topics = [f"zigbee2mqtt/pir-{d}" for d in range(devices)]
    template = b'{"battery":%d,"illuminance_lux":49,"linkquality":120,"occupancy":%s,"last_seen":%d}'
    ready.set()
    go.wait()
    started = time.time()
    cpu_started = time.process_time()
    # Zigbee2MQTT's last_seen (advanced.last_seen: epoch), one millisecond apart per device: readings of
    # one device in the same millisecond would be one point in InfluxDB and look like loss.
    base_ms = int(started * 1000)
    chunk = min(max(1, int(rate / 100)) if rate else 500, devices)
    for first in range(0, total, chunk):
        if rate:
            delay = started + first / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        client.publish_batch([(topics[i % devices], template % (50 + i % 50, occupancy(i, channels),
                                                                base_ms + i // devices), False)
                              for i in range(first, min(first + chunk, total))], stall_timeout_s=120)
    published = time.time()
    left = client.wait_all_acked(120)
    cpu_s = time.process_time() - cpu_started
    client.disconnect()
    client.loop_stop()
    result.put({"started": started, "published": published, "all_acked": left == 0, "cpu_s": cpu_s})


def occupancy(i: int, channels: int) -> bytes:
    one = b"true" if i % 2 else b"false"
    return one if channels == 1 else b"[" + b",".join([one] * channels) + b"]"


def publish(port: int, devices: int, total: int, rate: float, channels: int = 1,
            on_go=None) -> dict:  # type: ignore[no-untyped-def]
    ctx = mp.get_context("spawn")
    ready, go, result = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=publisher_main, args=(port, devices, total, rate, channels, ready, go, result))
    proc.start()
    ready.wait(30)
    if on_go is not None:
        on_go()
    go.set()
    out = result.get(timeout=900)
    proc.join(30)
    return out


class Child:
    """A `facmon <command>` child process with /metrics on a port of its own."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path, http_port: int | None) -> None:
        self.http_port = http_port
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "facmon", *command], env={**os.environ, **env},
                                         cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.proc.pid)
        self.log = log

    def metric(self, name: str, labels: str = "") -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith(f"{name}{labels} ") or line.startswith(f"{name}_total{labels} "):
                    return float(line.split()[-1])
        return float("nan")

    def wait_metric(self, name: str, value: float, timeout_s: float, labels: str = "") -> float:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            try:
                if self.metric(name, labels) >= value:
                    return time.time()
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{name}{labels} did not reach {value} in {timeout_s} s: {self.log.read_text()[-1500:]}")

    def cpu_seconds(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def thread_cpu_seconds(self) -> dict[int, float]:
        """CPU seconds by thread id (Linux thread ids grow in creation order)."""
        return {t.id: t.user_time + t.system_time for t in self.ps.threads()}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def bridge_done(bridge: Child, total: int, timeout_s: float) -> float:
    """When the bridge has forwarded or dropped all `total` messages (dropped ones must not hang the run)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            done = bridge.metric("facmon_bridge_messages_forwarded", '{channel="reading"}')
            with urllib.request.urlopen(f"http://127.0.0.1:{bridge.http_port}/metrics", timeout=5) as resp:
                dropped = sum(float(line.split()[-1]) for line in resp.read().decode().splitlines()
                              if line.startswith("facmon_bridge_messages_dropped_total{"))
            if done + dropped >= total:
                return time.time()
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"the bridge did not forward or drop {total} messages in {timeout_s} s: "
                       f"{bridge.log.read_text()[-1500:]}")


def thread_breakdown(pid: int, before: dict[int, float], after: dict[int, float], messages: int) -> str:
    """CPU µs per message of each busy thread of the bridge. The main thread runs the service
    (translation, publishing); the others are named by creation order: the HTTP endpoint, then the
    publisher's paho thread (opened first), then the subscriber's."""
    names = {pid: "service (main)"}
    others = sorted(tid for tid in after if tid != pid)
    for tid, name in zip(others, ("http", "publisher paho", "subscriber paho"), strict=False):
        names[tid] = name
    parts = []
    for tid in sorted(after):
        used = after[tid] - before.get(tid, 0.0)
        if used * 1e6 / messages >= 1:
            parts.append(f"{names.get(tid, f'thread {tid}')} {used * 1e6 / messages:.1f} µs")
    return ", ".join(parts) + " per message"


def process_cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def reference(broker: Mosquitto, devices: int, total: int, channels: int) -> float:
    sub = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
    proc = subprocess.Popen([sub, "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-t", "zigbee2mqtt/+",
                             "-C", str(total)], stdout=subprocess.DEVNULL)
    time.sleep(0.5)  # subscribed (a one-off start-up wait in a benchmark, not a test)
    out = publish(broker.port, devices, total, 0, channels)
    proc.wait(600)
    return total / (time.time() - out["started"])


def latency_probe_main(port: int, devices: int, expected: int, channels: int, ready: mp.Event,
                       result: mp.Queue) -> None:
    """Receives foreign messages and contract readings; returns per-pair added latency in ms."""
    foreign: dict[str, list[float]] = defaultdict(list)
    contract: dict[str, list[float]] = defaultdict(list)
    owner: dict[str, str] = {}
    count = [0]

    def on_message(_c, _u, message) -> None:  # type: ignore[no-untyped-def]
        now = time.monotonic()
        parts = message.topic.split("/")
        if parts[0] == "zigbee2mqtt":
            foreign[parts[1]].append(now)
        else:  # a channel's reading (pir-<d>-<c>) pairs with its device's foreign message
            device = parts[4] if channels == 1 else parts[4].rsplit("-", 1)[0]
            contract[parts[4]].append(now)
            owner[parts[4]] = device
            count[0] += 1

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-latency", protocol=mqtt.MQTTv311)
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe([("zigbee2mqtt/+", 0), ("facmon/v1/bench/occupancy/+/reading", 0)])
    client.loop_start()
    time.sleep(0.5)
    ready.set()
    deadline = time.time() + 600
    while count[0] < expected and time.time() < deadline:
        time.sleep(0.05)
    client.loop_stop()
    added = [(c - f) * 1000 for d in contract for f, c in zip(foreign[owner[d]], contract[d], strict=False)]
    result.put(added)


def latency(broker: Mosquitto, devices: int, total: int, rate: float, channels: int) -> list[float]:
    ctx = mp.get_context("spawn")
    ready, result = ctx.Event(), ctx.Queue()
    probe = ctx.Process(target=latency_probe_main, args=(broker.port, devices, total * channels, channels, ready,
                                                         result))
    probe.start()
    ready.wait(30)
    publish(broker.port, devices, total, rate, channels)
    added = result.get(timeout=900)
    probe.join(30)
    return added


def _deye_device() -> dict[int, int]:
    from tests.integration.agent.test_drivers import DEYE

    return DEYE


def _sunspec_device() -> dict[int, int]:
    from tests.fixtures.sunspec import OTHER_CHAIN, sunspec_registers

    return sunspec_registers(40000, OTHER_CHAIN)


def _growatt_device() -> dict[int, int]:
    from tests.integration.agent.test_drivers import GROWATT_SPF

    return GROWATT_SPF


MODBUS_DEVICES = {"deye_hybrid": _deye_device, "growatt_spf": _growatt_device, "sunspec_hybrid": _sunspec_device}
"""The register table of a device each map of the modbus phase reads (built in the server's process)."""


def modbus_server_main(port: int, ready: mp.Event, stop: mp.Event, map_name: str) -> None:
    sys.path.insert(0, str(REPO))
    from tests.integration.agent.devices import ModbusDevice

    device = ModbusDevice(MODBUS_DEVICES[map_name]())
    device.port = port
    device.start()
    ready.set()
    stop.wait(600)
    device.stop()


def modbus(workdir: Path, broker: Mosquitto, seconds: float, map_name: str) -> dict:
    from pymodbus.client import ModbusTcpClient

    from agent.registers import load_register_map
    from agent.sunspec import place_models, walk_model_chain

    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    port = free_port()
    server = ctx.Process(target=modbus_server_main, args=(port, ready, stop, map_name))
    server.start()
    ready.wait(30)
    config = workdir / "agent.yaml"
    config.write_text(f"agent:\n  site: bench\n  interval_s: 1\n  devices:\n    - {{device: inv-1, "
                      f"driver: modbus_tcp, host: 127.0.0.1, port: {port}, register_map: {map_name}}}\n")
    agent = Child(["-c", str(config), "agent"], {"FACMON_MQTT__PORT": str(broker.port),
                                                 "FACMON_LOG__LEVEL": "warning"}, workdir / "agent.log", None)
    time.sleep(3)  # imports and the first poll done (start-up is not what is measured)
    cpu0, t0 = agent.cpu_seconds(), time.time()
    time.sleep(seconds)
    cpu = agent.cpu_seconds() - cpu0
    polls = round(time.time() - t0)  # one a second
    agent.stop()
    client = ModbusTcpClient("127.0.0.1", port=port)
    client.connect()
    register_map = load_register_map(map_name)
    if register_map.sunspec is not None:  # the reference reads the blocks the agent reads: where the models are
        register_map = place_models(register_map, walk_model_chain(
            lambda start, count: client.read_holding_registers(start, count=count, device_id=1).registers))
    own = psutil.Process()
    bare_polls = 200  # more than the agent's: the CPU clock ticks in 10 ms
    read = client.read_input_registers if register_map.table == "input" else client.read_holding_registers
    c0 = own.cpu_times()
    for _ in range(bare_polls):
        for block in register_map.blocks:
            read(block.start, count=block.count, device_id=1)
    c1 = own.cpu_times()
    client.close()
    stop.set()
    server.join(30)
    bare = (c1.user + c1.system - c0.user - c0.system) / bare_polls
    return {"polls": polls, "cpu_per_poll_ms": cpu / polls * 1000, "bare_per_poll_ms": bare * 1000,
            "pct_of_core_at_5s": cpu / polls / 5 * 100, "registers": register_map.register_count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=2000, help="offered rate of the latency phase (msg/s)")
    parser.add_argument("--latency-seconds", type=float, default=10)
    parser.add_argument("--modbus-seconds", type=float, default=20)
    parser.add_argument("--modbus-map", choices=sorted(MODBUS_DEVICES), default="deye_hybrid",
                        help="the register map the agent polls in the modbus phase")
    parser.add_argument("--channels", type=int, default=1,
                        help="channels per device (> 1: multi-channel devices, the translator's general path)")
    args = parser.parse_args()
    readings = args.messages * args.channels
    workdir = Path(tempfile.mkdtemp(prefix="facmon-bench-bridge-"))
    broker = Mosquitto(workdir / "mosquitto", free_port())
    influx = InfluxDB(workdir / "influxdb", free_port())
    children: list[Child] = []
    try:
        for server in (broker, influx):
            server.start()
            server.wait_ready(60)
        influx.create_database("bench")
        (workdir / "bridge.yaml").write_text(mapping_text(args.devices, args.channels))
        common = {"FACMON_MQTT__PORT": str(broker.port), "FACMON_LOG__LEVEL": "warning"}
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")

        ref = reference(broker, args.devices, args.messages, args.channels)
        print(f"1. reference  mosquitto_sub: {ref:,.0f} msg/s")

        collector_port = free_port()
        collector = Child(["collect"], {**common, "FACMON_INFLUXDB__URL": influx.url,
                                        "FACMON_INFLUXDB__DATABASE": "bench",
                                        "FACMON_COLLECTOR__SPOOL__DIR": str(workdir / "spool"),
                                        "FACMON_COLLECTOR__DEAD_LETTERS__FILE": str(workdir / "dead.jsonl"),
                                        "FACMON_COLLECTOR__HTTP_LISTEN": f"127.0.0.1:{collector_port}"},
                          workdir / "collector.log", collector_port)
        children.append(collector)
        collector.wait_metric("facmon_collector_broker_connected", 1, 30)
        bridge_port = free_port()
        bridge = Child(["bridge"], {**common, "FACMON_BRIDGE__MAPPINGS": str(workdir / "bridge.yaml"),
                                    "FACMON_BRIDGE__STATE_FILE": str(workdir / "bridge-seq.json"),
                                    "FACMON_BRIDGE__HTTP_LISTEN": f"127.0.0.1:{bridge_port}"},
                       workdir / "bridge.log", bridge_port)
        children.append(bridge)
        bridge.wait_metric("facmon_bridge_broker_connected", 1, 30)

        cpu0, threads0 = bridge.cpu_seconds(), bridge.thread_cpu_seconds()
        beside = {"broker": broker.pid, "collector": collector.proc.pid, "InfluxDB": influx.pid}
        beside0 = {name: process_cpu_seconds(pid) for name, pid in beside.items()}  # type: ignore[arg-type]
        out = publish(broker.port, args.devices, args.messages, 0, args.channels)
        done = bridge_done(bridge, readings, 600)
        forwarded_count = bridge.metric("facmon_bridge_messages_forwarded", '{channel="reading"}')
        forwarded = forwarded_count / args.channels / (done - out["started"])  # foreign messages a second
        cpu, threads1 = bridge.cpu_seconds() - cpu0, bridge.thread_cpu_seconds()
        collector.wait_metric("facmon_collector_points_written", forwarded_count, 600)
        beside_us = {name: (process_cpu_seconds(pid) - beside0[name]) * 1e6 / args.messages  # type: ignore[arg-type]
                     for name, pid in beside.items()}
        count = InfluxQLClient(influx.url, "bench").query("SELECT count(seq) FROM occupancy")
        stored = int(count[0].values[0][1]) if count else 0
        print(f"2. forward    {forwarded:,.0f} msg/s (ratio to mosquitto_sub {forwarded / ref:.2f}), bridge CPU "
              f"{cpu / args.messages * 1e6:.1f} µs/message, forwarded {forwarded_count:,.0f} and dropped "
              f"{readings - forwarded_count:,.0f} of {readings:,} readings ({args.channels} a message), stored "
              f"{stored:,} (loss {readings - stored}); load average {os.getloadavg()[0]:.2f}")
        print("   threads    " + thread_breakdown(bridge.proc.pid, threads0, threads1, args.messages))
        print("   beside it  " + ", ".join(f"{name} {us:.1f} µs" for name, us in beside_us.items())
              + f", the load generator {out['cpu_s'] * 1e6 / args.messages:.1f} µs per message (CPU from the first "
              "publish until the collector wrote the last point; the load generator's until its last PUBACK)")

        total = int(args.rate * args.latency_seconds)
        added = latency(broker, args.devices, total, args.rate, args.channels)
        added.sort()
        p99 = added[int(len(added) * 0.99) - 1]
        print(f"3. latency    at {args.rate:,.0f} msg/s offered, {len(added):,} pairs: added p50 "
              f"{statistics.median(added):.1f} ms, p99 {p99:.1f} ms, max {added[-1]:.1f} ms")

        figures = modbus(workdir, broker, args.modbus_seconds, args.modbus_map)
        agent_ms, bare_ms = figures["cpu_per_poll_ms"], figures["bare_per_poll_ms"]
        print(f"4. modbus     {args.modbus_map}, {figures['registers']} registers a poll, {figures['polls']} polls: "
              f"agent {agent_ms:.2f} ms CPU a poll (bare pymodbus reads {bare_ms:.2f} ms, ratio "
              f"{agent_ms / bare_ms:.1f}); "
              f"one poll every 5 s = {figures['pct_of_core_at_5s']:.3f} % of a core")
    finally:
        for child in reversed(children):
            child.stop()
        for server in (influx, broker):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
