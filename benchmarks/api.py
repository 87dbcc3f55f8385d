"""API latency: latest state under an open-loop load of 200 requests/s from a second process, and one
day of 1 s data downsampled to 1 min, idle and while that load runs.

Three processes, as in production: `facmon api` (the real command line, its own process, configured
by a YAML file) against a real Mosquitto and InfluxDB in temp dirs; the load generator (a spawned
process: several threads, each with one keep-alive connection, sending request i at start + i/rate
whatever the answers do, so a slow server cannot slow the offered load down); and this process,
which measures history requests.

    .venv/bin/python benchmarks/api.py [--rate 200] [--seconds 20] [--connections 8] [--history-runs 20]

The day is written at once, so InfluxDB first holds it in its in-memory write cache; a real day of
data older than a few minutes sits in TSM files. The benchmark measures the in-cache history idle,
then lets influxd snapshot the cache to TSM (INFLUXDB_DATA_CACHE_SNAPSHOT_WRITE_COLD_DURATION=1s for
its own influxd) and measures the rest on TSM.

Targets (issue 5): latest-state p99 <= 25 ms at 200 requests/s; one-day history <= 300 ms.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.keys import KeyStore, Role
from core.clock import SystemClock
from core.contract import DeviceKey, Kind, Reading, encode_reading
from core.influxql import InfluxQLClient
from facmon.servers import InfluxDB, Mosquitto, free_port
from tests.integration.api_stack import write_readings

CLOCK = SystemClock()
INV = DeviceKey("park", Kind.INVERTER, "inv-main")
DAY_START_MS = 1_767_225_600_000
HISTORY_PATH = ("/api/v1/history/park/inv-main?start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z"
                "&interval=1m&agg=mean&metrics=battery_soc_pct&metrics=pv_w&metrics=load_w")
LATEST_PATH = "/api/v1/sites/park/devices/inv-main"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load(port: int, token: str, rate: float, seconds: float, connections: int, out: multiprocessing.Queue) -> None:
    """Open loop: request i is due at start + i/rate; `connections` threads take the next due request
    as soon as they are free. Puts (due, sent, done, status) per request."""
    total = int(rate * seconds)
    headers = {"Authorization": f"Bearer {token}"}
    lock = threading.Lock()
    state = {"next": 0}
    results: list[tuple[float, float, float, int]] = []
    start = CLOCK.monotonic() + 0.2

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while True:
            with lock:
                i = state["next"]
                state["next"] += 1
            if i >= total:
                break
            due = start + i / rate
            CLOCK.sleep(max(0.0, due - CLOCK.monotonic()))
            sent = CLOCK.monotonic()
            conn.request("GET", LATEST_PATH, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append((due, sent, CLOCK.monotonic(), response.status))
        conn.close()
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds * 10 + 60)
    out.put((start, results))


def write_day(influx: InfluxQLClient) -> None:
    day = [Reading(INV, DAY_START_MS + i * 1000, i, {
        "grid_v": 230.0, "grid_ok": True, "mode": "grid", "battery_soc_pct": 50 + (i % 500) / 10,
        "battery_v": 52.0, "battery_a": 1.0, "pv_w": float(i % 5000), "load_w": 1500.0}) for i in range(86_400)]
    for chunk in range(0, len(day), 10_000):
        write_readings(influx, day[chunk:chunk + 10_000])


def wait_for_tsm(influxd: InfluxDB, timeout_s: float = 60) -> None:
    """Until influxd has snapshotted its write cache to a TSM file (the WAL segments are then removed)."""
    deadline = CLOCK.monotonic() + timeout_s
    while not list((influxd.workdir / "data").rglob("*.tsm")):
        if CLOCK.monotonic() > deadline:
            raise SystemExit("influxd did not snapshot its cache to TSM in time")
        CLOCK.sleep(0.2)
    CLOCK.sleep(1.0)


def start_api(tmp: Path, broker: Mosquitto, influxd: InfluxDB, port: int) -> subprocess.Popen:
    config = tmp / "facmon.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "mqtt": {"host": "127.0.0.1", "port": broker.port},
        "influxdb": {"url": influxd.url, "database": "bench"},
        "collector": {"http_listen": None},
        "rules": {"store_path": str(tmp / "alerts.db")},
        "api": {"keys_db": str(tmp / "keys.sqlite"), "listen": f"127.0.0.1:{port}"},
        "log": {"level": "warning"},
    }))
    log = (tmp / "api.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "facmon", "--config", str(config), "api"], cwd=tmp,
                            stdout=log, stderr=subprocess.STDOUT)


def publish_latest(broker: Mosquitto) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-inv-main")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    reading = Reading(INV, int(CLOCK.now() * 1000), 1, {
        "grid_v": 230.0, "grid_ok": True, "mode": "grid", "battery_soc_pct": 77.0, "battery_v": 52.0,
        "battery_a": 1.0, "pv_w": 400.0, "load_w": 1500.0})
    client.publish(INV.status_topic(), "online", qos=1, retain=True).wait_for_publish(5)
    client.publish(INV.reading_topic(), encode_reading(reading), qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(http: urllib3.PoolManager, url: str, headers: dict[str, str]) -> float:
    sent = CLOCK.monotonic()
    response = http.request("GET", url, headers=headers)
    took = (CLOCK.monotonic() - sent) * 1000
    assert response.status == 200, response.data[:300]
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--history-runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="facmon-bench-api-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["INFLUXDB_DATA_CACHE_SNAPSHOT_WRITE_COLD_DURATION"] = "1s"  # inherited by our influxd only
        broker, influxd = Mosquitto(tmp / "mosquitto"), InfluxDB(tmp / "influxd")
        api = None
        try:
            for server in (broker, influxd):
                server.start()
                server.wait_ready(20)
            influxd.create_database("bench")
            influx = InfluxQLClient(influxd.url, "bench")
            keys = KeyStore(tmp / "keys.sqlite", CLOCK)
            token = keys.create("bench", Role.VIEWER)[1]
            keys.close()
            port = free_port()
            api = start_api(tmp, broker, influxd, port)
            base = f"http://127.0.0.1:{port}"
            headers = {"Authorization": f"Bearer {token}"}
            http = urllib3.PoolManager()
            deadline = CLOCK.monotonic() + 30
            while True:
                try:
                    if http.request("GET", f"{base}/readyz", retries=False).status == 200:
                        break
                except urllib3.exceptions.HTTPError:
                    pass
                assert api.poll() is None and CLOCK.monotonic() < deadline, (tmp / "api.log").read_text()[-2000:]
                CLOCK.sleep(0.1)
            publish_latest(broker)
            while not http.request("GET", base + LATEST_PATH, headers=headers).json().get("latest"):
                assert CLOCK.monotonic() < deadline, "the API never saw the published reading"
                CLOCK.sleep(0.05)

            write_day(influx)
            points = len(http.request("GET", base + HISTORY_PATH, headers=headers).json()["series"][0]["times"])
            idle_cache = [timed(http, base + HISTORY_PATH, headers) for _ in range(5)]
            wait_for_tsm(influxd)
            idle = [timed(http, base + HISTORY_PATH, headers) for _ in range(args.history_runs)]
            idle_latest = [timed(http, base + LATEST_PATH, headers) for _ in range(200)]

            spawn = multiprocessing.get_context("spawn")
            out: multiprocessing.Queue = spawn.Queue()
            loader = spawn.Process(target=load, args=(port, token, args.rate, args.seconds, args.connections, out))
            cpu_before = cpu_seconds(api.pid)
            loader.start()
            CLOCK.sleep(1.0)
            loaded = []
            for _ in range(args.history_runs):
                loaded.append(timed(http, base + HISTORY_PATH, headers))
                CLOCK.sleep(max(0.0, (args.seconds - 2) / args.history_runs - loaded[-1] / 1000))
            start, results = out.get(timeout=args.seconds * 10 + 60)
            api_cpu = cpu_seconds(api.pid) - cpu_before
            loader.join(10)
        finally:
            if api is not None:
                api.terminate()
                api.wait(15)
            for server in (broker, influxd):
                server.stop()
    report(args, start, results, points, idle_cache, idle, idle_latest, loaded)
    found = [m for m in ("uvloop", "httptools") if importlib.util.find_spec(m)]
    print(f"API process CPU during the loaded phase: {api_cpu:.1f} s for {len(results)} latest-state + "
          f"{len(loaded)} history requests ({api_cpu / len(results) * 1000:.2f} ms a request, history included); "
          f"uvicorn found: {', '.join(found) or 'neither uvloop nor httptools (asyncio, h11)'}")
    return 0


def report(args: argparse.Namespace, start: float, results: list[tuple[float, float, float, int]], points: int,
           idle_cache: list[float], idle: list[float], idle_latest: list[float], loaded: list[float]) -> None:
    service = [(done - sent) * 1000 for _, sent, done, _ in results]
    from_due = [(done - due) * 1000 for due, _, done, _ in results]
    errors = sum(status != 200 for *_, status in results)
    late = sum(sent - due > 0.005 for due, sent, _, _ in results)
    took = max(done for _, _, done, _ in results) - start
    print(f"latest state, {args.connections} keep-alive connections: offered {args.rate:g}/s for {args.seconds:g} s; "
          f"{len(results)} requests done in {took:.1f} s = {len(results) / took:.0f}/s achieved; errors {errors}; "
          f"sent >5 ms late {late}")
    print(f"  send->answer p50 {percentile(service, 0.5):.2f} ms, p99 {percentile(service, 0.99):.2f} ms, "
          f"max {max(service):.2f} ms (target p99 <= 25 ms); due->answer p99 {percentile(from_due, 0.99):.2f} ms; "
          f"idle (one client, no load) p50 {percentile(idle_latest, 0.5):.2f} ms, p99 "
          f"{percentile(idle_latest, 0.99):.2f} ms")
    print(f"one-day history (86 400 points of 1 s data -> {points} 1-min buckets, 3 metrics, mean):")
    print(f"  idle, data in influxd's write cache: p50 {statistics.median(idle_cache):.1f} ms")
    print(f"  idle, data in TSM: p50 {statistics.median(idle):.1f} ms, p99 {percentile(idle, 0.99):.1f} ms")
    print(f"  under the latest-state load, TSM: p50 {statistics.median(loaded):.1f} ms, "
          f"p99 {percentile(loaded, 0.99):.1f} ms, max {max(loaded):.1f} ms (target <= 300 ms); "
          f"ratio loaded/idle p50 {statistics.median(loaded) / statistics.median(idle):.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
