"""The chaos table (issue 18, item 4): per scenario and run, a paced stream of QoS 1 inverter readings
through Mosquitto (the shipped deploy/mosquitto/facmon-broker.conf), a `facmon collect` process and
InfluxDB 1.6.7, with one fault in the middle (tests/chaos/scenarios.py says which and how counted):

    scenario × run → published (PUBACKed by the broker), stored, lost, doubled, recovery time,
                     peak spool, collector and broker peak memory

    .venv/bin/python benchmarks/chaos.py [--devices 100] [--per-device 300] [--rate 1000]
                                         [--fault-at 10] [--fault-for 10] [--runs 2] [--only WORD...]

The reference in the same run is the no-fault stream's recovery (0) and memory: `none` runs the
same load with no fault. `disk_full` mounts a tmpfs and needs root; it is skipped otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.chaos.scenarios import SCENARIOS, ChaosLoad, at_risk_messages, run_scenario
from tests.integration.collector.harness import MountRefused


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--per-device", type=int, default=300)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--fault-at", type=float, default=10)
    parser.add_argument("--fault-for", type=float, default=10)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=None, help="scenarios whose name contains one of these")
    args = parser.parse_args()
    load = ChaosLoad(args.devices, args.per_device, args.rate, args.fault_at, args.fault_for, settle_s=120)
    scenarios = [s for s in ("none", *SCENARIOS) if not args.only or any(w in s for w in args.only)]
    print(f"{args.devices * args.per_device} readings at {args.rate:g}/s ({args.devices} devices), fault at "
          f"{args.fault_at:g} s for {args.fault_for:g} s; broker SIGKILL may lose up to "
          f"{at_risk_messages(args.rate)} under the shipped config")
    print(f"{'scenario':<18} {'run':>3} {'published':>9} {'stored':>7} {'lost':>5} {'doubled':>7} "
          f"{'recovery s':>10} {'peak spool':>10} {'collector MB':>12} {'broker MB':>9}  fault seen")
    with tempfile.TemporaryDirectory(prefix="facmon-chaos-") as tmp:
        for run in range(args.runs):
            for scenario in scenarios:
                try:
                    r = run_scenario(Path(tmp) / f"{scenario}-{run}", scenario, load)
                except MountRefused as refused:
                    print(f"{scenario:<18} {run:>3} skipped: {refused}", flush=True)
                    continue
                recovery = "never" if r.recovery_s is None else f"{r.recovery_s:.1f}"
                print(f"{scenario:<18} {run:>3} {r.published:>9} {r.stored:>7} {r.lost:>5} {r.doubled:>7} "
                      f"{recovery:>10} {r.peak_spool_bytes:>10} {r.collector_peak_rss_bytes / 2**20:>12.0f} "
                      f"{r.broker_peak_rss_bytes / 2**20:>9.0f}  {r.faults_seen}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
