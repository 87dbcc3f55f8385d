"""`facmon notify`: try a receiver's integrations, and the feed lines `facmon up` prints.

    facmon notify test [--receiver NAME]   send a test message through every integration of the
                                           receiver (default: every receiver); one line each:
                                           delivered, or the exact reason (bad token, unknown chat,
                                           modem absent, DNS failure, timeout). Exit 1 if any failed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from core.clock import Clock, SystemClock
from core.config import FacmonConfig
from core.known_devices import load_sites
from rules.alerts import Alert, AlertState, fingerprint
from rules.channels import build_notifiers
from rules.notify import Notifier, NotifyError, payload_of
from rules.route import Notification
from rules.store import AlertStore, FeedEntry

HELP = "notifications: send a test message through a receiver's integrations"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="notify_command", metavar="ACTION", required=True)
    test = sub.add_parser("test", help="send a test message through every integration of a receiver")
    test.add_argument("--receiver", metavar="NAME", help="the receiver (rules.receivers[].name); default: all")


def run(args: argparse.Namespace, config: FacmonConfig) -> int:
    return try_receivers(config, args.receiver, SystemClock(), sys.stdout)


def sample_payload(receiver: str, site: str, now: float, external_url: str) -> dict:
    """A firing notification about a `NotifyTest` alert, shaped exactly like a real one."""
    labels = {"alertname": "NotifyTest", "site": site, "severity": "info"}
    alert = Alert(fingerprint(labels), "NotifyTest", labels,
                  {"summary": "facmon test message: this integration works",
                   "summary_ur": "facmon آزمائشی پیغام: یہ راستہ کام کرتا ہے"},
                  AlertState.FIRING, now, now, None, now)
    notification = Notification(receiver, f"{receiver}/test", {"site": site}, "firing", (alert,), (), "test")
    payload = payload_of(notification, external_url)
    payload["facmon"]["notification_id"] = f"fmn-test-{int(now)}"
    return payload


def try_receivers(config: FacmonConfig, receiver: str | None, clock: Clock, out: TextIO) -> int:
    names = [r.name for r in config.rules.receivers]
    if receiver is not None and receiver not in names:
        print(f"no receiver named {receiver!r}; rules.receivers has: {', '.join(names)}", file=out)
        return 2
    try:
        sites = load_sites(config.sites.files)
        store = AlertStore(config.rules.store_path, clock)
        channels = build_notifiers([r for r in config.rules.receivers if receiver in (None, r.name)], store, clock,
                                   {site_id: site.tz for site_id, site in sites.items()})
    except (ValueError, OSError) as err:
        print(f"cannot build the integrations: {err}", file=out)
        return 2
    site = next(iter(sites), "-")
    failed = 0
    for name in (receiver,) if receiver else names:
        targets = [t for t in channels.targets if t.split(":", 1)[0] == name]
        if not targets:
            print(f"{name}: no integrations (add webhooks, telegram, ntfy, sms_gateway or gsm to it)", file=out)
            failed += 1
        payload = sample_payload(name, site, clock.now(), config.rules.external_url)
        failed += _send_each(channels.targets, targets, payload, out)
    store.close()
    return 1 if failed else 0


def _send_each(notifiers: Mapping[str, Notifier], targets: Sequence[str], payload: dict, out: TextIO) -> int:
    failed = 0
    for target in targets:
        try:
            notifiers[target].send(payload)
        except NotifyError as err:
            failed += 1
            print(f"✗ {target}: {err}", file=out)
            continue
        print(f"✓ {target}: delivered", file=out)
    return failed


def feed_line(entry: FeedEntry) -> str:
    """One terminal line for a feed entry (what `facmon up` prints)."""
    first = entry.body.splitlines()[1] if len(entry.body.splitlines()) > 1 else entry.body
    return f"NOTIFY [{entry.severity}] {entry.title} | {first.strip()} | receiver {entry.receiver}"


def print_new_feed(store: AlertStore, after_id: int, out: TextIO) -> int:
    """Print feed entries newer than `after_id`, oldest first; returns the newest id printed."""
    for entry in reversed(store.feed(after_id, limit=100)):
        print(feed_line(entry), file=out, flush=True)
        after_id = max(after_id, entry.id)
    return after_id
