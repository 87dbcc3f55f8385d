"""Alert transitions → InfluxDB measurement `facmon_alerts` (Grafana annotations), off the
evaluation path.

Schema (what dashboards/ reads; see docs/influxdb.md):

    facmon_alerts,alertname=GridOutage,severity=critical,site=park,state=firing
        text="GridOutage firing — Grid down at park (inv-main)" <ns>          (one line)

    tags    alertname, severity, site, state (pending | firing | resolved)   (an empty value is left out:
            engine-wide alerts such as MonitoringDegraded have no site)
    field   text (string): "<alertname> <state> — <summary annotation>"

A pending alert whose condition ends before it fires is written as `resolved` ("… resolved (never
fired)"), so every activation ends in a resolved point. The Watchdog heartbeat is not written.
Timestamps are the transition's time in microseconds, plus the transition's id modulo 1000 in the
nanosecond digits: two devices' alerts of one rule changing in the same tick share every tag, and
would otherwise overwrite each other's point. Rewriting a transition writes the same point again.

How it is written: the engine records every transition in the alert store (SQLite) anyway; an
`AnnotationWriter` thread copies them from there in id order, keeping its cursor (the last id
InfluxDB confirmed) in the store's meta table. So evaluation never waits for InfluxDB, an outage
loses nothing (the writer retries with backoff, and a restart resumes from the cursor), and the
backlog is bounded: past `max_backlog` transitions behind, the oldest are skipped and counted
(`skipped`, with a warning). Lines InfluxDB refuses (400) are isolated one by one, counted
(`refused`) and logged.

    writer = AnnotationWriter(store, line_writer.write)
    writer.start(); engine(on_transitions=writer.wake); ...; writer.stop()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from core.influx_write import InfluxWriteError
from core.line_protocol import escape_string_field, escape_tag
from rules.alerts import AlertState, Transition
from rules.store import AlertStore

log = logging.getLogger("facmon.rules.annotations")
ALERTS_MEASUREMENT = "facmon_alerts"
CURSOR_KEY = "facmon_alerts_cursor"
NOT_WRITTEN = frozenset({"Watchdog"})


def transition_line(transition_id: int, t: Transition) -> str | None:
    """The `facmon_alerts` point of one stored transition; None for alerts that are not annotated."""
    alertname = t.labels.get("alertname", t.rule)
    if alertname in NOT_WRITTEN:
        return None
    never_fired = t.to_state is AlertState.INACTIVE
    state = AlertState.RESOLVED.value if never_fired else t.to_state.value
    tags = {"alertname": alertname, "severity": t.labels.get("severity", ""), "site": t.labels.get("site", ""),
            "state": state}
    tag_text = ",".join(f"{name}={escape_tag(value)}" for name, value in tags.items() if value)
    text = f"{alertname} {state}" + (" (never fired)" if never_fired else "") + (
        f" — {t.summary[:500]}" if t.summary else "")
    timestamp_ns = round(t.at * 1e6) * 1000 + transition_id % 1000
    return f"{ALERTS_MEASUREMENT},{tag_text} text={escape_string_field(text)} {timestamp_ns}"


@dataclass
class AnnotationStats:
    written: int = 0
    """Transitions InfluxDB confirmed."""
    refused: int = 0
    """Lines InfluxDB refused (400); skipped after isolation."""
    skipped: int = 0
    """Transitions dropped because the backlog passed its bound during a long outage."""
    failures: int = 0
    """Write attempts that failed and will be retried."""


class AnnotationWriter:
    """Copies transitions from `store` to InfluxDB through `write(lines)` (a `LineWriter.write`,
    which returns only when InfluxDB confirmed every line, else raises `InfluxWriteError`).

    Lifecycle: `start()` once (a daemon thread), `wake()` from any thread after new transitions,
    `stop()` once (one last pass, bounded by the write timeout). `write_due()` does one pass on the
    caller's thread (the thread's body; tests call it directly)."""

    def __init__(self, store: AlertStore, write: Callable[[list[str]], None], *, batch: int = 500,
                 retry_min_s: float = 1.0, retry_max_s: float = 60.0, max_backlog: int = 100_000,
                 poll_s: float = 1.0) -> None:
        self._store = store
        self._write = write
        self._batch = batch
        self._retry_min_s, self._retry_max_s = retry_min_s, retry_max_s
        self._max_backlog = max_backlog
        self._poll_s = poll_s
        self.stats = AnnotationStats()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rules-annotations", daemon=True)

    @property
    def cursor(self) -> int:
        return int(self._store.meta(CURSOR_KEY) or 0)

    def backlog(self) -> int:
        return max(self._store.last_transition_id() - self.cursor, 0)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=timeout_s)

    def write_due(self) -> int:
        """Write everything after the cursor, in batches. Returns how many transitions were written.
        Raises `InfluxWriteError` when InfluxDB is unavailable (nothing after the cursor is lost)."""
        cursor = self._skip_past_bound(self.cursor)
        written = 0
        while True:
            rows = self._store.transitions_after(cursor, self._batch)
            if not rows:
                return written
            lines = [(tid, line) for tid, t in rows if (line := transition_line(tid, t)) is not None]
            self._write_batch([line for _, line in lines])
            written += len(lines)
            cursor = rows[-1][0]
            self._store.set_meta(CURSOR_KEY, str(cursor))

    def _skip_past_bound(self, cursor: int) -> int:
        last = self._store.last_transition_id()
        if last - cursor <= self._max_backlog:
            return cursor
        skipped = last - self._max_backlog - cursor
        self.stats.skipped += skipped
        log.warning("facmon_alerts backlog past its bound; oldest transitions skipped (they stay in the store)",
                    extra={"skipped": skipped, "max_backlog": self._max_backlog})
        cursor = last - self._max_backlog
        self._store.set_meta(CURSOR_KEY, str(cursor))
        return cursor

    def _write_batch(self, lines: list[str]) -> None:
        if not lines:
            return
        try:
            self._write(lines)
        except InfluxWriteError as err:
            if err.retryable:
                raise
            # A refused batch (400/413): isolate the bad lines so the good ones still land.
            for line in lines:
                try:
                    self._write([line])
                except InfluxWriteError as one:
                    if one.retryable:
                        raise
                    self.stats.refused += 1
                    log.warning("InfluxDB refused a facmon_alerts line", extra={"error": str(one)[:300],
                                                                                 "line": line[:300]})
                    continue
                self.stats.written += 1
            return
        self.stats.written += len(lines)

    def _run(self) -> None:
        delay = self._retry_min_s
        while True:
            try:
                self.write_due()
                delay = self._retry_min_s
                wait = self._poll_s
            except InfluxWriteError as err:
                self.stats.failures += 1
                log.warning("cannot write alert transitions to InfluxDB; retrying",
                            extra={"error": str(err)[:300], "retry_in_s": delay, "backlog": self.backlog()})
                wait, delay = delay, min(delay * 2, self._retry_max_s)
            if self._stopping.is_set():
                return
            self._wake.wait(timeout=wait)
            self._wake.clear()
