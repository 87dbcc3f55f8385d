"""The `facmon up` stack without simulators, at a park's real rate (issue 16). Prints figures; not a test.

Its own Mosquitto and InfluxDB 1.6.7, and `facmon collect`, `facmon rules run` and `facmon api` as the
processes `facmon up` starts, on one configuration with the site files. A publisher process sends
contract readings of every device round-robin (QoS 1), plus one probe inverter toggling a fault each
second (benchmarks/rules_mqtt.py). Per load, over `--seconds`: each process's CPU (from /proc) as a
share of one core and per reading, its RSS, the collector's publish→stored delay (its own
`facmon_collector_store_lag_seconds` histogram: device `ts` to InfluxDB's confirmation, p99 as the
upper bound of the bucket holding it) and the rules engine's lag.

Loads: the demo park (12 devices) reporting every 2 s (6 readings/s, the upper end of a park), and
100 devices (the park scaled) at 100 readings/s; before the first, the stack idle (warm, nothing
published) for `--idle-seconds`. `--threads` adds each process's CPU by thread id (Python does not
name its threads for /proc; `py-spy dump --pid` maps ids to names).

    .venv/bin/python benchmarks/stack.py [--seconds 30] [--idle-seconds 10] [--threads] [--loads park,100]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.rules_mqtt import cpu_s, fleet, lags, pct, publisher_main, rss_mb, wait_quiet, write_sites
from collector.service import LAG_BUCKETS_S
from facmon.servers import InfluxDB, Mosquitto, free_port

REPO = Path(__file__).resolve().parents[1]
LOADS = (("park, 12 devices every 2 s", 12, 6.0), ("100 devices at 1 reading/s", 100, 100.0),
         ("park at 5 readings/s, 12 devices every 3 s", 12, 4.0))
LOAD_KEYS = ("park", "100", "park5")
"""`park5`: the park slowed to the issue's 5 readings/s (4/s of the devices and the probe's 1/s)."""


def store_lag_buckets(metrics_url: str) -> list[float]:
    """The collector's cumulative store-lag bucket counts, in LAG_BUCKETS_S order then +Inf."""
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("facmon_collector_store_lag_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            counts[le] = float(line.rsplit(" ", 1)[1])
    return [counts.get(f"{b}", counts.get(repr(float(b)), 0.0)) for b in LAG_BUCKETS_S] + [counts.get("+Inf", 0.0)]


def p99_bound(before: list[float], after: list[float]) -> str:
    delta = [a - b for a, b in zip(after, before, strict=True)]
    total = delta[-1]
    if total <= 0:
        return "no readings"
    for bound, count in zip((*LAG_BUCKETS_S, float("inf")), delta, strict=True):
        if count >= 0.99 * total:
            return f"≤ {bound:g} s"
    return "> 3600 s"


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of `pid`, by thread id ("main" for the process's first thread), from
    /proc's schedstat: nanoseconds, where stat's ticks (10 ms) are too coarse for a park's trickle
    (Python does not name its threads for /proc; `py-spy dump --pid` maps ids to names)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            raw = (task / "schedstat").read_text()
        except FileNotFoundError:  # the thread ended
            continue
        out["main" if task.name == str(pid) else f"tid {task.name}"] = int(raw.split()[0]) / 1e9
    return out


def threads_line(stage: str, before: dict[str, float], after: dict[str, float], wall: float) -> str:
    shares = sorted(((after[n] - before.get(n, 0.0), n) for n in after), reverse=True)
    return f"    {stage}: " + ", ".join(f"{n} {100 * cpu / wall:.3f} %" for cpu, n in shares if cpu > 0)


def run_load(tmp: Path, broker: Mosquitto, influxd: InfluxDB, name: str, devices: int, rate: float,
             seconds: float, idle_seconds: float, show_threads: bool) -> list[str]:
    sites = fleet(1, devices)
    paths = write_sites(tmp, sites)
    metrics_port = free_port()
    config = tmp / "facmon.json"
    config.write_text(json.dumps({  # JSON is YAML
        "sites": {"files": [str(p) for p in paths]},
        "mqtt": {"host": "127.0.0.1", "port": broker.port},
        "influxdb": {"url": influxd.url, "database": "stack"},
        "collector": {"http_listen": f"127.0.0.1:{metrics_port}", "spool": {"dir": str(tmp / "spool")},
                      "dead_letters": {"file": str(tmp / "dead.jsonl")}},
        "rules": {"store_path": str(tmp / "alerts.db"), "broker_watch": {"enabled": False}},
        "api": {"keys_db": str(tmp / "keys.sqlite"), "listen": f"127.0.0.1:{free_port()}"},
        "log": {"level": "info"},
    }))
    processes = {}
    for stage, args in (("collector", ["collect"]), ("rules", ["rules", "run"]), ("api", ["api"])):
        log = (tmp / f"{stage}.log").open("wb")
        processes[stage] = subprocess.Popen([sys.executable, "-m", "facmon", "--config", str(config), *args],
                                            cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    ctx = mp.get_context("spawn")
    try:
        deadline = time.monotonic() + 60
        while not all("subscribed" in (tmp / f"{s}.log").read_text(errors="replace") for s in processes):
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes.values()):
                raise RuntimeError("a stage did not start: " + " | ".join(
                    (tmp / f"{s}.log").read_text(errors="replace")[-800:] for s in processes))
            time.sleep(0.2)
        queue: mp.Queue = ctx.Queue()
        warm = ctx.Process(target=publisher_main, args=(broker.port, sites, 0, 0, True, 0, queue))
        warm.start()
        queue.get(timeout=120)
        warm.join(30)
        time.sleep(5)  # the warm-up written and judged
        rows = []
        if idle_seconds:
            cpu0 = {s: cpu_s(p.pid) for s, p in processes.items()}
            threads0 = {s: thread_cpu_s(p.pid) for s, p in processes.items()}
            wall0 = time.monotonic()
            time.sleep(idle_seconds)
            wall = time.monotonic() - wall0
            cpu = {s: cpu_s(p.pid) - cpu0[s] for s, p in processes.items()}
            cells = [f"{100 * cpu[s] / wall:.2f} % ({1e3 * cpu[s] / wall:.1f} ms a second)" for s in processes]
            rows.append(f"| idle, {name} | {' | '.join(cells)} | {100 * sum(cpu.values()) / wall:.2f} % | | |")
            print(rows[-1], flush=True)
            if show_threads:
                for s, p in processes.items():
                    print(threads_line(s, threads0[s], thread_cpu_s(p.pid), wall), flush=True)
        metrics = f"http://127.0.0.1:{metrics_port}/metrics"
        lag_before = store_lag_buckets(metrics)
        after = time.time()
        cpu0 = {s: cpu_s(p.pid) for s, p in processes.items()}
        threads0 = {s: thread_cpu_s(p.pid) for s, p in processes.items()}
        wall0 = time.monotonic()
        pub = ctx.Process(target=publisher_main, args=(broker.port, sites, rate, seconds, False, 0, queue))
        pub.start()
        _, sent, probes, _ = queue.get(timeout=seconds + 300)
        pub.join(30)
        wait_quiet(tmp / "alerts.db", sites[0].id, probes, after)
        time.sleep(1.5)  # the last commit and write (the lingers are below a second)
        wall = time.monotonic() - wall0
        cpu = {s: cpu_s(p.pid) - cpu0[s] for s, p in processes.items()}
        readings = sent + len(probes)
        rules_lag = lags(tmp / "alerts.db", sites[0].id, probes, after)
        cells = [f"{100 * cpu[s] / wall:.1f} % ({1e6 * cpu[s] / readings:,.0f} µs, {rss_mb(processes[s].pid):.0f} MB)"
                 for s in processes]
        total = 100 * sum(cpu.values()) / wall
        line = (f"| {name} ({readings / wall:.1f}/s) | {' | '.join(cells)} | {total:.1f} % | "
                f"{p99_bound(lag_before, store_lag_buckets(metrics))} | {1000 * pct(rules_lag, 99):.0f} ms |")
        print(line, flush=True)
        if show_threads:
            for s, p in processes.items():
                print(threads_line(s, threads0[s], thread_cpu_s(p.pid), wall), flush=True)
        return [*rows, line]
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--idle-seconds", type=float, default=10.0,
                        help="before the first load: CPU of the stack with nothing published (0: skip)")
    parser.add_argument("--threads", action="store_true", help="also each process's CPU by thread")
    parser.add_argument("--loads", default="park,100", help="which loads, of: park, 100, park5")
    args = parser.parse_args()
    print(f"the stack without simulators, {args.seconds:g} s per load; CPU as share of one core "
          "(per reading, RSS)")
    print("| load | collector | rules engine | API | together | collector publish→stored p99 | rules lag p99 |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="facmon-bench-stack-") as tmp_name:
        tmp = Path(tmp_name)
        broker = Mosquitto(tmp / "mosquitto")
        influxd = InfluxDB(tmp / "influxdb")
        broker.start()
        influxd.start()
        try:
            broker.wait_ready(20)
            influxd.wait_ready(60)
            chosen = [load for key, load in zip(LOAD_KEYS, LOADS, strict=True) if key in args.loads.split(",")]
            for index, (name, devices, rate) in enumerate(chosen):
                work = tmp / f"load-{index}"
                work.mkdir()
                run_load(work, broker, influxd, name, devices, rate, args.seconds,
                         args.idle_seconds if index == 0 else 0.0, args.threads)
        finally:
            broker.stop()
            influxd.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
