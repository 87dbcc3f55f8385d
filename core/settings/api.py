"""Settings of the api stage: where it listens, where its keys live, how it judges devices stale."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from core.settings.base import Section


class ApiSettings(Section):
    listen: str = Field("127.0.0.1:8080", pattern=r"^[^\s:]*:\d{1,5}$")
    """host:port the HTTP API and the status page listen on."""
    keys_db: Path = Path("var/api-keys.sqlite")
    """SQLite file of API keys (only their SHA-256 hashes) and the audit log of writes."""
    rule_files: tuple[Path, ...] = ()
    """Rule files listed by /api/v1/rules; empty: the engine's `rules.rule_files`, else the shipped packs."""
    cors_origins: tuple[str, ...] = ()
    """Origins allowed to call the API from a browser; empty (the default) turns CORS off."""
    stale_after_s: float = Field(60.0, gt=0)
    """A device with no reading for this long is shown offline (reason `stale`)."""
    max_body_bytes: int = Field(1_048_576, ge=1024, le=1_073_741_824)
    """Largest request body accepted (1 MiB): a bigger Content-Length is refused with 413 before the
    request is routed or its key checked, and a chunked body is cut off at this many bytes."""
    auth_failure_limit: int = Field(20, ge=1, le=100_000)
    """Failed authentications (a key sent, but wrong) allowed per client address, and per key id,
    within `auth_failure_window_s`. Past it, that address gets 429 with Retry-After for every request
    with a key; wrong guesses at that key id get 429 too (its right key still works)."""
    auth_failure_window_s: float = Field(60.0, gt=0, le=86_400)
    """The sliding window of `auth_failure_limit`."""
    history_max_points: int = Field(20_000, ge=10, le=1_000_000)
    """A history request whose range/interval would return more points per series is refused (422)."""
    sse_queue_max: int = Field(1000, ge=10, le=100_000)
    """Events buffered per live-event client; a client that falls further behind is disconnected."""
    sse_keepalive_s: float = Field(15.0, gt=0)
    mqtt_client_id: str = Field("facmon-api", min_length=1, max_length=100)
    """Prefix of the API's MQTT client id (a random suffix keeps several API processes apart)."""
    collector_metrics_url: str | None = None
    """The collector's /metrics (e.g. http://127.0.0.1:9108/metrics) for spool depth; null: derive from
    collector.http_listen."""
    spool_ready_max_bytes: int | None = Field(None, ge=0)
    """/readyz fails when the collector's spool holds more than this; null: 90% of collector.spool.max_bytes."""
