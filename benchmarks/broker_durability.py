"""What Mosquitto keeps across `kill -9` (issue 18, item 1): readings PUBACKed to the publisher and
queued for an absent subscriber (the collector), the broker SIGKILLed right after the last PUBACK, then
restarted on the same persistence file. Printed per broker setting: published (acknowledged),
delivered after the restart, lost, and the publish rate reached (the settings' cost), with the
shipped setting as the reference in the same run.

    .venv/bin/python benchmarks/broker_durability.py [--seconds 3] [--rate 2000] [--runs 2] [--only WORD...]

Each variant is the shipped deploy/mosquitto/facmon-broker.conf with lines appended (Mosquitto takes the
last value of an option). Paced QoS 1 publishing with paho (MQTT 5, 1,000 in flight); the subscriber's
session is persistent (clean_start false, one hour expiry) and away while publishing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facmon.servers import Mosquitto

VARIANTS = {
    "shipped: autosave_interval 10 s": "",
    "autosave_interval 1 s": "autosave_interval 1\n",
    "autosave_interval 0 (save on shutdown only)": "autosave_interval 0\n",
    "autosave_on_changes, every 100 changes": "autosave_on_changes true\nautosave_interval 100\n",
    "autosave_on_changes, every change": "autosave_on_changes true\nautosave_interval 1\n",
    "persistence false": "persistence false\n",
}
TOPIC = "bench/durability"


def _client(port: int, client_id: str, persistent: bool) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    properties = Properties(PacketTypes.CONNECT)
    if persistent:
        properties.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=not persistent, properties=properties)
    client.loop_start()
    deadline = time.monotonic() + 10
    while not client.is_connected():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{client_id} could not connect to 127.0.0.1:{port}")
        time.sleep(0.01)
    return client


def _close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def _subscribe_and_leave(port: int) -> None:
    sink = _client(port, "bench-sink", persistent=True)
    granted: list[bool] = []
    sink.on_subscribe = lambda *_args: granted.append(True)
    sink.subscribe(TOPIC, qos=1)
    deadline = time.monotonic() + 10
    while not granted and time.monotonic() < deadline:
        time.sleep(0.01)
    _close(sink)


def _publish(port: int, seconds: float, rate: int) -> tuple[int, float]:
    """Publish `rate`/s for `seconds`; returns (messages PUBACKed, seconds until the last PUBACK)."""
    publisher = _client(port, "bench-devices", persistent=False)
    infos = []
    start = time.monotonic()
    total = int(seconds * rate)
    for seq in range(total):
        due = start + seq / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        infos.append(publisher.publish(TOPIC, str(seq).encode(), qos=1))
    deadline = time.monotonic() + 30
    while not all(i.is_published() for i in infos) and time.monotonic() < deadline:
        time.sleep(0.002)
    elapsed = time.monotonic() - start
    acked = sum(1 for i in infos if i.is_published())
    _close(publisher)
    return acked, elapsed


def _collect(port: int, quiet_s: float = 1.5, limit_s: float = 30) -> int:
    seen: set[bytes] = set()
    sink = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sink", protocol=mqtt.MQTTv5)
    sink.on_message = lambda _c, _u, message: seen.add(message.payload)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    sink.connect("127.0.0.1", port, clean_start=False, properties=properties)
    sink.loop_start()
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


def run_variant(workdir: Path, extra: str, seconds: float, rate: int) -> tuple[int, int, float, int]:
    broker = Mosquitto(workdir, extra_config=extra)
    broker.start()
    broker.wait_ready()
    try:
        _subscribe_and_leave(broker.port)
        published, elapsed = _publish(broker.port, seconds, rate)
        snapshot = broker.persistence_path.stat().st_size if broker.persistence_path.exists() else 0
        broker.kill()  # right after the last PUBACK: the power cut
        broker.start()
        broker.wait_ready()
        delivered = _collect(broker.port)
    finally:
        broker.stop()
    return published, delivered, published / elapsed, snapshot


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=None, help="variants whose name contains one of these")
    args = parser.parse_args()
    variants = {name: extra for n, (name, extra) in enumerate(VARIANTS.items())
                if n == 0 or not args.only or any(word in name for word in args.only)}
    print(f"{args.rate}/s for {args.seconds:g} s, broker SIGKILLed after the last PUBACK, {args.runs} runs each")
    print(f"{'setting':<45} {'published':>9} {'delivered':>9} {'lost':>7} {'lost %':>7} {'rate/s':>7} "
          f"{'rate ratio':>10} {'snapshot':>9}")
    reference: float | None = None
    with tempfile.TemporaryDirectory(prefix="facmon-durability-") as tmp:
        for run in range(args.runs):
            for n, (name, extra) in enumerate(variants.items()):
                published, delivered, rate, snapshot = run_variant(Path(tmp) / f"{run}-{n}", extra, args.seconds,
                                                                   args.rate)
                if n == 0:
                    reference = rate
                lost = published - delivered
                print(f"{name:<45} {published:>9} {delivered:>9} {lost:>7} {100 * lost / max(published, 1):>6.1f}% "
                      f"{rate:>7.0f} {rate / (reference or rate):>10.2f} {snapshot:>9}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
