"""DeadMansSwitch: which sites are beating, and the pages to send when one stops or returns. Pure:
fed heartbeats and times, returns `Page` values; knows no HTTP, no notifier, no wall clock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.heartbeat import Heartbeat


@dataclass(frozen=True, slots=True)
class Page:
    site: str
    status: str
    """`firing` (the site went quiet) or `resolved` (it is back)."""
    text: str
    at: float
    dark_since: float


@dataclass
class _Site:
    last_heard_at: float
    last_sent_at: float | None = None
    timezone: str = "UTC"
    summary: str = ""
    dark_since: float | None = None
    """When the last heartbeat before the silence came; None while the site beats."""


def _clock_text(epoch_s: float, timezone: str) -> str:
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = datetime.fromtimestamp(epoch_s, UTC).astimezone(zone)
    return f"{local:%H:%M} {local.tzname()}"


def duration_text(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


class DeadMansSwitch:
    """`timeout_s` of silence makes a site dark. Sites in `expected` count from `started_at` as if
    they had just beaten, so a site that never beats is paged for too."""

    def __init__(self, timeout_s: float, started_at: float, expected: Iterable[str] = ()) -> None:
        self._timeout_s = timeout_s
        self._sites = {site: _Site(started_at) for site in expected}

    def last_sent_at(self, site: str) -> float | None:
        known = self._sites.get(site)
        return known.last_sent_at if known else None

    def heartbeat(self, beat: Heartbeat, now: float) -> list[Page]:
        """Record a verified heartbeat; returns the recovery page if the site was dark."""
        site = self._sites.setdefault(beat.site, _Site(now))
        pages = []
        if site.dark_since is not None:
            dark_s = now - site.dark_since
            pages.append(Page(beat.site, "resolved",
                              f"{beat.site} reachable again at {_clock_text(now, beat.timezone)} after "
                              f"{duration_text(dark_s)} dark; now: {beat.summary or 'no alert firing'}",
                              now, site.dark_since))
        site.last_heard_at, site.last_sent_at = now, beat.sent_at
        site.timezone, site.summary, site.dark_since = beat.timezone, beat.summary, None
        return pages

    def check(self, now: float) -> list[Page]:
        """Pages for the sites that have gone quiet since the last check (each once per silence)."""
        pages = []
        for name, site in sorted(self._sites.items()):
            if site.dark_since is None and now - site.last_heard_at >= self._timeout_s:
                site.dark_since = site.last_heard_at
                last_known = site.summary or ("no alert firing" if site.last_sent_at else "never heard from")
                pages.append(Page(name, "firing",
                                  f"{name} unreachable since {_clock_text(site.last_heard_at, site.timezone)}; "
                                  f"last known: {last_known}", now, site.dark_since))
        return pages

    def sites(self) -> dict[str, dict[str, object]]:
        return {name: {"last_heard_at": s.last_heard_at, "dark": s.dark_since is not None, "summary": s.summary}
                for name, s in sorted(self._sites.items())}
