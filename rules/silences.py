"""Silences: label matchers plus a time window, created by people (or a maintenance schedule).

A silence mutes notifications of every alert whose labels match all its matchers while
`starts_at <= now < ends_at`; the alert itself keeps its state (and is listed as silenced).
Expiring a silence sets `ends_at` to the expiry time, so history shows when it really ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rules.matchers import Matcher, matches_all


class SilenceError(ValueError):
    """A silence that cannot be created as asked (no matchers, ends before it starts, ...)."""


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float
    expired_by: str | None = None

    def __post_init__(self) -> None:
        if not self.matchers:
            raise SilenceError("a silence needs at least one matcher (e.g. site=park-1); "
                               "it would otherwise mute every alert")
        if self.ends_at <= self.starts_at:
            raise SilenceError(f"silence ends ({self.ends_at}) at or before it starts ({self.starts_at})")
        if not self.created_by.strip():
            raise SilenceError("a silence needs its author (created_by)")

    def is_active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def state(self, now: float) -> str:
        """`pending` (starts later), `active` or `expired`, as Alertmanager names them."""
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        return self.is_active(now) and matches_all(self.matchers, labels)


class SilenceMuter:
    """The silences in force, as a muter: `mutes(labels, now)` returns the id of a silence that
    mutes these labels, or None."""

    def __init__(self, silences: Iterable[Silence]) -> None:
        self._silences = tuple(silences)

    def mutes(self, labels: Mapping[str, str], now: float) -> str | None:
        for silence in self._silences:
            if silence.mutes(labels, now):
                return silence.id
        return None
