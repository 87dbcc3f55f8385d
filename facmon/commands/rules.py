"""`facmon rules`: run the rules engine on its own, check rule files, list the loaded rules.

    facmon rules run               engine + notifiers until SIGINT/SIGTERM (what `facmon up` starts)
    facmon rules check [FILE...]   validate rule files and the routes to them; prints file:line: problem,
                                   exit 1 if any
    facmon rules list              the rules in force (from rules.rule_files, or the shipped pack)
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from core.clock import SystemClock
from core.config import FacmonConfig
from core.influx_write import InfluxWriteError, line_writer_for
from core.influxql import influxql_client_for
from core.site import SiteFileError
from rules.history import InfluxHistory
from rules.model import RuleFileError, load_rule_files
from rules.service import DEFAULT_RULE_FILES, RulesService, route_problems

HELP = "the rules engine: run it, check rule files, list rules"
log = logging.getLogger("facmon.rules")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    sub.add_parser("run", help="evaluate rules on live readings and send notifications until stopped")
    check = sub.add_parser("check", help="validate rule files (file:line: what is wrong) and the routes to them")
    check.add_argument("files", nargs="*", type=Path, metavar="FILE",
                       help="rule files (default: rules.rule_files of the configuration, else the shipped pack); "
                            "the configured routes are checked against them")
    sub.add_parser("list", help="list the rules in force")


def run(args: argparse.Namespace, config: FacmonConfig) -> int:
    if args.rules_command == "check":
        return _check(args.files or [Path(f) for f in config.rules.rule_files or DEFAULT_RULE_FILES], config)
    if args.rules_command == "list":
        return _list(config)
    return _run(config)


def _check(files: list[Path], config: FacmonConfig) -> int:
    try:
        pack = load_rule_files(files)
        problems = route_problems(config.rules, pack)
    except RuleFileError as err:
        problems = str(err).splitlines()
    for line in problems:
        print(line, file=sys.stderr)
    if not problems:
        print(f"ok: {len(pack.rules)} rules in {len(files)} file(s), {len(config.rules.routes)} route(s)")
    return 1 if problems else 0


def _list(config: FacmonConfig) -> int:
    try:
        pack = load_rule_files(config.rules.rule_files or DEFAULT_RULE_FILES)
    except RuleFileError as err:
        print(err, file=sys.stderr)
        return 1
    for rule in pack.rules:
        timing = f"for={rule.for_s:g}s keep_firing_for={rule.keep_firing_for_s:g}s"
        print(f"{rule.name:<24} {rule.condition.type:<10} {rule.labels.get('severity', '-'):<9} {timing}")
    return 0


def _run(config: FacmonConfig) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    writer = line_writer_for(config.influxdb) if config.rules.write_influx else None

    def write_lines(lines: list[str]) -> None:
        assert writer is not None
        writer.write(lines)

    history = InfluxHistory(influxql_client_for(config.influxdb)) if config.rules.refill_max_s > 0 else None
    try:
        service = RulesService.from_settings(config.rules, config.mqtt, SystemClock(),
                                             write_lines if writer is not None else None, sites=config.sites,
                                             history=history)
    except (RuleFileError, SiteFileError, OSError, InfluxWriteError, ValueError) as err:
        log.error("cannot start the rules engine", extra={"error": str(err)})
        return 1
    finally:
        if history is not None:
            history.close()
    service.start()
    if config.rules.http_listen:
        try:
            service.start_http(config.rules.http_listen)
        except OSError as err:  # the port is taken: the engine still evaluates and notifies
            log.error("cannot serve /metrics", extra={"listen": config.rules.http_listen, "error": str(err)})
    log.info("rules engine running",
             extra={"rules": len(service.engine.rules()), "store": str(config.rules.store_path),
                    "http": config.rules.http_listen})
    try:
        stop.wait()
    finally:
        service.stop()
    return 0
