"""`facmon` — command-line entry point. Parses arguments, loads the one configuration, hands off."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from core.config import ConfigError, load_config, settle_state_paths
from core.logs import configure_logging

COMMANDS = ("up", "collect", "bridge", "agent", "simulate", "probe", "rules", "notify", "watchdog", "api", "keys",
            "dashboards", "acl", "config", "report", "sites", "devices")
DEFAULT_CONFIG = Path("facmon.yaml")
_ROOT = Path(__file__).resolve().parents[1]
_IN_CHECKOUT = all((_ROOT / name).is_file() for name in ("Makefile", "pyproject.toml"))
SOURCE_CHECKOUT: Path | None = _ROOT if _IN_CHECKOUT else None
"""The source checkout facmon runs from (an editable install, as `make` sets up), else None."""


def _requested_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line, if any (skipping the value of -c/--config)."""
    skip_value = False
    for arg in argv:
        if skip_value:
            skip_value = False
        elif arg in ("-c", "--config"):
            skip_value = True
        elif not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def _command_modules(names: Sequence[str] = COMMANDS) -> dict[str, object]:
    """Import the command modules. Running one command imports only its own: each pulls in its
    stage (the API its web stack, the rules engine numpy...), and the collector should not carry
    every other stage's libraries in its memory."""
    modules = {}
    for name in names:
        try:
            modules[name] = importlib.import_module(f"facmon.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"facmon.commands.{name}":
                raise
    return modules


def build_parser(modules: dict[str, object]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facmon",
        description="Facility monitoring: MQTT readings from inverters, uplinks and occupancy sensors "
                    "into InfluxDB, with outage alerts, an HTTP API and Grafana dashboards.",
        epilog="Configuration: --config FILE (default ./facmon.yaml if present), overridden by FACMON_* "
               "environment variables, e.g. FACMON_MQTT__HOST=broker.lan. See docs/configuration.md.",
    )
    parser.add_argument("-c", "--config", type=Path, default=None,
                        help="YAML config file (default: $FACMON_CONFIG, else ./facmon.yaml if it exists)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in modules.items():
        help_text = module.HELP  # type: ignore[attr-defined]
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command_parser)  # type: ignore[attr-defined]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    requested = _requested_command(argv)
    modules = _command_modules((requested,) if requested else COMMANDS)
    args = build_parser(modules).parse_args(argv)
    config_path = args.config or (Path(os.environ["FACMON_CONFIG"]) if os.environ.get("FACMON_CONFIG") else None)
    if config_path is None and DEFAULT_CONFIG.exists():
        config_path = DEFAULT_CONFIG
    try:
        config = load_config(config_path, os.environ)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    # Without a configuration file, a checkout's demo: its keys, alert state and spool are in the
    # checkout's var/ (where `make up` keeps them), whichever directory a command is run from.
    config = settle_state_paths(config, SOURCE_CHECKOUT if config_path is None else None)
    configure_logging(config.log.level, config.log.format)
    try:
        return int(modules[args.command].run(args, config) or 0)  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        return 130
