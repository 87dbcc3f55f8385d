"""`facmon sites retire SITE`: a site that is gone (a test site, a closed facility) leaves the stack:
its retained statuses cleared, the API's latest state of its devices forgotten, its open alerts
resolved with the reason; its stored readings and alert history stay (facmon/retire.py)."""

from __future__ import annotations

import argparse

from core.clock import Clock, SystemClock
from core.config import FacmonConfig
from facmon.retire import add_retire_action, run_retire

HELP = "retire a site that is gone: clear its retained statuses, latest state and open alerts (history stays)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_retire_action(parser, dest="sites_action", action="retire", what="site", target="site", metavar="SITE",
                      target_help="the site id, as in facmon/v1/<site>/... (e.g. test-park)",
                      default_reason="site retired")


def run(args: argparse.Namespace, config: FacmonConfig, clock: Clock | None = None) -> int:
    return run_retire(config, clock or SystemClock(), "sites retire", args.site, None,
                      f"{args.reason} (facmon sites retire)")
