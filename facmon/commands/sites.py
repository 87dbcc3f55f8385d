"""`facmon sites retire SITE`: a site that is gone (a test site, a closed facility) leaves the stack:
its retained statuses cleared, the API's latest state of its devices forgotten, its open alerts
resolved with the reason; its stored readings and alert history stay (facmon/retire.py)."""

from __future__ import annotations

import argparse

from core.clock import Clock, SystemClock
from core.config import FacmonConfig
from facmon.live_stack import find_live_stack
from facmon.retire import run_retire

HELP = "retire a site that is gone: clear its retained statuses, latest state and open alerts (history stays)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sites_action", required=True, metavar="ACTION")
    retire = sub.add_parser("retire", help="clear a gone site's retained statuses and end its open alerts",
                            description="Clear the site's retained statuses on the broker (the API then forgets "
                                        "its devices) and resolve its open alerts with the reason, kept in their "
                                        "history. Readings stored in InfluxDB stay. A site still in sites.files "
                                        "is refused: remove it from there first.")
    retire.add_argument("site", help="the site id, as in facmon/v1/<site>/... (e.g. test-park)")
    retire.add_argument("--reason", default="site retired", help="why, kept in the alerts' history")


def run(args: argparse.Namespace, config: FacmonConfig, clock: Clock | None = None) -> int:
    return run_retire(config, clock or SystemClock(), "sites retire", args.site, None,
                      f"{args.reason} (facmon sites retire)", find_live_stack)
