"""`facmon devices forget SITE/KIND/DEVICE`: a device that is gone (replaced, removed, a typo that
once published) leaves the stack: its retained status cleared, the API's latest state of it
forgotten, its open alerts resolved with the reason; its stored readings and alert history stay
(facmon/retire.py)."""

from __future__ import annotations

import argparse
import sys

from core.clock import Clock, SystemClock
from core.config import FacmonConfig
from core.contract import KINDS, TOPIC_PREFIX, Channel, DeviceKey, TopicError, parse_topic
from facmon.retire import add_retire_action, run_retire

HELP = "forget a device that is gone: clear its retained status, latest state and open alerts (history stays)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_retire_action(parser, dest="devices_action", action="forget", what="device", target="device",
                      metavar="SITE/KIND/DEVICE",
                      target_help=f"e.g. park/inverter/inv-9 (kinds: {', '.join(k.value for k in KINDS)})",
                      default_reason="device forgotten")


def parse_device(text: str) -> DeviceKey:
    """`site/kind/device` → its key, checked as the device's status topic is (core.contract.parse_topic).
    Raises ValueError naming what is wrong."""
    if text.count("/") != 2:
        raise ValueError(f"{text!r}: give the device as SITE/KIND/DEVICE, e.g. park/inverter/inv-9")
    try:
        return parse_topic(f"{TOPIC_PREFIX}/{text}/{Channel.STATUS.value}").device
    except TopicError as err:
        raise ValueError(f"{text!r}: {err}") from None


def run(args: argparse.Namespace, config: FacmonConfig, clock: Clock | None = None) -> int:
    try:
        device = parse_device(args.device)
    except ValueError as err:
        print(f"facmon devices forget: {err}", file=sys.stderr)
        return 2
    return run_retire(config, clock or SystemClock(), "devices forget", device.site, device,
                      f"{args.reason} (facmon devices forget)")
