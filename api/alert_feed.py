"""Alert transitions into the live event stream, and the rules store's figures for /metrics.

The rules engine writes transitions to the shared SQLite store from its own process; `AlertFeed.poll`
(called about once a second) publishes the ones it has not published yet as `alert` events.
"""

from __future__ import annotations

from api.events import EventHub, LiveEvent
from api.metrics import family
from rules.access import AlertAccess
from rules.alerts import AlertState


class AlertFeed:
    def __init__(self, store: AlertAccess, hub: EventHub, start_at: float) -> None:
        self._store = store
        self._hub = hub
        self._cursor = start_at
        self._published_at_cursor: set[tuple[str, str, str]] = set()

    def poll(self) -> int:
        """Publish transitions newer than the last poll; how many were published."""
        # No data_version shortcut: it ignores writes made through this process's own connection.
        count = 0
        for t in self._store.history(since=self._cursor, limit=1000):
            ident = (t.fingerprint, t.from_state.value, t.to_state.value)
            if t.at == self._cursor and ident in self._published_at_cursor:
                continue
            if t.at > self._cursor:
                self._cursor, self._published_at_cursor = t.at, set()
            self._published_at_cursor.add(ident)
            self._hub.publish(LiveEvent("alert", {
                "event": "transition", "fingerprint": t.fingerprint, "rule": t.rule, "at": t.at,
                "from_state": t.from_state.value, "to_state": t.to_state.value, "labels": dict(t.labels)}))
            count += 1
        return count


def alert_metrics(store: AlertAccess) -> str:
    """Prometheus text: alerts by state, notifications by status (sent, failed, pending)."""
    by_state = {s.value: 0 for s in AlertState}
    for alert in store.all_alerts():
        by_state[alert.state.value] += 1
    by_status = {"pending": 0, "sent": 0, "failed": 0}
    for note in store.notifications(limit=1_000_000):
        by_status[note.status] = by_status.get(note.status, 0) + 1
    return (family("facmon_alerts", "gauge", "Alerts in the rules store by state",
                   [({"state": s}, n) for s, n in by_state.items()])
            + family("facmon_notifications", "gauge", "Notifications in the rules store's log by status",
                     [({"status": s}, n) for s, n in by_status.items()]))
