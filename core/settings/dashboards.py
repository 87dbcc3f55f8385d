"""Settings of the dashboards stage: how the dashboards are built and where `push` sends them."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator

from core.settings.base import Section


class DashboardsSettings(Section):
    timezone: str = "Asia/Karachi"
    """Time zone the dashboards open in (IANA name, or `browser`); daily energy is summed per local day."""
    out_dir: Path = Path("deploy/grafana/dashboards")
    """Where `facmon dashboards build` writes the JSON (Grafana's provisioning reads it there)."""
    grafana_url: str | None = Field(None, pattern=r"^https?://[^\s/]+(/.*)?$")
    grafana_token: SecretStr | None = None
    """A Grafana service-account token (Editor, or Admin to create the data source): only from the
    environment (FACMON_DASHBOARDS__GRAFANA_TOKEN) or `grafana_token_file`."""
    grafana_token_file: Path | None = None
    folder_title: str = Field("facmon", min_length=1, max_length=100)
    folder_uid: str = Field("facmon", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    datasource_url: str | None = Field(None, pattern=r"^https?://[^\s/]+(/.*)?$")
    """InfluxDB's URL as Grafana reaches it (e.g. http://influxdb:8086 in docker compose);
    default: `influxdb.url`."""
    timeout_s: float = Field(10.0, gt=0)
    verify_tls: bool = True

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value in ("browser", "utc"):
            return value
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'Asia/Karachi'") from None
        return value
