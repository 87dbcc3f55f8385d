"""The rules engine through MQTT, as users run it (issue 16). Prints figures; not a test.

A real Mosquitto, `facmon rules run` as its own process with the default park pack on every site, and
a publisher process sending contract readings of every device round-robin at a set rate (QoS 1, one
connection). Fleets: 100 devices on one site, and 10,000 devices over 100 sites (each the demo park
scaled to 100 devices); every device is seen once before measuring (a warm fleet).

Per fleet and rate: the engine's CPU per reading (from /proc, idle ticks included: what it costs at
that rate), its RSS, and the evaluation lag: one inverter of the first site alternates `mode: fault`
and `mode: grid` every second, and InverterFault (no `for`) fires and resolves on each; the lag is
the transition's time in the store minus the reading's publish time. A last run publishes as fast as
the publisher can and reports what the engine consumed per second of CPU and of wall time.

    .venv/bin/python benchmarks/rules_mqtt.py [--seconds 20] [--rates 5,100,1000,5000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from core.clock import SystemClock
from core.contract import Kind, encode_payload, format_ts
from core.mqtt_batch import BatchClient
from core.settings.mqtt import MqttSettings
from core.site import Site, described_labels, iter_devices, load_site
from facmon.servers import Mosquitto
from simulators.scenario import DEFAULT_SITE
from simulators.world import scale_site

REPO = Path(__file__).resolve().parents[1]
CLOCK = SystemClock()
PROBE_EVERY_S = 1.0
METRICS = {
    Kind.INVERTER: {"grid_v": 231.0, "grid_hz": 50.0, "grid_ok": True, "mode": "grid", "battery_soc_pct": 80.0,
                    "battery_v": 52.0, "battery_a": 1.0, "battery_temp_c": 30.0, "pv_w": 500.0, "load_w": 900.0,
                    "inverter_temp_c": 40.0, "fault_code": None},
    Kind.UPLINK: {"iface": "eth1", "link_up": True, "rtt_ms": 30.0, "jitter_ms": 2.0, "loss_pct": 0.0},
    Kind.OCCUPANCY: {"occupied": False, "people": 0, "sensor_battery_pct": 90.0},
    Kind.GENERATOR: {"running": False, "state": "off", "output_w": 0.0, "fuel_pct": 70.0, "engine_hours": 1200.0},
    Kind.PLUG: {"relay_on": True, "power_w": 18.0, "energy_kwh": 412.0, "voltage_v": 229.0, "wifi_signal_dbm": -61.0,
                "uptime_s": 86_400},
}
if set(METRICS) != set(Kind):
    raise ImportError(f"benchmarks/rules_mqtt.py: no healthy metrics for {sorted(set(Kind) - set(METRICS))}")


def fleet(sites: int, devices: int) -> list[Site]:
    park = load_site(DEFAULT_SITE)
    return [scale_site(park, devices).model_copy(update={"id": f"park{i:03d}" if sites > 1 else "park"})
            for i in range(sites)]


def write_sites(tmp: Path, sites: list[Site]) -> list[Path]:
    paths = []
    for site in sites:
        path = tmp / f"{site.id}.yaml"
        path.write_text(yaml.safe_dump(site.model_dump(mode="json", exclude_defaults=False), allow_unicode=True),
                        encoding="utf-8")
        paths.append(path)
    return paths


def devices_of(sites: list[Site]) -> list[tuple[str, Kind, str, dict]]:
    """(topic, kind, device, metrics) per device, labels filled in from the site file."""
    out = []
    for site in sites:
        for spec in iter_devices(site):
            metrics = {**METRICS[spec.kind], **described_labels(spec)}
            out.append((f"facmon/v1/{site.id}/{spec.kind.value}/{spec.id}/reading", spec.kind, spec.id, metrics))
    return out


def publisher_main(port: int, sites: list[Site], rate: float, seconds: float, warm: bool, fast_total: int,
                   probe_times: mp.Queue) -> None:
    devices = devices_of(sites)
    load = len(devices)
    probe = f"facmon/v1/{sites[0].id}/inverter/inv-main/reading"
    client = BatchClient.for_session(MqttSettings(host="127.0.0.1", port=port), f"bench-rules-pub-{os.getpid()}",
                                     CLOCK, 2000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    while not client.online:
        time.sleep(0.01)
    seq = [0] * len(devices)

    def batch(indices: range | list[int]) -> list[tuple[str, bytes, bool]]:
        ts = format_ts(round(CLOCK.now() * 1000))
        out = []
        for i in indices:
            j = i % load
            topic, kind, _, metrics = devices[j]
            out.append((topic, encode_payload(kind, ts, seq[j], metrics), False))
            seq[j] += 1
        return out

    if warm:
        for start in range(0, len(devices), 1000):
            client.publish_batch(batch(range(start, min(start + 1000, len(devices)))))
        client.wait_all_acked(60)
        probe_times.put(("warm", CLOCK.now()))
        client.disconnect()
        client.loop_stop()
        return
    probes: list[tuple[float, str]] = []
    fault = False
    probe_index = next(i for i, d in enumerate(devices) if d[0] == probe)
    probe_device = devices.pop(probe_index)  # only the probe readings speak for it now
    devices.append(probe_device)
    probe_index = len(devices) - 1
    load = len(devices) - 1

    def probe_message() -> tuple[str, bytes, bool]:
        nonlocal fault
        fault = not fault
        metrics = dict(devices[probe_index][3], mode="fault" if fault else "grid",
                       fault_code="E01" if fault else None)
        seq[probe_index] += 1
        probes.append((CLOCK.now(), "firing" if fault else "resolved"))
        return probe, encode_payload(Kind.INVERTER, format_ts(round(CLOCK.now() * 1000)), seq[probe_index],
                                     metrics), False

    sent = 0
    started = CLOCK.monotonic()
    if fast_total:
        for start in range(0, fast_total, 1000):
            client.publish_batch(batch(range(start, min(start + 1000, fast_total))))
        client.publish_batch([probe_message(), probe_message()])
        sent = fast_total
    else:
        next_probe = started
        tick = 0.01
        while (now := CLOCK.monotonic()) - started < seconds:
            due = int((now - started) * rate) - sent
            if due > 0:
                client.publish_batch(batch(range(sent, sent + due)))
                sent += due
            if now >= next_probe:
                client.publish_batch([probe_message()])
                next_probe += PROBE_EVERY_S
            time.sleep(tick)
        if fault:  # every run leaves the probe as it found it: not in fault
            client.publish_batch([probe_message()])
    client.wait_all_acked(120)
    probe_times.put(("done", sent, probes, CLOCK.monotonic() - started))
    client.disconnect()
    client.loop_stop()


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def transitions(store: Path, site: str, after: float) -> list[tuple[float, str]]:
    """InverterFault's transitions of the probe (`site`'s inv-main) since `after`."""
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT at, to_state, labels FROM transitions WHERE rule = 'InverterFault' AND at > ? "
                          "ORDER BY id", (after,)).fetchall()
    return [(at, state) for at, state, labels in rows
            if (lb := json.loads(labels)).get("device") == "inv-main" and lb.get("site") == site
            and state in ("firing", "resolved")]


def lags(store: Path, site: str, probes: list[tuple[float, str]], after: float) -> list[float]:
    """Each probe's publish time matched with the next transition to the state it asks for."""
    seen = transitions(store, site, after)
    out, i = [], 0
    for published, state in probes:
        while i < len(seen) and (seen[i][1] != state or seen[i][0] < published - 0.001):
            i += 1
        if i < len(seen):
            out.append(seen[i][0] - published)
            i += 1
    return out


