"""Ingest benchmark: MQTT → collector → InfluxDB on this machine, against `mosquitto_sub` as reference.

Starts its own Mosquitto and InfluxDB 1.6.7 (facmon.servers, temp dirs), runs `facmon collect` as a
child process, and publishes readings from many simulated devices with a separate publisher process.

Phases (each prints its figures):
  1. reference   N messages queued in a persistent session, drained by `mosquitto_sub -C N` (msg/s)
  2. drain       the same N readings queued for the collector's session, drained into InfluxDB
                 (readings/s from the collector's broker connection to the last point InfluxDB
                 confirmed, as the collector reports them on /metrics; ratio to 1.), once with
                 the collector on MQTT 3.1.1 and once on MQTT 5 (the default)
  3. sustained   the publisher offers readings as fast as it can while the collector runs:
                 end-to-end readings/s (first publish → last point confirmed), loss; the reference
                 is `mosquitto_sub` subscribed under the same publishers (first publish → last received)
  4. offered     a fixed offered rate (default 5,000/s): p50/p99 publish-to-stored latency from the
                 collector's store-lag histogram (device ts = publish time)
Collector CPU (% of one core) and peak RSS (VmHWM) are reported per phase; loss is
published − stored, counted in InfluxDB.

    .venv/bin/python benchmarks/ingest.py                     # defaults below
    .venv/bin/python benchmarks/ingest.py --devices 10000 --messages 200000 --rate 5000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.influxql import InfluxQLClient  # noqa: E402
from facmon.servers import InfluxDB, Mosquitto, free_port  # noqa: E402

PAYLOAD_TEMPLATE = ('{{"ts":{ts},"seq":{seq},"grid_v":231.5,"grid_hz":50.0,"grid_ok":true,"mode":"grid",'
                    '"battery_soc_pct":87.5,"battery_v":52.3,"battery_a":4.2,"battery_temp_c":31.0,'
                    '"pv_w":2150.0,"load_w":1830.0,"inverter_temp_c":44.5,"fault_code":null}}')


def publisher_main(port: int, devices: range, total: int, rate: float, seq_offset: int, ready: mp.Event,
                   go: mp.Event, result: mp.Queue) -> None:
    """Publishes `total` readings round-robin over `devices` at `rate`/s (0: as fast as possible).
    MQTT 3.1.1, QoS 1, with the simulators' batched publisher (`BatchClient`: one write per chunk,
    PUBACKs counted in bulk, at most 2,000 unacknowledged): paho's per-message `publish()` held the
    publishers to ~4,600/s. Chunks of `rate`/100 readings every 10 ms when paced, 1,000 otherwise
    (at most one per device); each reading's `ts` is its chunk's publish time."""
    from core.clock import SystemClock
    from core.mqtt_batch import BatchClient

    clock = SystemClock()
    client = BatchClient(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{seq_offset}-{devices.start}",
                         protocol=mqtt.MQTTv311)
    client.configure_batching(clock, max_inflight=2000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    while not client.online:
        time.sleep(0.01)
    topics = [f"facmon/v1/bench/inverter/inv-{d}/reading" for d in devices]
    ready.set()
    go.wait()
    started = time.time()
    # A device at most once per chunk, and each chunk's ts after the last one's: InfluxDB keeps one point
    # per series and timestamp, so two readings of a device sharing a ts would count as one (loss).
    chunk = min(max(1, int(rate / 100)) if rate else 1000, len(topics))
    ts = 0
    for first in range(0, total, chunk):
        if rate:
            delay = started + first / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        ts = max(int(time.time() * 1000), ts + 1)
        client.publish_batch([(topics[i % len(topics)],
                               PAYLOAD_TEMPLATE.format(ts=ts, seq=seq_offset + i // len(topics)).encode(), False)
                              for i in range(first, min(first + chunk, total))], stall_timeout_s=120)
    published_at = time.time()
    left = client.wait_all_acked(120)
    acked_at = time.time()
    client.disconnect()
    client.loop_stop()
    result.put({"started": started, "published": published_at, "acked": acked_at, "all_acked": left == 0})


def run_publisher(port: int, devices: int, total: int, rate: float, seq_offset: int,
                  processes: int = 1) -> dict:
    """`processes` publisher processes, each with its share of the devices, rate and readings."""
    ctx = mp.get_context("spawn")
    go, result = ctx.Event(), ctx.Queue()
    procs, readies = [], []
    for p in range(processes):
        ready = ctx.Event()
        share = range(p * devices // processes, (p + 1) * devices // processes)
        count = total * len(share) // devices
        procs.append(ctx.Process(target=publisher_main, args=(port, share, count, rate / processes, seq_offset,
                                                               ready, go, result)))
        readies.append(ready)
        procs[-1].start()
    for ready in readies:
        ready.wait(30)
    go.set()
    outs = [result.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join(30)
    return {"started": min(o["started"] for o in outs), "published": max(o["published"] for o in outs),
            "acked": max(o["acked"] for o in outs), "all_acked": all(o["all_acked"] for o in outs)}


class Collector:
    def __init__(self, workdir: Path, broker_port: int, influx_url: str, protocol: str = "5",
                 shared_group: str | None = None, index: int = 0) -> None:
        self.http_port = free_port()
        name = f"bench-collector-{protocol}" + (f"-{shared_group}-{index}" if shared_group else "")
        self.env = {**os.environ, "FACMON_MQTT__PROTOCOL": protocol,
                    "FACMON_MQTT__PORT": str(broker_port), "FACMON_COLLECTOR__MQTT__CLIENT_ID": name,
                    "FACMON_INFLUXDB__URL": influx_url, "FACMON_INFLUXDB__DATABASE": "bench",
                    "FACMON_COLLECTOR__SPOOL__DIR": str(workdir / f"spool-{name}"),
                    "FACMON_COLLECTOR__DEAD_LETTERS__FILE": str(workdir / f"dead-{name}.jsonl"),
                    "FACMON_COLLECTOR__HTTP_LISTEN": f"127.0.0.1:{self.http_port}", "FACMON_LOG__LEVEL": "warning"}
        if shared_group:
            self.env["FACMON_COLLECTOR__MQTT__SHARED_GROUP"] = shared_group
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.ps: psutil.Process | None = None
        self._cpu0 = 0.0

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "facmon", "collect"], env=self.env, cwd=REPO,
                                         stdout=out, stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if self.metric("facmon_collector_broker_connected") == 1:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("collector did not connect: " + self.log.read_text()[-2000:])

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def metric(self, name: str) -> float:
        for line in self.metrics_text().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "_total "):
                return float(line.split()[-1])
        return float("nan")

    def points_written(self) -> float:
        """Points InfluxDB confirmed (answered 204) to this collector since it started."""
        return self.metric("facmon_collector_points_written")

    def lag_histogram(self) -> list[tuple[float, float]]:
        buckets = []
        for line in self.metrics_text().splitlines():
            if line.startswith("facmon_collector_store_lag_seconds_bucket"):
                bound = line.split('le="')[1].split('"')[0]
                buckets.append((float("inf") if bound == "+Inf" else float(bound), float(line.split()[-1])))
        return buckets

    def cpu_seconds(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)


def process_cpu_seconds(pid: int | None) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def percentile_from_histogram(buckets: list[tuple[float, float]], q: float) -> float:
    """Linear interpolation inside the bucket holding the q-quantile, as Prometheus' histogram_quantile."""
    total = buckets[-1][1]
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return prev_bound
            span = count - prev_count
            return prev_bound + (bound - prev_bound) * ((rank - prev_count) / span if span else 0)
        prev_bound, prev_count = bound, count
    return float("nan")


