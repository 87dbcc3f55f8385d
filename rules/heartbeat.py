"""The rules engine's side of the off-site dead man's switch: every `interval_s`, while the engine
is ready (evaluating and subscribed to the broker), POST a signed heartbeat (core.heartbeat) with
what it knows (the firing alerts in a line) to `facmon watchdog serve`. A failed POST is logged
and simply not retried: the next heartbeat is due soon, and a stale one is worth nothing."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from core.clock import Clock
from core.heartbeat import SIGNATURE_HEADER, Heartbeat, signature
from rules.alerts import Alert
from rules.model import SEVERITIES
from rules.notifiers.http import send_request
from rules.notify import NotifyError

log = logging.getLogger("facmon.rules.heartbeat")
SUMMARY_MAX = 300


def site_summary(alerts: Iterable[Alert], skip: str = "Watchdog") -> str:
    """The firing alerts in one line, most severe first: `GridOutage inv-main; BatteryLow inv-main (18)`."""
    order = {severity: rank for rank, severity in enumerate(SEVERITIES)}
    items = sorted((a for a in alerts if a.rule != skip), key=lambda a: (order.get(a.severity, len(order)), a.rule))
    parts = []
    for alert in items:
        text = f"{alert.labels.get('alertname', alert.rule)} {alert.labels.get('device', '')}".strip()
        if alert.value is not None:
            text += f" ({alert.value:g})"
        parts.append(text)
    line = "; ".join(parts)
    return line if len(line) <= SUMMARY_MAX else line[:SUMMARY_MAX - 1] + "…"


class HeartbeatSender:
    def __init__(self, url: str, secret: str, site: str, timezone: str, interval_s: float, clock: Clock,
                 ready: Callable[[], bool], firing: Callable[[], list[Alert]], timeout_s: float = 10.0) -> None:
        self._url = url
        self._secret = secret.encode()
        self._site, self._timezone = site, timezone
        self._interval_s = interval_s
        self._clock = clock
        self._ready = ready
        self._firing = firing
        self._timeout_s = timeout_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rules-heartbeat", daemon=True)
        self.last_sent_at: float | None = None
        self.failures = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=self._timeout_s + 5)

    def beat(self) -> bool:
        """Send one heartbeat if the engine is ready; True if the watchdog took it."""
        if not self._ready():
            return False
        firing = self._firing()
        now = self._clock.now()
        body = Heartbeat(self._site, now, self._timezone, site_summary(firing), len(firing)).body()
        try:
            send_request("POST", self._url, body, {"Content-Type": "application/json",
                                                   SIGNATURE_HEADER: signature(self._secret, body)}, self._timeout_s)
        except NotifyError as err:
            self.failures += 1
            log.warning("heartbeat not taken", extra={"url": self._url, "error": str(err)})
            return False
        self.last_sent_at = now
        return True

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self.beat()
            self._stopping.wait(self._interval_s)
