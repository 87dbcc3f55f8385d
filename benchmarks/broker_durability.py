"""What Mosquitto keeps across `kill -9` (issue 18, item 1): readings PUBACKed to the publisher and
queued for an absent subscriber (the collector), the broker SIGKILLed right after the last PUBACK, then
restarted on the same persistence file. Printed per broker setting: published (acknowledged),
delivered after the restart, lost, and the publish rate reached (the settings' cost), with the
shipped setting as the reference in the same run.

    .venv/bin/python benchmarks/broker_durability.py [--seconds 3] [--rate 2000] [--runs 2] [--only WORD...]
                                                     [--payload-bytes 200] [--block 25000]

With `--block`, the rate is also printed per block of messages as the broker's queue grows: the cost
of a setting that rewrites the whole database at each save grows with the queue.

Two other measurements, instead of the table above:

    --backlog 200000 500000 1000000 [--drain-s 60] [--intake 10000] [--autosave-changes N]
        A queue for an absent collector, filled with snapshots off and saved once, then, on the shipped
        settings (or a snapshot every N changes): the broker's restart on it, its PUBACK rate for more
        readings (intake), its drain to a subscriber that acknowledges at once, and a `facmon collect`
        process's drain into InfluxDB 1.6.7 (readings stored per second), each drain bounded in time.
    --bridge [--central mosquitto rabbitmq] [--faults none site central both site_while_central_down]
             [--outage-s 2]
        A site Mosquitto (the shipped settings plus deploy/mosquitto/bridge-to-central.conf.example)
        bridged to a central Mosquitto or RabbitMQ (quorum queues); devices publish to the site; halfway
        the site, the central or both are SIGKILLed and restarted (or the site while the central is
        down); a persistent subscriber at the central, away until the end, counts what arrived of what
        the site acknowledged: lost, doubled.

Each variant is the shipped deploy/mosquitto/facmon-broker.conf with lines appended (Mosquitto takes the
last value of an option). Paced QoS 1 publishing with paho (MQTT 5, 1,000 in flight); the subscriber's
session is persistent (clean_start false, one hour expiry) and away while publishing.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.contract import TOPIC_ROOT, encode_reading
from core.influxql import InfluxQLClient
from facmon.servers import InfluxDB, Mosquitto, ServerProcess, free_port
from tests.chaos.scenarios import FleetPublisher, peak_rss_bytes
from tests.integration.collector.harness import CollectorProcess, collector_env, count_points, inverter_readings
from tests.integration.test_mosquitto_bridge_example import bridge_config

RABBITMQ = "RabbitMQ 3.10 MQTT, quorum queues (3.1.1)"
VARIANTS = {
    "shipped: autosave_on_changes, every 1,000 changes": "",
    "autosave_interval 10 s (the default until 2026-12)": "autosave_on_changes false\nautosave_interval 10\n",
    "autosave_interval 1 s": "autosave_on_changes false\nautosave_interval 1\n",
    "autosave_interval 0 (save on shutdown only)": "autosave_on_changes false\nautosave_interval 0\n",
    "autosave_on_changes, every 100 changes": "autosave_on_changes true\nautosave_interval 100\n",
    "autosave_on_changes, every 10,000 changes": "autosave_on_changes true\nautosave_interval 10000\n",
    "autosave_on_changes, every change": "autosave_on_changes true\nautosave_interval 1\n",
    "persistence false": "persistence false\n",
    RABBITMQ: "",
}
TOPIC = "bench/durability"
MAX_UNACKED = 30_000
"""paho numbers messages in flight with 16-bit ids: the publisher waits rather than run out of them."""


def _client(port: int, client_id: str, persistent: bool, v311: bool = False, connect_timeout_s: float = 10,
            on_message: Callable[[mqtt.Client, object, mqtt.MQTTMessage], None] | None = None) -> mqtt.Client:
    """MQTT 5 (a persistent session: clean_start false, one hour expiry), or 3.1.1 (clean_session
    false) for a broker that speaks only that (RabbitMQ 3.10)."""
    if v311:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                             clean_session=not persistent)
    else:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.on_message = on_message  # before connecting: a resumed session delivers at once
    if v311:
        client.connect("127.0.0.1", port)
    else:
        properties = Properties(PacketTypes.CONNECT)
        if persistent:
            properties.SessionExpiryInterval = 3600
        client.connect("127.0.0.1", port, clean_start=not persistent, properties=properties)
    client.loop_start()
    deadline = time.monotonic() + connect_timeout_s
    while not client.is_connected():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{client_id} could not connect to 127.0.0.1:{port}")
        time.sleep(0.01)
    return client


def _close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def _subscribe_and_leave(port: int, v311: bool, topic: str = TOPIC) -> None:
    sink = _client(port, "bench-sink", persistent=True, v311=v311)
    granted: list[bool] = []
    sink.on_subscribe = lambda *_args: granted.append(True)
    sink.subscribe(topic, qos=1)
    deadline = time.monotonic() + 10
    while not granted and time.monotonic() < deadline:
        time.sleep(0.01)
    _close(sink)


def _payload(seq: int, size: int) -> bytes:
    """A distinct payload of about `size` bytes (an inverter reading's JSON is ~195)."""
    return str(seq).encode().ljust(size, b" ")


def _publish(port: int, seconds: float, rate: int, payload_bytes: int = 0, block: int = 0,
             v311: bool = False, message: Callable[[int], tuple[str, bytes]] | None = None,
             ack_wait_s: float = 120) -> tuple[int, float, list[float]]:
    """Publish `rate`/s for `seconds`; returns (messages PUBACKed, seconds until the last PUBACK, and
    with `block` the rate reached in each run of `block` messages, as the queue grows). `message`
    gives the topic and payload of the n-th message (default: TOPIC and a padded counter)."""
    publisher = _client(port, "bench-devices", persistent=False, v311=v311)
    acked_at: list[float] = []
    publisher.on_publish = lambda *_args: acked_at.append(time.monotonic())
    start = time.monotonic()
    total = int(seconds * rate)
    for seq in range(total):
        due = start + seq / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        while seq - len(acked_at) >= MAX_UNACKED:  # a broker that slows down holds the devices back
            time.sleep(0.001)
        topic, payload = message(seq) if message else (TOPIC, _payload(seq, payload_bytes))
        publisher.publish(topic, payload, qos=1)
    deadline = time.monotonic() + ack_wait_s
    while len(acked_at) < total and time.monotonic() < deadline:
        time.sleep(0.002)
    elapsed = time.monotonic() - start
    acked = len(acked_at)
    _close(publisher)
    times = [start, *sorted(acked_at)]
    blocks = range(0, len(times) - block, block) if block else range(0)
    rates = [block / max(times[i + block] - times[i], 1e-9) for i in blocks]
    return acked, elapsed, rates


def _collect(port: int, v311: bool, quiet_s: float = 1.5, limit_s: float = 120) -> int:
    seen: set[bytes] = set()
    # A broker recovering a large queue (RabbitMQ replaying its logs) may take a while to answer.
    sink = _client(port, "bench-sink", persistent=True, v311=v311, connect_timeout_s=limit_s,
                   on_message=lambda _c, _u, message: seen.add(message.payload))
    start = last_change = time.monotonic()
    count = -1
    while time.monotonic() - start < limit_s:
        if len(seen) != count:
            count, last_change = len(seen), time.monotonic()
        elif time.monotonic() - last_change >= quiet_s:
            break
        time.sleep(0.05)
    _close(sink)
    return len(seen)


class RabbitMqMqtt(ServerProcess):
    """A RabbitMQ node of its own (Debian's rabbitmq-server 3.10) in `workdir`, on free loopback ports,
    with its own epmd and Erlang cookie (HOME is the workdir), so it never meets another RabbitMQ on
    the machine. MQTT 3.1.1 plugin; durable (non-clean) sessions on quorum queues, which confirm a
    QoS 1 message, and so its PUBACK, only once written to the queue's log."""

    name = "rabbitmq"
    binary = "/usr/lib/rabbitmq/bin/rabbitmq-server"
    debian_package = "rabbitmq-server"
    scheme = "mqtt"

    def __init__(self, workdir: Path, queue_type: str = "quorum") -> None:
        super().__init__(workdir)
        self.queue_type = queue_type
        self._amqp_port, self._dist_port, self._epmd_port = free_port(), free_port(), free_port()
        self._epmd: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> None:
        (self.workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self._amqp_port}\n"
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "mqtt.allow_anonymous = true\n"
            f"mqtt.durable_queue_type = {self.queue_type}\n")
        (self.workdir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        if self._epmd is None:  # our own name server, so the node never registers with another's
            self._epmd = subprocess.Popen(["epmd", "-port", str(self._epmd_port)], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)

    def _command(self) -> list[str]:
        w = self.workdir
        env = {"HOME": w, "RABBITMQ_NODENAME": f"facmonbench{self.port}@localhost",
               "RABBITMQ_NODE_PORT": self._amqp_port, "RABBITMQ_DIST_PORT": self._dist_port,
               "ERL_EPMD_PORT": self._epmd_port, "RABBITMQ_MNESIA_BASE": w / "mnesia", "RABBITMQ_LOG_BASE": w / "log",
               "RABBITMQ_ENABLED_PLUGINS_FILE": w / "enabled_plugins", "RABBITMQ_CONFIG_FILE": w / "rabbitmq",
               "RABBITMQ_PID_FILE": w / "pid", "RABBITMQ_PLUGINS_EXPAND_DIR": w / "plugins-expand",
               "RABBITMQ_ADVANCED_CONFIG_FILE": w / "advanced.config",
               "RABBITMQ_CONF_ENV_FILE": w / "rabbitmq-env.conf"}
        return ["env", *(f"{k}={v}" for k, v in env.items()), self.binary]

    def _serving(self) -> bool:
        try:
            socket.create_connection((self.host, self.port), timeout=0.5).close()
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Stop the node and its epmd."""
        self.stop()
        if self._epmd is not None:
            self._epmd.kill()
            self._epmd.wait(timeout=10)
            self._epmd = None


def run_rabbitmq(workdir: Path, seconds: float, rate: int, payload_bytes: int,
                 block: int) -> tuple[int, int, float, int, list[float]]:
    broker = RabbitMqMqtt(workdir)
    broker.start()
    try:
        broker.wait_ready(60)
        _subscribe_and_leave(broker.port, v311=True)
        published, elapsed, rates = _publish(broker.port, seconds, rate, payload_bytes, block, v311=True)
        broker.kill()  # right after the last PUBACK: the power cut
        broker.start()
        broker.wait_ready(60)
        delivered = _collect(broker.port, v311=True)
    finally:
        broker.close()
    return published, delivered, published / elapsed, 0, rates


def run_variant(workdir: Path, extra: str, seconds: float, rate: int, payload_bytes: int = 0,
                block: int = 0) -> tuple[int, int, float, int, list[float]]:
    broker = Mosquitto(workdir, extra_config=extra)
    broker.start()
    broker.wait_ready()
    try:
        _subscribe_and_leave(broker.port, v311=False)
        published, elapsed, rates = _publish(broker.port, seconds, rate, payload_bytes, block)
        snapshot = broker.persistence_path.stat().st_size if broker.persistence_path.exists() else 0
        broker.kill()  # right after the last PUBACK: the power cut
        broker.start()
        broker.wait_ready()
        delivered = _collect(broker.port, v311=False)
    finally:
        broker.stop()
    return published, delivered, published / elapsed, snapshot, rates


BRIDGE_FAULTS = ("none", "site", "central", "both", "site_while_central_down")


def _collect_counted(port: int, v311: bool, quiet_s: float, limit_s: float) -> tuple[set[bytes], int]:
    """Like `_collect`, but also counts copies: (distinct payloads, messages received)."""
    seen: set[bytes] = set()
    received = [0]

    def on_message(_client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        seen.add(message.payload)
        received[0] += 1
    sink = _client(port, "bench-sink", persistent=True, v311=v311, connect_timeout_s=limit_s, on_message=on_message)
    start = last_change = time.monotonic()
    count = -1
    while time.monotonic() - start < limit_s:
        if received[0] != count:
            count, last_change = received[0], time.monotonic()
        elif time.monotonic() - last_change >= quiet_s:
            break
        time.sleep(0.05)
    _close(sink)
    return seen, received[0]


def run_bridged(workdir: Path, central_kind: str, fault: str, seconds: float, rate: int,
                outage_s: float) -> tuple[int, int, int, int]:
    """A site Mosquitto (shipped settings) bridged to a central broker (`mosquitto`, the shipped
    settings, or `rabbitmq`, quorum queues); devices publish to the site at `rate`/s for `seconds`;
    halfway, `fault` (site, central, both: kill -9, restarted `outage_s` later; none;
    site_while_central_down: the central killed, `outage_s` later the site, both restarted `outage_s`
    after that). Then a
    persistent subscriber at the central broker, absent until then, collects. Returns (readings
    the site PUBACKed to the devices, of them received at the central, lost, doubled copies)."""
    v311 = central_kind == "rabbitmq"
    central: ServerProcess = RabbitMqMqtt(workdir / "central") if v311 else Mosquitto(workdir / "central")
    central.start()
    central.wait_ready(60)
    site: Mosquitto | None = None
    try:
        _subscribe_and_leave(central.port, v311, topic=f"{TOPIC_ROOT}/#")
        site = Mosquitto(workdir / "site", extra_config=bridge_config(central.port, try_private=not v311))
        site.start()
        site.wait_ready()
        readings = inverter_readings("bridged", 100, int(seconds * rate) // 100, int(time.time() * 1000), 100)
        fleet = FleetPublisher(site.port, readings, rate)
        fleet.start()
        time.sleep(seconds / 2)
        if fault == "site_while_central_down":  # the site queues for the bridge, then its power fails
            central.kill()
            time.sleep(outage_s)
            site.kill()
            time.sleep(outage_s)
            hit: list[ServerProcess] = [site, central]
        else:
            hit = {"site": [site], "central": [central], "both": [site, central], "none": []}[fault]
            for broker in hit:
                broker.kill()
            time.sleep(outage_s)
        for broker in hit:
            broker.start()
            broker.wait_ready(60)
        fleet.finish(timeout_s=seconds + 60)
        acknowledged = {encode_reading(r) for r in fleet.acknowledged()}
        fleet.close()
        # The bridge forwards what it queued while the central was away once it reconnects, within
        # its restart_timeout (at most 10 s): a quiet time longer than that ends the collection.
        seen, received = _collect_counted(central.port, v311, quiet_s=12.0, limit_s=180)
    finally:
        if site is not None:
            site.stop()
        if isinstance(central, RabbitMqMqtt):
            central.close()
        else:
            central.stop()
    kept = acknowledged & seen
    return len(acknowledged), len(kept), len(acknowledged) - len(kept), received - len(seen)


def bridge_table(centrals: list[str], faults: list[str], seconds: float, rate: int, runs: int,
                 outage_s: float) -> None:
    print(f"site Mosquitto bridged to a central broker: {rate}/s for {seconds:g} s published to the site; halfway, "
          f"kill -9 and {outage_s:g} s down; a persistent subscriber at the central collects at the end")
    print(f"{'central':<28} {'killed':<23} {'run':>3} {'acked':>7} {'received':>8} {'lost':>6} {'doubled':>7}  load")
    names = {"mosquitto": "Mosquitto (shipped settings)", "rabbitmq": "RabbitMQ 3.10, quorum queues"}
    with tempfile.TemporaryDirectory(prefix="facmon-bridge-") as tmp:
        for run in range(runs):
            for central in centrals:
                for fault in faults:
                    acked, kept, lost, doubled = run_bridged(Path(tmp) / f"{run}-{central}-{fault}", central, fault,
                                                             seconds, rate, outage_s)
                    print(f"{names[central]:<28} {fault:<23} {run:>3} {acked:>7} {kept:>8} {lost:>6} {doubled:>7}  "
                          f"{os.getloadavg()[0]:.1f}", flush=True)


FILL_FAST = "autosave_on_changes false\nautosave_interval 0\n"
"""Filling the backlog: no snapshot until the clean shutdown, so the fill is not the measurement."""
READINGS_PER_CHUNK = 50


def _reading_messages(devices: int) -> Callable[[int], tuple[str, bytes]]:
    """The n-th of an endless stream of valid inverter readings (device n % devices), as the
    collector stores them; built a chunk at a time so a million need not sit in memory."""
    start_ms = int(time.time() * 1000) - 86_400_000
    chunk: list[tuple[str, bytes]] = []
    chunk_index = [-1]

    def message(n: int) -> tuple[str, bytes]:
        index, offset = divmod(n, devices * READINGS_PER_CHUNK)
        if index != chunk_index[0]:
            first_seq = index * READINGS_PER_CHUNK
            readings = inverter_readings("backlog", devices, READINGS_PER_CHUNK, start_ms + first_seq * 1000)
            chunk[:] = [(r.device.reading_topic(), encode_reading(replace(r, seq=r.seq + first_seq)))
                        for r in readings]
            chunk_index[0] = index
        return chunk[offset]
    return message


def _drain(port: int, limit_s: float) -> tuple[int, float]:
    """The raw broker's drain: a subscriber that acknowledges at once takes its persistent session's
    queue for at most `limit_s`; returns (messages received, seconds)."""
    received = [0]

    def count(*_args: object) -> None:
        received[0] += 1
    start = time.monotonic()
    sink = _client(port, "bench-sink", persistent=True, connect_timeout_s=limit_s, on_message=count)
    last, last_change = -1, time.monotonic()
    while time.monotonic() - start < limit_s and time.monotonic() - last_change < 3:
        if received[0] != last:
            last, last_change = received[0], time.monotonic()
        time.sleep(0.1)
    _close(sink)
    return received[0], min(time.monotonic(), last_change) - start


def _collector_drain(broker_port: int, workdir: Path, influx: InfluxDB, limit_s: float,
                     start_collector: bool = True) -> tuple[int, float]:
    """`facmon collect` (fsynced spool, InfluxDB 1.6.7) taking its queue for at most `limit_s`;
    returns (readings InfluxDB holds, readings stored per second once the first was)."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = collector_env(workdir, broker_port, influx.url, "facmon", client_id="backlog-collector")
    collector = CollectorProcess(env, workdir / "collector.log")
    db = InfluxQLClient(influx.url, "facmon")
    start = time.monotonic()
    collector.start()
    try:
        if not start_collector:  # only create the persistent session, then leave
            collector.wait_subscribed()
            return 0, 0.0
        # The rate from the first stored point on: the collector's start (imports, connecting) apart.
        stored, last_change, first = 0, time.monotonic(), None
        while time.monotonic() - start < limit_s and time.monotonic() - last_change < 10:
            time.sleep(1)
            now = count_points(db)
            if now and first is None:
                first = (now, time.monotonic())
            if now != stored:
                stored, last_change = now, time.monotonic()
        if first is None:
            return 0, limit_s
        return stored, (stored - first[0]) / max(last_change - first[1], 1e-9)
    finally:
        # Killed, not stopped: the figure is taken, and a collector draining a large queue may take
        # longer to finish its batch than a stop waits (what it had not acknowledged, the broker keeps).
        collector.kill()
        db.close()


def run_backlog(workdir: Path, queued: int, fill_rate: int, devices: int, intake: int, drain_s: float,
                setting: str = "") -> str:
    """One row: fill `queued` readings for two absent persistent sessions (a raw subscriber and a
    collector) with snapshots off, stop cleanly (one save), restart on the shipped settings, then
    measure at that queue: the restart, the PUBACK rate of `intake` more, the raw drain and the
    collector's drain (each bounded by `drain_s`). `setting`: lines appended to the shipped ones
    for the measurement (another snapshot setting)."""
    influx = InfluxDB(workdir / "influxd")
    influx.start()
    influx.wait_ready(30)
    influx.create_database("facmon")
    messages = _reading_messages(devices)
    try:
        broker = Mosquitto(workdir / "broker", extra_config=FILL_FAST)
        broker.start()
        broker.wait_ready()
        _collector_drain(broker.port, workdir / "collector", influx, 0, start_collector=False)
        sink = _client(broker.port, "bench-sink", persistent=True)
        sink.subscribe("facmon/#", qos=1)
        time.sleep(0.5)  # the SUBACK; a fill that starts before it only shortens the raw queue
        _close(sink)
        filled, fill_s, _ = _publish(broker.port, queued / fill_rate, fill_rate, message=messages)
        save_start = time.monotonic()
        broker.stop(timeout_s=300)
        save_s = time.monotonic() - save_start
        snapshot = broker.persistence_path.stat().st_size
        broker = Mosquitto(workdir / "broker", port=broker.port, extra_config=setting)  # same file
        load_start = time.monotonic()
        broker.start()
        broker.wait_ready(300)
        load_s = time.monotonic() - load_start
        try:
            intake_acked, intake_s, _ = _publish(
                broker.port, intake / 5000, 5000,
                message=lambda n: messages(queued + n), ack_wait_s=drain_s)
            raw, raw_s = _drain(broker.port, drain_s)
            stored, stored_rate = _collector_drain(broker.port, workdir / "collector", influx, drain_s)
            rss = peak_rss_bytes(broker.pid)
        finally:
            broker.stop(timeout_s=300)
    finally:
        influx.stop()
    return (f"{filled:>9,} {filled / fill_s:>7.0f} {save_s:>6.1f} {snapshot / 2**20:>7.0f} {load_s:>6.1f} "
            f"{rss / 2**20:>7.0f} {intake_acked:>6,} {intake_acked / max(intake_s, 1e-9):>8.0f} "
            f"{raw:>8,} {raw / max(raw_s, 1e-9):>7.0f} {stored:>8,} {stored_rate:>7.0f}  "
            f"load {os.getloadavg()[0]:.1f}")


def backlog_table(sizes: list[int], fill_rate: int, devices: int, intake: int, drain_s: float,
                  setting: str = "") -> None:
    shown = f"the shipped settings + {setting!r}" if setting else "the shipped settings"
    print(f"backlog of inverter readings ({devices} devices) for two absent persistent sessions; then, on "
          f"{shown}: {intake:,} more offered at 5,000/s, each drain bounded by {drain_s:g} s")
    print(f"{'queued':>9} {'fill/s':>7} {'save s':>6} {'db MiB':>7} {'load s':>6} {'rss MiB':>7} "
          f"{'intake':>6} {'intake/s':>8} {'raw':>8} {'raw/s':>7} {'stored':>8} {'coll/s':>7}")
    with tempfile.TemporaryDirectory(prefix="facmon-backlog-") as tmp:
        for n, queued in enumerate(sizes):
            print(run_backlog(Path(tmp) / str(n), queued, fill_rate, devices, intake, drain_s, setting), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=None, help="variants whose name contains one of these")
    parser.add_argument("--payload-bytes", type=int, default=0, help="pad each message to this size")
    parser.add_argument("--block", type=int, default=0,
                        help="also print the PUBACK rate per this many messages, as the queue grows")
    parser.add_argument("--bridge", action="store_true",
                        help="instead: a site Mosquitto bridged to a central broker, either killed mid-stream")
    parser.add_argument("--central", nargs="*", default=["mosquitto", "rabbitmq"], choices=["mosquitto", "rabbitmq"])
    parser.add_argument("--faults", nargs="*", default=list(BRIDGE_FAULTS), choices=BRIDGE_FAULTS)
    parser.add_argument("--outage-s", type=float, default=2.0,
                        help="with --bridge: how long the killed broker stays down")
    parser.add_argument("--backlog", type=int, nargs="*", default=None,
                        help="instead: the broker's and the collector's rates with this many readings queued")
    parser.add_argument("--fill-rate", type=int, default=20_000, help="with --backlog: the fill's offered rate")
    parser.add_argument("--intake", type=int, default=10_000, help="with --backlog: messages offered at the queue")
    parser.add_argument("--autosave-changes", type=int, default=0,
                        help="with --backlog: measure with a snapshot every this many changes, not the shipped 1,000")
    parser.add_argument("--drain-s", type=float, default=60, help="with --backlog: the bound of each drain")
    args = parser.parse_args()
    if args.bridge:
        bridge_table(args.central, args.faults, args.seconds, args.rate, args.runs, args.outage_s)
        return 0
    if args.backlog:
        setting = f"autosave_interval {args.autosave_changes}\n" if args.autosave_changes else ""
        backlog_table(args.backlog, args.fill_rate, 1000, args.intake, args.drain_s, setting)
        return 0
    variants = {name: extra for n, (name, extra) in enumerate(VARIANTS.items())
                if n == 0 or not args.only or any(word in name for word in args.only)}
    print(f"{args.rate}/s for {args.seconds:g} s, broker SIGKILLed after the last PUBACK, {args.runs} runs each")
    print(f"{'setting':<52} {'published':>9} {'delivered':>9} {'lost':>7} {'lost %':>7} {'rate/s':>7} "
          f"{'rate ratio':>10} {'snapshot':>9}")
    reference: float | None = None
    with tempfile.TemporaryDirectory(prefix="facmon-durability-") as tmp:
        for run in range(args.runs):
            for n, (name, extra) in enumerate(variants.items()):
                run_one = run_rabbitmq if name == RABBITMQ else partial(run_variant, extra=extra)
                published, delivered, rate, snapshot, rates = run_one(
                    Path(tmp) / f"{run}-{n}", seconds=args.seconds, rate=args.rate,
                    payload_bytes=args.payload_bytes, block=args.block)
                if n == 0:
                    reference = rate
                lost = published - delivered
                print(f"{name:<52} {published:>9} {delivered:>9} {lost:>7} {100 * lost / max(published, 1):>6.1f}% "
                      f"{rate:>7.0f} {rate / (reference or rate):>10.2f} {snapshot:>9}", flush=True)
                if rates:
                    print(f"    PUBACKs/s per {args.block:,} messages queued: "
                          + " ".join(f"{r:.0f}" for r in rates), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
