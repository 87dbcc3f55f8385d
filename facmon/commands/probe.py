"""`facmon probe`: the real uplink probe agent for the router host (see probe/ and docs/simulators.md)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from core.clock import Clock, SystemClock
from core.config import FacmonConfig
from core.contract import encode_reading
from probe import ProbeError
from probe.agent import ProbeAgent, run_rounds
from probe.probers import icmp_socket_type
from probe.publish import DeviceConnection

HELP = "measure each ISP uplink (RTT, jitter, loss, link state) and publish it as an uplink device"
_EXAMPLE = """probe:
  uplinks:
    - device: uplink-ptcl
      isp: PTCL
      iface: eth1
      source_address: 192.0.2.10   # optional: probes leave from this ISP's address
      targets: [{host: 1.1.1.1}, {url: "http://connectivitycheck.gstatic.com/generate_204"}]"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="one round of probes, then exit")
    parser.add_argument("--dry-run", action="store_true",
                        help="print each reading's JSON payload instead of publishing it (no broker needed)")
    parser.epilog = ("Reads probe.* (uplinks, targets, interval) and mqtt.* from the configuration, e.g.\n\n"
                     + _EXAMPLE)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def run(args: argparse.Namespace, config: FacmonConfig, clock: Clock | None = None,
        stop: threading.Event | None = None) -> int:
    clock = clock or SystemClock()
    settings = config.probe
    if not settings.uplinks:
        print("facmon probe: no uplinks configured; add them to the config file, for example:\n" + _EXAMPLE,
              file=sys.stderr)
        return 2
    try:
        agent = ProbeAgent(settings, clock, icmp_socket_type())
    except ProbeError as err:
        print(f"facmon probe: {err}", file=sys.stderr)
        return 2
    if stop is None:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())  # type: ignore[union-attr]
    rounds = 1 if args.once else None
    try:
        if args.dry_run:
            run_rounds(agent, lambda r: print(encode_reading(r).decode(), flush=True), clock, settings.interval_s,
                       stop, rounds)
            return 0
        connections = {d: DeviceConnection(config.mqtt, d, f"{settings.client_id_prefix}-{d.site}-{d.device}", clock)
                       for d in agent.devices}
        for connection in connections.values():
            connection.open()
        try:
            run_rounds(agent, lambda r: connections[r.device].publish(r), clock, settings.interval_s, stop, rounds)
        finally:
            for connection in connections.values():
                connection.close()
    except ProbeError as err:  # e.g. SO_BINDTODEVICE refused at the first probe
        print(f"facmon probe: {err}", file=sys.stderr)
        return 2
    return 0