def stored(db: InfluxQLClient) -> int:
    series = db.query("SELECT count(seq) FROM inverter")
    return int(series[0].values[0][1]) if series else 0


def wait_confirmed(collectors: list[Collector], expected: float, timeout_s: float) -> float:
    """When the collectors' points confirmed by InfluxDB reached `expected` in all: the last confirmation
    time the collectors report (`facmon_collector_last_write_time_seconds`), so the 50 ms between
    polls does not count. Polls the collectors' /metrics, not InfluxDB: a `count()` over the growing
    measurement every 50 ms cost influxd more CPU than storing the points (measured: influxd 76-80 µs
    per reading while polled, 30-44 µs not), CPU taken from the collector on a 2-core machine. Loss is
    still counted in InfluxDB, once per phase."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if sum(c.points_written() for c in collectors) >= expected:
            return max(c.metric("facmon_collector_last_write_time_seconds") for c in collectors)
        time.sleep(0.05)
    raise RuntimeError(f"only {sum(c.points_written() for c in collectors)} of {expected} confirmed "
                       f"after {timeout_s} s")


def drop_session(broker: Mosquitto, client_id: str) -> None:
    """Connect once with a clean session under `client_id`, so the broker stops queueing for it."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                         clean_session=True)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    deadline = time.time() + 10
    while not client.is_connected() and time.time() < deadline:
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()


