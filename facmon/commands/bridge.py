"""`facmon bridge`: republish foreign devices' topics (Zigbee2MQTT, Tasmota, SolarAssistant) as contract
readings and statuses, by the mapping files in bridge.mappings (see docs/devices.md).

    facmon bridge                 run until SIGINT/SIGTERM
    facmon bridge check           validate the mapping files, print what they subscribe to
    facmon bridge try --message TOPIC PAYLOAD [--message …]
                                  what the mappings make of a device's messages, without a broker: the
                                  contract messages, or why each is dropped (for writing a mapping)
    facmon bridge rejects         what a running bridge did not forward: counts by reason, the latest few
"""

from __future__ import annotations

import argparse
import itertools
import logging
import signal
import sys
import threading
import urllib.error
import urllib.request

import orjson

from bridge import BridgeError
from bridge.mapping import BridgeMapping, load_mappings
from core.clock import SystemClock
from core.config import FacmonConfig
from core.known_devices import load_sites

HELP = "republish foreign devices (Zigbee2MQTT, Tasmota, SolarAssistant) as contract readings"
log = logging.getLogger("facmon.bridge")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=("run", "check", "try", "rejects"), default="run",
                        help="run (default), check the mapping files, try messages through them, or list what "
                             "a running bridge rejected")
    parser.add_argument("--message", nargs=2, action="append", metavar=("TOPIC", "PAYLOAD"),
                        help="try: a foreign message as the device publishes it; repeat it for the messages a "
                             "gathering source puts into one reading (Tasmota's STATE and SENSOR)")
    parser.add_argument("--reason", help="rejects: only this reason (e.g. unmapped, clock_off)")
    parser.add_argument("--limit", type=int, default=20, help="rejects: how many of the latest to list")
    parser.epilog = ("Reads bridge.*, mqtt.*, sites.* (each site's time zone) and collector.decode.* from the "
                     "configuration. Mapping examples: bridge/mappings/; installer's guide: docs/devices.md.")


def _mapping(config: FacmonConfig) -> BridgeMapping:
    """The mapping files of `bridge.mappings`, offset-less times read in each site file's zone."""
    zones = {site_id: site.timezone for site_id, site in load_sites(config.sites.files).items()}
    return load_mappings(config.bridge.mappings, zones)


def run(args: argparse.Namespace, config: FacmonConfig) -> int:
    if args.action == "rejects":
        return _print_rejects(config, args.reason, args.limit)
    try:
        mapping = _mapping(config)
    except (BridgeError, ValueError) as err:  # ValueError: core.site.SiteFileError among others
        print(f"facmon bridge: {err}", file=sys.stderr)
        return 2
    if args.action == "try":
        return _try(config, mapping, args.message or [])
    if args.action == "check":
        for source in mapping.sources:
            print(f"{source.name}: {source.topic.text} → {source.site}/{source.kind.value}/{source.device_template}"
                  + (f" (status from {source.availability.text})" if source.availability else ""))
            for raw, device in source.devices.items():
                if device.channels:
                    print(f"  {raw}: channels " + ", ".join(f"{n} → {cid}" for n, cid in
                                                           enumerate(device.channels, start=1)))
        print("subscribes to: " + ", ".join(mapping.subscriptions))
        return 0
    return _serve(config, mapping)


def _try(config: FacmonConfig, mapping: BridgeMapping, messages: list[list[str]]) -> int:
    """Each message through the translator as the running bridge would (seq from 0, the state file left
    alone), then every gathering window closed. 0 when something was forwarded and nothing dropped."""
    from bridge.translate import Dropped, Forward, Outcome, Translator

    if not messages:
        print("facmon bridge try: give a message: --message TOPIC PAYLOAD, e.g. --message tele/plug_router/STATE "
              "'{\"POWER\":\"ON\"}'", file=sys.stderr)
        return 2
    counters: dict[object, itertools.count[int]] = {}
    translator = Translator(mapping, lambda device: next(counters.setdefault(device, itertools.count())),
                            config.collector.decode.limits(), config.bridge.max_payload_bytes)
    now = SystemClock().now()
    outcomes: list[Outcome] = []

    def show(out: list[Outcome]) -> None:
        for outcome in out:
            if isinstance(outcome, Forward):
                print(f"  → {outcome.topic}{' (retained)' if outcome.retain else ''} "
                      f"{outcome.payload.decode('utf-8', 'replace')}")
            else:
                print(f"  dropped {outcome.reason}" + (f" by source {outcome.source}" if outcome.source else "")
                      + f": {outcome.detail}")
        outcomes.extend(out)

    for topic, payload in messages:
        ignored = translator.ignored
        print(f"{topic} {payload[:200]}")
        out = translator.handle(topic, payload.encode(), now)
        show(out)
        if not out:
            print("  ignored (the mapping's ignore: expects it)" if translator.ignored > ignored else
                  "  gathered: its device's reading comes when the window closes (below)")
    if translator.open_windows:
        print("windows closed:")
        show(translator.tick(now + max(s.interval_s for s in mapping.sources if s.gathers)))
    forwarded = any(isinstance(o, Forward) for o in outcomes)
    return 0 if forwarded and not any(isinstance(o, Dropped) for o in outcomes) else 1


def _serve(config: FacmonConfig, mapping: BridgeMapping) -> int:
    from bridge.http import bridge_http
    from bridge.service import BridgeService

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        service = BridgeService(config.bridge, config.mqtt, mapping, config.collector.decode.limits(), SystemClock())
    except BridgeError as err:
        log.error("cannot start the bridge", extra={"error": str(err)})
        return 1
    http = None
    if config.bridge.http_listen:
        host, _, port = config.bridge.http_listen.rpartition(":")
        try:
            http = bridge_http(service, host or "127.0.0.1", int(port))
            http.start()
        except OSError as err:
            log.error("cannot serve the bridge's metrics", extra={"listen": config.bridge.http_listen,
                                                                  "error": err.strerror,
                                                                  "hint": "set bridge.http_listen or null"})
            return 1
    log.info("bridge starting", extra={"sources": len(mapping.sources), "subscriptions": list(mapping.subscriptions)})
    try:
        service.run(stop)
    finally:
        if http:
            http.stop()
    return 0


def _print_rejects(config: FacmonConfig, reason: str | None, limit: int) -> int:
    if not config.bridge.http_listen:
        print("facmon bridge rejects: bridge.http_listen is null, so the running bridge serves no /rejects",
              file=sys.stderr)
        return 2
    query = f"?limit={limit}" + (f"&reason={reason}" if reason else "")
    url = f"http://{config.bridge.http_listen}/rejects{query}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = orjson.loads(response.read())
    except (urllib.error.URLError, OSError) as err:
        print(f"facmon bridge rejects: no bridge answers at {url} ({err}); is `facmon bridge` running?",
              file=sys.stderr)
        return 1
    counts = body["counts"]
    print("dropped by reason: " + (", ".join(f"{k}={v}" for k, v in counts.items()) or "none"))
    for entry in body["recent"]:
        print(f"- {entry['reason']} [{entry['source'] or '-'}] {entry['topic']}: {entry['detail']}\n"
              f"    payload: {entry['payload_excerpt'][:120]}")
    return 0
