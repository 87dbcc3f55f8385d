"""What Mosquitto keeps across `kill -9` (issue 18, item 1): readings PUBACKed to the publisher and
queued for an absent subscriber (the collector), the broker SIGKILLed right after the last PUBACK, then
restarted on the same persistence file. Printed per broker setting: published (acknowledged),
delivered after the restart, lost, and the publish rate reached (the settings' cost), with the
shipped setting as the reference in the same run.

    .venv/bin/python benchmarks/broker_durability.py [--seconds 3] [--rate 2000] [--runs 2] [--only WORD...]
                                                     [--payload-bytes 200] [--block 25000]

With `--block`, the rate is also printed per block of messages as the broker's queue grows: the cost
of a setting that rewrites the whole database at each save grows with the queue.

Each variant is the shipped deploy/mosquitto/facmon-broker.conf with lines appended (Mosquitto takes the
last value of an option). Paced QoS 1 publishing with paho (MQTT 5, 1,000 in flight); the subscriber's
session is persistent (clean_start false, one hour expiry) and away while publishing.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facmon.servers import Mosquitto, ServerProcess, free_port

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


def _subscribe_and_leave(port: int, v311: bool) -> None:
    sink = _client(port, "bench-sink", persistent=True, v311=v311)
    granted: list[bool] = []
    sink.on_subscribe = lambda *_args: granted.append(True)
    sink.subscribe(TOPIC, qos=1)
    deadline = time.monotonic() + 10
    while not granted and time.monotonic() < deadline:
        time.sleep(0.01)
    _close(sink)


def _payload(seq: int, size: int) -> bytes:
    """A distinct payload of about `size` bytes (an inverter reading's JSON is ~195)."""
    return str(seq).encode().ljust(size, b" ")


def _publish(port: int, seconds: float, rate: int, payload_bytes: int = 0, block: int = 0,
             v311: bool = False) -> tuple[int, float, list[float]]:
    """Publish `rate`/s for `seconds`; returns (messages PUBACKed, seconds until the last PUBACK, and
    with `block` the rate reached in each run of `block` messages, as the queue grows)."""
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
        publisher.publish(TOPIC, _payload(seq, payload_bytes), qos=1)
    deadline = time.monotonic() + 120
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=None, help="variants whose name contains one of these")
    parser.add_argument("--payload-bytes", type=int, default=0, help="pad each message to this size")
    parser.add_argument("--block", type=int, default=0,
                        help="also print the PUBACK rate per this many messages, as the queue grows")
    args = parser.parse_args()
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
