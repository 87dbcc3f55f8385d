from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from core.settings.base import Section


class InfluxSettings(Section):
    """The InfluxDB that readings go to. `api: v1` writes to /write (InfluxDB 1.x, e.g. Debian's 1.6.7);
    `api: v2` writes through influxdb-client to /api/v2/write (InfluxDB 1.8+, 2.x, 3.x).
    Reads always use InfluxQL over /query, which every version serves."""

    api: Literal["v1", "v2"] = "v1"
    """Write API: v1 (/write, InfluxDB 1.x) or v2 (/api/v2/write via influxdb-client: 1.8+, 2.x, 3.x)."""
    url: str = Field("http://127.0.0.1:8086", pattern=r"^https?://[^\s/]+(/.*)?$")
    """Base URL of InfluxDB."""
    database: str = Field("facmon", min_length=1, max_length=128)
    """v1 database; for v2 the bucket defaults to `database/retention_policy` (or `database`)."""
    retention_policy: str = ""
    """v1 retention policy to write to; empty: the database's default."""
    username: str | None = None
    """v1 user (or, with api v2 on InfluxDB 1.8, user for the user:password token)."""
    password: SecretStr | None = None
    """Only from the environment (FACMON_INFLUXDB__PASSWORD) or password_file."""
    password_file: Path | None = None
    """File holding the InfluxDB password."""
    token: SecretStr | None = None
    """v2 API token: only from the environment (FACMON_INFLUXDB__TOKEN) or `token_file`."""
    token_file: Path | None = None
    """File holding the v2 API token."""
    org: str = "facmon"
    """v2 organisation."""
    bucket: str | None = None
    """v2 bucket; null: database/retention_policy (the 1.8+ mapping)."""
    timeout_s: float = Field(10.0, gt=0)
    """HTTP timeout of one write or query."""
    create_database: bool = True
    """Create the database (v1) or bucket (v2) at start where the credentials allow it."""
    verify_tls: bool = True
    """Verify InfluxDB's TLS certificate for https URLs."""

    @model_validator(mode="after")
    def _bucket_needs_v2(self) -> InfluxSettings:
        if self.bucket is not None and self.api != "v2":
            raise ValueError("bucket is only used with api: v2 (set database for v1)")
        return self

    def effective_bucket(self) -> str:
        if self.bucket:
            return self.bucket
        return f"{self.database}/{self.retention_policy}" if self.retention_policy else self.database
