"""The local feed: every notification of a receiver with `feed: true` lands in the rules store's
`feed` table, which the status page, `GET /api/v1/notifications` and `facmon up`'s terminal show.
It needs nothing outside the machine, so a notification always reaches somewhere a person looks."""

from __future__ import annotations

from collections.abc import Mapping

from core.clock import Clock
from rules.notify import Zones, highest_severity, notification_id, render_text
from rules.store import AlertStore, FeedEntry


class FeedNotifier:
    def __init__(self, name: str, store: AlertStore, clock: Clock, language: str = "en",
                 zones: Zones | None = None) -> None:
        self.name = name
        self.receiver = name.split(":", 1)[0]
        self._store = store
        self._clock = clock
        self.language = language
        self.zones = zones or {}

    def send(self, payload: Mapping) -> None:
        subject, body = render_text(payload, self.language, self.zones)
        site = payload.get("groupLabels", {}).get("site") or payload.get("commonLabels", {}).get("site", "")
        self._store.add_feed_entry(FeedEntry(0, self._clock.now(), self.receiver, notification_id(payload),
                                             str(payload.get("status", "")), highest_severity(payload) or "none",
                                             site, subject, body))
