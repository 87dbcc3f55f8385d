"""API latency: latest state under 200 requests/s from a second process, and one day of 1 s data
downsampled to 1 min, both while that load runs. Real Mosquitto and InfluxDB in temp dirs, the API
on uvicorn as `facmon api` wires it.

    .venv/bin/python benchmarks/api.py [--rate 200] [--seconds 20] [--history-runs 20]

Targets (issue 5): latest-state p99 <= 25 ms at 200 requests/s; one-day history <= 300 ms.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
from pathlib import Path

import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.keys import Role
from core.clock import SystemClock
from core.contract import DeviceKey, Kind, Reading
from core.influxql import InfluxQLClient
from facmon.servers import InfluxDB, Mosquitto
from tests.integration.api_stack import make_tokens, served, stack_config, write_readings

CLOCK = SystemClock()
INV = DeviceKey("park", Kind.INVERTER, "inv-main")
DAY_START_MS = 1_767_225_600_000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load(url: str, token: str, rate: float, seconds: float, out: multiprocessing.Queue) -> None:
    """Open-loop load: one request every 1/rate s (late requests are sent at once, never skipped)."""
    http = urllib3.PoolManager(maxsize=4)
    headers = {"Authorization": f"Bearer {token}"}
    latencies, errors = [], 0
    start = CLOCK.monotonic()
    for i in range(int(rate * seconds)):
        due = start + i / rate
        CLOCK.sleep(due - CLOCK.monotonic())
        sent = CLOCK.monotonic()
        response = http.request("GET", url, headers=headers)
        latencies.append((CLOCK.monotonic() - sent) * 1000)
        errors += response.status != 200
    out.put((latencies, errors, CLOCK.monotonic() - start))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--history-runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="facmon-bench-api-") as tmp_name:
        tmp = Path(tmp_name)
        broker, influxd = Mosquitto(tmp / "mosquitto"), InfluxDB(tmp / "influxd")
        for server in (broker, influxd):
            server.start()
            server.wait_ready(20)
        try:
            influxd.create_database("bench")
            influx = InfluxQLClient(influxd.url, "bench")
            day = [Reading(INV, DAY_START_MS + i * 1000, i, {
                "grid_v": 230.0, "grid_ok": True, "mode": "grid", "battery_soc_pct": 50 + (i % 500) / 10,
                "battery_v": 52.0, "battery_a": 1.0, "pv_w": float(i % 5000), "load_w": 1500.0})
                for i in range(86_400)]
            for chunk in range(0, len(day), 10_000):
                write_readings(influx, day[chunk:chunk + 10_000])
            with served(stack_config(tmp, broker, influx)) as (base, services):
                token = make_tokens(services)[Role.VIEWER]
                services.states.observe(day[-1], CLOCK.now())
                headers = {"Authorization": f"Bearer {token}"}
                http = urllib3.PoolManager()
                history_url = (f"{base}/api/v1/history/park/inv-main?start=2026-01-01T00:00:00Z"
                               "&end=2026-01-02T00:00:00Z&interval=1m&agg=mean&metrics=battery_soc_pct&metrics=pv_w&metrics=load_w")
                first = http.request("GET", history_url, headers=headers)
                assert first.status == 200, first.data
                points = len(first.json()["series"][0]["times"])
                idle = []
                for _ in range(5):
                    sent = CLOCK.monotonic()
                    http.request("GET", history_url, headers=headers)
                    idle.append((CLOCK.monotonic() - sent) * 1000)
                spawn = multiprocessing.get_context("spawn")
                out: multiprocessing.Queue = spawn.Queue()
                loader = spawn.Process(
                    target=load, args=(f"{base}/api/v1/sites/park/devices/inv-main", token, args.rate,
                                       args.seconds, out))
                loader.start()
                history = []
                CLOCK.sleep(1.0)
                for _ in range(args.history_runs):
                    sent = CLOCK.monotonic()
                    response = http.request("GET", history_url, headers=headers)
                    history.append((CLOCK.monotonic() - sent) * 1000)
                    assert response.status == 200
                    CLOCK.sleep(max(0.0, args.seconds * 0.8 / args.history_runs - history[-1] / 1000))
                latencies, errors, took = out.get(timeout=args.seconds * 3 + 30)
                loader.join(10)
        finally:
            for server in (broker, influxd):
                server.stop()
    achieved = len(latencies) / took
    print(f"latest state: {len(latencies)} requests in {took:.1f} s ({achieved:.0f}/s, target {args.rate:g}/s), "
          f"errors {errors}; p50 {percentile(latencies, 0.5):.2f} ms, p99 {percentile(latencies, 0.99):.2f} ms, "
          f"max {max(latencies):.2f} ms (target p99 <= 25 ms)")
    print(f"one-day history (86 400 points of 1 s data -> {points} 1-min buckets, 3 metrics, mean): "
          f"under load p50 {statistics.median(history):.1f} ms, p99 {percentile(history, 0.99):.1f} ms; "
          f"idle p50 {statistics.median(idle):.1f} ms (target <= 300 ms); "
          f"ratio loaded/idle p50 {statistics.median(history) / statistics.median(idle):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