def mosquitto_sub_session(broker: Mosquitto, client_id: str) -> list[str]:
    """The `mosquitto_sub` command (QoS 1, persistent MQTT 5 session `client_id`, every reading topic)
    after creating its session, so that the broker queues for it from now on."""
    sub = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
    command = [sub, "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-c", "-i", client_id,
               "-t", "facmon/v1/+/+/+/reading", "-V", "mqttv5", "-x", "3600"]
    subprocess.run([*command, "-W", "1"], capture_output=True)  # connect, subscribe, leave after 1 s
    return command


def reference_drain(broker: Mosquitto, devices: int, total: int) -> float:
    base = mosquitto_sub_session(broker, "bench-ref")
    run_publisher(broker.port, devices, total, 0, 0, 2)
    started = time.time()
    subprocess.run([*base, "-C", str(total)], stdout=subprocess.DEVNULL, check=True, timeout=600)
    rate = total / (time.time() - started)
    drop_session(broker, "bench-ref")
    return rate


def reference_sustained(broker: Mosquitto, devices: int, total: int, publishers: int) -> float:
    """`mosquitto_sub` subscribed while the same publishers send `total` readings at full speed:
    readings/s from the first publish to the last one received. What the publishers and the broker
    allow a consumer that neither validates nor stores, for the sustained phase's ratio."""
    base = mosquitto_sub_session(broker, "bench-ref-live")  # it exists before anything is sent
    consumer = subprocess.Popen([*base, "-C", str(total)], stdout=subprocess.DEVNULL)
    try:
        pub = run_publisher(broker.port, devices, total, 0, 5_000_000, publishers)
        consumer.wait(600)
        done = time.time()
    finally:
        if consumer.poll() is None:
            consumer.kill()
    drop_session(broker, "bench-ref-live")
    return total / (done - pub["started"])


