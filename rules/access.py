"""What another process (the API) may do with the rules engine's alerts: read them, their history,
notifications and silences, and make the two changes people make — acknowledge an alert, create or
expire a silence. Nothing else of the store: saving alerts, the outbox and the engine's bookkeeping
stay the engine's.

`rules.store.AlertStore` is the implementation (one SQLite file, shared between processes); the API
is typed against `AlertAccess` and imports its value and error types from here, so the store's
internals can change without the API noticing.

    AlertNotFound, SilenceNotFound (StoreError)    the fingerprint or silence id is unknown
    StoreError                                      the change is not possible as asked (says why)
    SilenceError (rules.silences)                   the silence is not valid as asked (says why)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rules.alerts import Alert, AlertState, Transition
from rules.matchers import Matcher
from rules.silences import Silence, SilenceError
from rules.store import AlertDetail, AlertNotFound, FeedEntry, NotificationRecord, SilenceNotFound, StoreError

__all__ = ["AlertAccess", "AlertDetail", "AlertNotFound", "FeedEntry", "NotificationRecord", "SilenceError",
           "SilenceNotFound", "StoreError"]


class AlertAccess(Protocol):
    """Thread-safe; every call reads or writes the shared store at once (no caching across calls)."""

    def data_version(self) -> tuple[int, int]:
        """Changes whenever acks or silences may have changed; cheap to poll."""
        ...

    def all_alerts(self) -> list[Alert]: ...

    def active_alerts(self, state: AlertState | str | None = None, site: str | None = None,
                      severity: str | None = None, rule: str | None = None) -> list[Alert]: ...

    def alert(self, fingerprint: str) -> AlertDetail | None: ...

    def history(self, since: float | None = None, limit: int = 1000) -> list[Transition]: ...

    def notifications(self, group_key: str | None = None, limit: int = 1000) -> list[NotificationRecord]: ...

    def feed(self, after_id: int = 0, limit: int = 100) -> list[FeedEntry]:
        """The local notifications feed, newest first, entries with an id above `after_id`."""
        ...

    def acknowledge(self, fingerprint: str, by: str, comment: str = "") -> Alert:
        """Raises `AlertNotFound`, or `StoreError` if the alert is not pending or firing."""
        ...

    def list_silences(self, include_expired: bool = True) -> list[Silence]: ...

    def silence(self, silence_id: str) -> Silence | None: ...

    def create_silence(self, matchers: Sequence[Matcher], starts_at: float, ends_at: float, created_by: str,
                       comment: str = "") -> Silence:
        """Raises `SilenceError` when the silence is not valid as asked."""
        ...

    def expire_silence(self, silence_id: str, by: str) -> Silence:
        """Raises `SilenceNotFound`."""
        ...
