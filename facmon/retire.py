"""Retiring a site, or forgetting one device, that is gone (`facmon sites retire`, `facmon devices
forget`): what the stack still says about it is cleared, its history is kept.

  - its retained statuses on the broker are cleared (found by subscribing to
    `facmon/v1/<site>/+/+/status` for a bounded time); the API, which reads the cleared status as
    `core.decode.StatusCleared`, forgets the device's latest state;
  - its open alerts in the rules store end with the reason in their history (rules/retire.py), and a
    running rules engine stops judging it until it announces itself `online` again;
  - its readings in InfluxDB, its alerts' history and notifications stay.

A site or device still described in `sites.files` is refused: the stack would recreate it from the
file (the rules engine seeds the devices it describes), so it is removed from there first.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from core.clock import Clock
from core.config import FacmonConfig
from core.contract import ID_RE, DeviceKey
from core.site import SiteFileError, iter_devices
from facmon.live_stack import LiveStack, find_live_stack
from facmon.retained_statuses import StatusesUnreachable, read_statuses, write_statuses
from rules.alerts import Retirement
from rules.retire import retire_alerts
from rules.store import AlertStore

RETIRED_BY = "facmon-cli"


class RetireRefused(ValueError):
    """The site or device cannot be retired as asked; the message says what to fix."""


@dataclass(frozen=True)
class RetireReport:
    what: str
    """"site testpark" or "inverter inv-9 of site park"."""
    statuses_cleared: tuple[DeviceKey, ...]
    alerts_open: int
    """Open alerts of it before the statuses were cleared."""
    alerts_ended: int
    """Of those, ended here; a running rules engine ends the others itself on seeing the cleared statuses."""
    store: Path | None
    """The rules store the alerts were ended in; None when there is none here."""


def check_site_id(site: str) -> None:
    if not ID_RE.match(site):
        raise RetireRefused(f"{site!r} is not a site id: lower case letters, digits, '_' and '-', starting with a "
                            "letter or digit, at most 64 characters (as in facmon/v1/<site>/...)")


def refuse_described(stack: LiveStack, site: str, device: DeviceKey | None) -> None:
    """Raise RetireRefused if `sites.files` (or `facmon up`'s demo park) still describes the site or device."""
    live = stack.live_sites.get(site)
    if live is None:
        return
    if device is None:
        raise RetireRefused(f"site {site!r} is described by {live.path} ({stack.live_sites_from}): remove that file "
                            "from sites.files and restart facmon first (the stack would bring the site back from "
                            "it), then retire it")
    described = {(spec.kind, spec.id) for spec in iter_devices(live.site)}
    if (device.kind, device.device) in described:
        raise RetireRefused(f"{device.kind.value} {device.device!r} is described in {live.path} "
                            f"({stack.live_sites_from}): "
                            "remove it from that file and restart facmon first (the stack would bring it back from "
                            "it), then forget it")


def retire(config: FacmonConfig, stack: LiveStack, clock: Clock, site: str, device: DeviceKey | None,
           reason: str) -> RetireReport:
    """Clear the retained statuses and end the open alerts of `site` (all of it when `device` is None).
    Raises RetireRefused (unknown site or device, still described), or
    facmon.retained_statuses.StatusesUnreachable."""
    check_site_id(site)
    refuse_described(stack, site, device)
    # A site's retirement reads every site's statuses: an unknown id is then answered with the ids there are.
    held = read_statuses(stack.mqtt, clock, "+" if device is None else site)
    statuses = [key for key in held if key.site == site and (device is None or key == device)]
    store_path = config.rules.store_path
    store = AlertStore(store_path, clock) if store_path.exists() else None
    try:
        retirement = Retirement(site, device.device if device else None, clock.now(), RETIRED_BY, reason)
        open_alerts = [] if store is None else [a for a in store.active_alerts(site=site)
                                                if retirement.covers(a.labels)]
        what = f"site {site!r}" if device is None else f"{device.kind.value} {device.device!r} of site {site!r}"
        if not statuses and not open_alerts:
            raise RetireRefused(_unknown(what, stack, held, store_path if store else None, device))
        write_statuses(stack.mqtt, clock, {key: b"" for key in statuses})
        ended = retire_alerts(store, retirement) if store is not None else []
        return RetireReport(what, tuple(statuses), len(open_alerts), len(ended), store_path if store else None)
    finally:
        if store is not None:
            store.close()


def _unknown(what: str, stack: LiveStack, held: dict[DeviceKey, bytes], store: Path | None,
             device: DeviceKey | None) -> str:
    where = (f"no retained status at {stack.broker_url} and no open alert in "
             + (f"the rules store {store}" if store else "a rules store (rules.store_path does not exist here)"))
    if device is not None:
        there = ", ".join(sorted(f"{k.site}/{k.kind.value}/{k.device}" for k in held)) or "none"
        return f"unknown {what}: {where}. Devices of that site with a retained status there: {there}"
    there = ", ".join(sorted({k.site for k in held})) or "none"
    return f"unknown {what}: {where}. Sites with retained statuses there: {there}"


def run_retire(config: FacmonConfig, clock: Clock, command: str, site: str, device: DeviceKey | None,
               reason: str) -> int:
    """The commands' shared body: retire, print what was done (stdout) or what to fix (stderr); exit code."""
    try:
        stack = find_live_stack(config)
        report = retire(config, stack, clock, site, device, reason)
    except (RetireRefused, SiteFileError) as err:
        print(f"facmon {command}: {err}", file=sys.stderr)
        return 2
    except StatusesUnreachable as err:
        print(f"facmon {command}: {err}", file=sys.stderr)
        return 3
    print(format_report(report, stack, config))
    return 0


def format_report(report: RetireReport, stack: LiveStack, config: FacmonConfig) -> str:
    lines = [f"{report.what}: done ({stack.broker_url}, {stack.broker_origin})",
             f"  retained statuses cleared: {len(report.statuses_cleared)}"
             + "".join(f"\n    {key}" for key in report.statuses_cleared)]
    if report.store is None:
        lines.append(f"  open alerts ended: none; there is no rules store at {config.rules.store_path} "
                     "(rules.store_path, under local.var_dir by default): point FACMON_LOCAL__VAR_DIR or "
                     "FACMON_RULES__STORE_PATH at the stack's")
    else:
        by_engine = report.alerts_open - report.alerts_ended
        total = max(report.alerts_open, report.alerts_ended)
        engine_part = (f"; {by_engine} of them by the running rules engine, on seeing the cleared statuses"
                       if by_engine > 0 else "")
        lines.append(f"  open alerts ended: {total} (resolved with the reason, kept in the history of "
                     f"{report.store}){engine_part}")
    lines.append(f"  kept: its readings in InfluxDB (database {config.influxdb.database}) and its alert history")
    return "\n".join(lines)


def add_retire_action(parser: argparse.ArgumentParser, *, dest: str, action: str, what: str, target: str,
                      metavar: str, target_help: str, default_reason: str) -> None:
    """`facmon <command> <action> TARGET [--reason]` for `facmon sites retire` and `facmon devices forget`
    (`what`: "site", "device")."""
    sub = parser.add_subparsers(dest=dest, required=True, metavar="ACTION")
    command = sub.add_parser(action, help=f"clear a gone {what}'s retained statuses and end its open alerts",
                             description=f"Clear the {what}'s retained statuses on the broker (the API then "
                                         f"forgets it) and resolve its open alerts with the reason, kept in their "
                                         f"history. Readings stored in InfluxDB stay. A {what} still described in "
                                         f"a site file of sites.files is refused: remove it from there first.")
    command.add_argument(target, metavar=metavar, help=target_help)
    command.add_argument("--reason", default=default_reason, help="why, kept in the alerts' history")
