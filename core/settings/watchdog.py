from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from core.settings.base import Section
from core.settings.rules import ReceiverSettings


class WatchdogSettings(Section):
    """`facmon watchdog serve`, the off-site dead man's switch (run it on a VPS or another park's
    server): receives the sites' signed heartbeats, pages through `receivers` when a site's stop
    for `timeout_s`, and once more when they resume."""

    listen: str = Field("0.0.0.0:9470", pattern=r"^[^\s:]*:\d{1,5}$")
    secret: SecretStr | None = None
    """The secret shared with the sites (`rules.heartbeat.secret_file`); only from the environment or `secret_file`."""
    secret_file: Path | None = None
    timeout_s: float = Field(180.0, ge=2)
    """A site is unreachable when no valid heartbeat came for this long."""
    max_skew_s: float = Field(120.0, gt=0)
    """A heartbeat whose `sent_at` is further than this from the watchdog's clock is refused (replays)."""
    sites: list[str] = Field(default_factory=list)
    """Sites expected to beat: paged for even if none ever arrived since the watchdog started."""
    store_path: Path = Path("var/watchdog.db")
    """The watchdog's own outbox (its pages are retried like the engine's)."""
    external_url: str = ""
    """The sites' status page, linked from pages (may be unreachable while the site is dark)."""
    receivers: list[ReceiverSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _receivers_unique(self) -> WatchdogSettings:
        names = [r.name for r in self.receivers]
        if len(set(names)) != len(names):
            raise ValueError(f"watchdog.receivers names must differ: {', '.join(names)}")
        return self
