"""`facmon config`: validate the configuration and print it as it will be used (secrets hidden)."""

from __future__ import annotations

import argparse

import yaml

from core.config import FacmonConfig

HELP = "check the configuration (file + FACMON_* overrides) and print the result, secrets hidden"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="print nothing; only the exit status says if it is valid")


def run(args: argparse.Namespace, config: FacmonConfig) -> int:
    if not args.quiet:
        print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), end="")
    return 0