def wait_quiet(store: Path, site: str, probes: list[tuple[float, str]], after: float,
               timeout_s: float = 120) -> None:
    """Until the engine has judged the last probe (it consumed everything before it, in order)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(lags(store, site, probes, after)) >= len(probes):
            return
        time.sleep(0.05)
    with sqlite3.connect(store) as db:
        counts = db.execute("SELECT rule, to_state, count(*) FROM transitions GROUP BY rule, to_state").fetchall()
    raise RuntimeError(f"the rules engine did not judge every probe reading in time (transitions: {counts}, "
                       f"judged {len(lags(store, site, probes, after))} of {len(probes)}: probes {probes}, "
                       f"transitions {transitions(store, site, after)})")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def run_fleet(tmp: Path, broker: Mosquitto, sites: list[Site], rates: list[float], seconds: float,
              fast_total: int) -> list[str]:
    paths = write_sites(tmp, sites)
    store = tmp / f"alerts-{len(sites)}.db"
    env = {**os.environ, "FACMON_MQTT__PORT": str(broker.port), "FACMON_MQTT__HOST": "127.0.0.1",
           "FACMON_SITES__FILES": ",".join(map(str, paths)), "FACMON_RULES__STORE_PATH": str(store),
           "FACMON_RULES__WRITE_INFLUX": "false", "FACMON_RULES__REFILL_MAX_S": "0",
           "FACMON_RULES__BROKER_WATCH__ENABLED": "false", "FACMON_RULES__MQTT_CLIENT_ID": f"bench-rules-{len(sites)}",
           "FACMON_LOG__LEVEL": "info"}
    log = tmp / f"rules-{len(sites)}.log"
    engine = subprocess.Popen([str(REPO / ".venv" / "bin" / "facmon"), "rules", "run"], env=env, cwd=tmp,
                              stdout=subprocess.DEVNULL, stderr=log.open("w"))
    ctx = mp.get_context("spawn")
    lines = []
    try:
        deadline = time.monotonic() + 30
        while not store.exists() or "subscribed" not in log.read_text(errors="replace"):
            if engine.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the rules engine did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        queue: mp.Queue = ctx.Queue()
        warm = ctx.Process(target=publisher_main, args=(broker.port, sites, 0, 0, True, 0, queue))
        warm.start()
        queue.get(timeout=120)
        warm.join(30)
        devices = sum(1 for s in sites for _ in iter_devices(s))
        for rate in [*rates, None]:
            # Settle: the warm-up's (or the previous run's) readings consumed, CPU back to idle ticks.
            time.sleep(2)
            after = CLOCK.now()
            cpu0, wall0 = cpu_s(engine.pid), time.monotonic()
            pub = ctx.Process(target=publisher_main, args=(broker.port, sites, rate or 0, seconds, False,
                                                           0 if rate else fast_total, queue))
            pub.start()
            _, sent, probes, _elapsed = queue.get(timeout=seconds + 300)
            pub.join(30)
            try:
                wait_quiet(store, sites[0].id, probes, after)
            except RuntimeError as err:
                raise RuntimeError(f"{err}\n{log.read_text(errors='replace')[-2000:]}") from None
            cpu = cpu_s(engine.pid) - cpu0
            wall = time.monotonic() - wall0
            readings = sent + len(probes)
            lag = lags(store, sites[0].id, probes, after)
            if rate:
                lines.append(f"| {devices:,} devices / {len(sites)} site(s) | {rate:,.0f}/s | "
                             f"{1e6 * cpu / readings:,.0f} µs | {100 * cpu / wall:.1f} % | "
                             f"{1000 * pct(lag, 50):.0f} / {1000 * pct(lag, 99):.0f} ms | "
                             f"{rss_mb(engine.pid):.0f} MB |")
            else:
                lines.append(f"| {devices:,} devices / {len(sites)} site(s) | as fast as published "
                             f"({readings:,} readings) | {1e6 * cpu / readings:,.0f} µs | "
                             f"{readings / cpu:,.0f} readings per CPU-second, {readings / wall:,.0f}/s wall | "
                             f"last probe {1000 * lag[-1]:.0f} ms | {rss_mb(engine.pid):.0f} MB |")
            print(lines[-1], flush=True)
    finally:
        engine.terminate()
        engine.wait(30)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rates", default="5,100,1000,5000")
    parser.add_argument("--fast", type=int, default=100_000, help="readings of the as-fast-as-published run")
    parser.add_argument("--fleets", default="1x100,100x100", help="SITESxDEVICES, comma-separated")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r]
    print(f"rules engine through MQTT, {args.seconds:g} s per rate, park pack on every site")
    print("| fleet | rate | CPU per reading | CPU (share of a core) | lag p50 / p99 | RSS |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="facmon-bench-rules-") as tmp_name:
        tmp = Path(tmp_name)
        broker = Mosquitto(tmp / "mosquitto")
        broker.start()
        try:
            broker.wait_ready(20)
            for spec in args.fleets.split(","):
                count, devices = (int(x) for x in spec.split("x"))
                work = tmp / spec
                work.mkdir()
                run_fleet(work, broker, fleet(count, devices), rates, args.seconds, args.fast)
        finally:
            broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
