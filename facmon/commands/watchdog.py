"""`facmon watchdog serve`: the off-site dead man's switch (deadman/), paging through its own
integrations (the rules engine's notifiers and outbox, with `watchdog.receivers`).

    facmon watchdog serve    listen for heartbeats until SIGINT/SIGTERM
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading

from core.clock import Clock, SystemClock
from core.config import FacmonConfig
from core.heartbeat import HeartbeatRefused, verify
from core.settings.base import read_secret
from core.settings.watchdog import WatchdogSettings
from deadman.http import WatchdogServer
from deadman.switch import DeadMansSwitch, Page
from rules.alerts import Alert, AlertState, fingerprint
from rules.channels import Channels, build_notifiers
from rules.notify import Delivery, payload_of
from rules.route import Notification
from rules.store import AlertStore
from rules.workers import DeliveryWorkers

HELP = "the off-site dead man's switch: page when a site's heartbeats stop"
log = logging.getLogger("facmon.watchdog")
PAGE_RULE = "SiteUnreachable"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="watchdog_command", metavar="ACTION", required=True)
    sub.add_parser("serve", help="receive heartbeats and page when they stop (configure watchdog.*)")


def run(args: argparse.Namespace, config: FacmonConfig) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        watchdog = Watchdog(config.watchdog, SystemClock())
    except (ValueError, OSError) as err:
        log.error("cannot start the watchdog", extra={"error": str(err)})
        return 1
    watchdog.start()
    print(f"facmon watchdog listening on {config.watchdog.listen} (POST /heartbeat); timeout "
          f"{config.watchdog.timeout_s:g} s; paging {', '.join(watchdog.targets) or 'the log only'}", flush=True)
    try:
        stop.wait()
    finally:
        watchdog.stop()
    return 0


def page_payload(page: Page, external_url: str) -> dict:
    labels = {"alertname": PAGE_RULE, "site": page.site, "severity": "critical"}
    state = AlertState.FIRING if page.status == "firing" else AlertState.RESOLVED
    alert = Alert(fingerprint(labels), PAGE_RULE, labels, {"summary": page.text}, state, page.dark_since,
                  page.dark_since, page.at if state is AlertState.RESOLVED else None, page.at)
    return payload_of(Notification("watchdog", f"watchdog/{page.site}", {"site": page.site}, page.status, (alert,),
                                   (), "new" if page.status == "firing" else "resolved"), external_url)


class Watchdog:
    """The switch, its HTTP server, a check every `check_interval_s`, and paging via the outbox."""

    def __init__(self, settings: WatchdogSettings, clock: Clock, check_interval_s: float = 1.0) -> None:
        secret = read_secret(settings.secret, settings.secret_file, "watchdog.secret")
        if not secret:
            raise ValueError("watchdog.secret_file is needed: the secret the sites sign heartbeats with "
                             "(rules.heartbeat.secret_file on each site)")
        self._secret = secret.encode()
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self.switch = DeadMansSwitch(settings.timeout_s, clock.now(), settings.sites)
        self._store = AlertStore(settings.store_path, clock)
        channels: Channels = build_notifiers(settings.receivers, self._store, clock)
        self.targets = [t for targets in channels.by_receiver.values() for t in targets]
        self._workers = DeliveryWorkers(Delivery(self._store, channels.targets), clock)
        host, port = settings.listen.rsplit(":", 1)
        self.server = WatchdogServer(host, int(port), self.on_heartbeat, self._sites)
        self._interval_s = check_interval_s
        self._stopping = threading.Event()
        self._checker = threading.Thread(target=self._check_loop, name="watchdog-check", daemon=True)
        self.pages: list[Page] = []

    def start(self) -> None:
        self._workers.start()
        self.server.start()
        self._checker.start()

    def stop(self) -> None:
        self._stopping.set()
        self.server.stop()
        self._checker.join(timeout=10)
        self._workers.stop()
        self._store.close()

    def on_heartbeat(self, body: bytes, signed: str | None) -> tuple[int, str]:
        with self._lock:
            now = self._clock.now()
            try:
                site = _site_of(body)
                beat = verify(self._secret, body, signed, now, self.switch.last_sent_at(site),
                              self._settings.max_skew_s)
            except HeartbeatRefused as err:
                log.warning("heartbeat refused", extra={"reason": str(err), "status": err.status})
                return err.status, str(err)
            self._page(self.switch.heartbeat(beat, now))
        return 200, "ok"

    def _sites(self) -> dict[str, dict[str, object]]:
        with self._lock:
            return self.switch.sites()

    def _check_loop(self) -> None:
        while not self._stopping.wait(self._interval_s):
            with self._lock:
                self._page(self.switch.check(self._clock.now()))

    def _page(self, pages: list[Page]) -> None:
        for page in pages:
            self.pages.append(page)
            log.warning("watchdog page", extra={"site": page.site, "status": page.status, "text": page.text})
            print(f"PAGE [{page.status}] {page.text}", flush=True)
            payload = page_payload(page, self._settings.external_url)
            for target in self.targets:
                self._store.enqueue_notification(f"watchdog/{page.site}", target, [], payload, page.at)
        if pages:
            self._workers.wake()


def _site_of(body: bytes) -> str:
    """The site a heartbeat claims, to look up its replay counter before the signature is checked
    (verify() checks the signature first and refuses anything unsigned)."""
    try:
        return str(json.loads(body).get("site", ""))
    except (ValueError, AttributeError):
        return ""
