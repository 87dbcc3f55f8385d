"""`facmon collect`: run the collector (MQTT → spool → InfluxDB) until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from collector.http import CollectorHttp
from collector.service import CollectorService
from collector.spool import SpoolError
from core.clock import SystemClock
from core.config import FacmonConfig
from core.influx_write import line_writer_for
from core.known_devices import known_devices_from_files

HELP = "run the collector: subscribe to device readings, validate them, store every one in InfluxDB"
log = logging.getLogger("facmon.collect")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("Reads mqtt.*, influxdb.*, collector.* and sites.* from the configuration. Stops cleanly on "
                     "Ctrl-C/SIGTERM; anything not yet in InfluxDB stays in the spool for the next start.")


def run(args: argparse.Namespace, config: FacmonConfig) -> int:
    stop = threading.Event()
    try:
        known = known_devices_from_files(config.sites)
        service = CollectorService(config.collector, config.mqtt, line_writer_for(config.influxdb), SystemClock(),
                                   known)
    except (SpoolError, OSError, ValueError) as err:  # ValueError: core.site.SiteFileError among others
        log.error("cannot start the collector", extra={"error": str(err)})
        return 1

    def on_signal(*_: object) -> None:
        stop.set()
        service.wake()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    log.info("devices accepted", extra={"known_devices": len(known) if known is not None else "any",
                                        "site_files": [str(p) for p in config.sites.files]})
    http = None
    if config.collector.http_listen:
        host, _, port = config.collector.http_listen.rpartition(":")
        try:
            http = CollectorHttp(service, host or "127.0.0.1", int(port))
            http.start()
        except OSError as err:
            log.error("cannot serve collector metrics", extra={"listen": config.collector.http_listen,
                                                               "error": err.strerror,
                                                               "hint": "set collector.http_listen or null"})
            return 1
    try:
        service.run(stop)
    finally:
        if http:
            http.stop()
    return 0
