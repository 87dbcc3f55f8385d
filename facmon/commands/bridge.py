"""`facmon bridge`: republish foreign devices' topics (Zigbee2MQTT, Tasmota, SolarAssistant) as contract
readings and statuses, by the mapping files in bridge.mappings (see docs/devices.md).

    facmon bridge                 run until SIGINT/SIGTERM
    facmon bridge check           validate the mapping files, print what they subscribe to
    facmon bridge rejects         what a running bridge did not forward: counts by reason, the latest few
"""

from __future__ import annotations

import argparse
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
from core.decode import DecodeLimits
from core.known_devices import load_sites

HELP = "republish foreign devices (Zigbee2MQTT, Tasmota, SolarAssistant) as contract readings"
log = logging.getLogger("facmon.bridge")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=("run", "check", "rejects"), default="run",
                        help="run (default), check the mapping files, or list what a running bridge rejected")
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


def _serve(config: FacmonConfig, mapping: BridgeMapping) -> int:
    from bridge.http import bridge_http
    from bridge.service import BridgeService

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    decode = config.collector.decode
    try:
        service = BridgeService(config.bridge, config.mqtt, mapping,
                                DecodeLimits(decode.max_payload_bytes, decode.max_future_s, decode.max_age_s),
                                SystemClock())
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