def shared_sustained(work: Path, broker: Mosquitto, influx_url: str, db: InfluxQLClient,
                     args: argparse.Namespace) -> dict[str, object]:
    """Scale-out: N collectors on one shared subscription ($share/facmon/...), publishers at full speed."""
    collectors = [Collector(work, broker.port, influx_url, "5", "facmon", i) for i in range(args.shared_collectors)]
    try:
        for c in collectors:
            c.start()
        cpu0 = [c.cpu_seconds() for c in collectors]
        base = stored(db)
        written0 = sum(c.points_written() for c in collectors)
        pub = run_publisher(broker.port, args.devices, args.messages, 0, 3_000_000, args.publishers)
        done = wait_confirmed(collectors, written0 + args.messages, 600)
        rate = args.messages / (done - pub["started"])
        accepted = args.messages / (pub["acked"] - pub["started"])
        cpu = [(c.cpu_seconds() - c0) / (done - pub["started"]) * 100 for c, c0 in zip(collectors, cpu0, strict=True)]
        loss = base + args.messages - stored(db)
        print(f"shared     {len(collectors)} collectors on one shared subscription: broker acknowledged "
              f"{accepted:,.0f}/s; end-to-end {rate:,.0f} readings/s; loss {loss}; collectors' CPU "
              f"{' + '.join(f'{x:.0f}%' for x in cpu)}", flush=True)
        return {"shared_collectors": len(collectors), "shared_readings_per_s": round(rate),
                "shared_broker_accepted_per_s": round(accepted), "shared_loss": loss,
                "shared_collector_cpu_pct": [round(x) for x in cpu]}
    finally:
        for c in collectors:
            c.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=150_000, help="readings per full-speed phase")
    parser.add_argument("--rate", type=float, default=5000, help="offered rate for the latency phase")
    parser.add_argument("--rate-seconds", type=float, default=20)
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument("--broker-config", default="",
                        help="lines appended to the shipped broker config, e.g. the persistence of a central broker "
                             "(\"autosave_interval 10000\") or, to compare code alone with earlier runs, the "
                             "timer before 2026-12-03 (\"autosave_on_changes false\\nautosave_interval 10\")")
    parser.add_argument("--shared-collectors", type=int, default=2,
                        help="collectors on one MQTT 5 shared subscription for the last phase (0: skip it)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="facmon-bench-"))
    report: dict[str, object] = {"devices": args.devices, "messages": args.messages,
                                 "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    broker = Mosquitto(work / "mosquitto", extra_config=args.broker_config)
    influx = InfluxDB(work / "influxdb")
    collector = None
    try:
        broker.start()
        broker.wait_ready(20)
        influx.start()
        influx.wait_ready(60)
        influx.create_database("bench")
        db = InfluxQLClient(influx.url, "bench")

        ref_rate = reference_drain(broker, args.devices, args.messages)
        report["reference_mosquitto_sub_msgs_per_s"] = round(ref_rate)
        print(f"reference  mosquitto_sub drained {args.messages} queued messages at {ref_rate:,.0f} msg/s", flush=True)
        ref_live = reference_sustained(broker, args.devices, args.messages, args.publishers)
        report["reference_sustained_mosquitto_sub_per_s"] = round(ref_live)
        print(f"reference  mosquitto_sub subscribed while {args.publishers} publishers ran at full speed: "
              f"{ref_live:,.0f} readings/s end-to-end", flush=True)

        for protocol in ("3.1.1", "5"):
            collector = Collector(work, broker.port, influx.url, protocol)
            collector.start()  # creates the persistent session
            collector.stop()
            base = stored(db)
            run_publisher(broker.port, args.devices, args.messages, 0, 10_000_000 * (protocol == "5"),
                          args.publishers)
            collector = Collector(work, broker.port, influx.url, protocol)
            launched = time.time()
            collector.start()
            # The drain starts when the collector's connection is up (the broker sends at once), as
            # mosquitto_sub's does; the Python process start before it (~0.3 s) is reported apart.
            started = collector.metric("facmon_collector_broker_connected_since_seconds")
            cpu0 = collector.cpu_seconds()
            servers0 = [process_cpu_seconds(server.pid) for server in (influx, broker)]
            done = wait_confirmed([collector], args.messages, 600)
            influx_us, broker_us = ((process_cpu_seconds(server.pid) - c0) / args.messages * 1e6
                                    for server, c0 in zip((influx, broker), servers0, strict=True))
            rate = args.messages / (done - started)
            drain_loss = base + args.messages - stored(db)
            cpu = (collector.cpu_seconds() - cpu0) / (done - started) * 100
            key = "drain_mqtt5" if protocol == "5" else "drain_mqtt311"
            report.update({f"{key}_readings_per_s": round(rate), f"{key}_ratio_to_reference": round(rate / ref_rate, 3),
                           f"{key}_loss": drain_loss, f"{key}_influxd_cpu_us_per_reading": round(influx_us, 1),
                           f"{key}_mosquitto_cpu_us_per_reading": round(broker_us, 1),
                           f"{key}_collector_cpu_pct": round(cpu),
                           f"{key}_collector_start_s": round(started - launched, 3),
                           f"{key}_cpu_us_per_reading": round(cpu / 100 / rate * 1e6, 1)})
            print(f"drain      collector (MQTT {protocol}) drained {args.messages} queued readings into InfluxDB at "
                  f"{rate:,.0f}/s (ratio to mosquitto_sub {rate / ref_rate:.2f}); collector CPU {cpu:.0f}% of a core, "
                  f"{cpu / 100 / rate * 1e6:.0f} µs per reading; loss {drain_loss}; CPU per reading of influxd "
                  f"{influx_us:.0f} µs, of mosquitto {broker_us:.0f} µs; timed from the collector's broker "
                  f"connection, {started - launched:.2f} s after its process was launched", flush=True)
            if protocol == "3.1.1":
                collector.stop()
                drop_session(broker, collector.env["FACMON_COLLECTOR__MQTT__CLIENT_ID"])

        base = stored(db)
        cpu0 = collector.cpu_seconds()
        written0 = collector.points_written()
        pub = run_publisher(broker.port, args.devices, args.messages, 0, 1_000_000, args.publishers)
        done = wait_confirmed([collector], written0 + args.messages, 600)
        sustained = args.messages / (done - pub["started"])
        offered = args.messages / (pub["published"] - pub["started"])
        accepted = args.messages / (pub["acked"] - pub["started"])
        cpu = (collector.cpu_seconds() - cpu0) / (done - pub["started"]) * 100
        loss = base + args.messages - stored(db)
        report.update(sustained_readings_per_s=round(sustained), sustained_offered_per_s=round(offered),
                      sustained_broker_accepted_per_s=round(accepted), sustained_loss=loss,
                      sustained_collector_cpu_pct=round(cpu),
                      sustained_ratio_to_reference=round(sustained / ref_live, 3))
        print(f"sustained  {args.publishers} publishers queued {offered:,.0f}/s, the broker acknowledged "
              f"{accepted:,.0f}/s; end-to-end {sustained:,.0f} readings/s (first publish → last stored; "
              f"ratio to mosquitto_sub under the same publishers {sustained / ref_live:.2f}); "
              f"loss {loss}; collector CPU {cpu:.0f}%", flush=True)

        base = stored(db)
        before = collector.lag_histogram()
        total = int(args.rate * args.rate_seconds)
        written0 = collector.points_written()
        pub = run_publisher(broker.port, args.devices, total, args.rate, 2_000_000, args.publishers)
        wait_confirmed([collector], written0 + total, 120)
        time.sleep(0.2)
        after = collector.lag_histogram()
        delta = [(b, a - p) for (b, a), (_, p) in zip(after, before, strict=True)]
        p50, p99 = percentile_from_histogram(delta, 0.5), percentile_from_histogram(delta, 0.99)
        loss = base + total - stored(db)
        report.update(latency_rate_per_s=args.rate, latency_p50_s=round(p50, 3), latency_p99_s=round(p99, 3),
                      latency_loss=loss)
        print(f"offered    {args.rate:,.0f}/s for {args.rate_seconds:g} s: publish→stored p50 {p50 * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms (histogram-interpolated); loss {loss}", flush=True)
        report["collector_peak_rss_mb"] = round(collector.peak_rss_mb(), 1)
        print(f"memory     collector peak RSS {collector.peak_rss_mb():.1f} MB with {args.devices} devices", flush=True)
        if args.shared_collectors:
            collector.stop()
            drop_session(broker, collector.env["FACMON_COLLECTOR__MQTT__CLIENT_ID"])
            collector = None
            report.update(shared_sustained(work, broker, influx.url, db, args))
        print(json.dumps(report))
    finally:
        if collector:
            collector.stop()
        influx.stop()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
