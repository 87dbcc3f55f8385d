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
    url: str = Field("http://127.0.0.1:8086", pattern=r"^https?://[^\s/]+(/.*)?$")
    database: str = Field("facmon", min_length=1, max_length=128)
    """v1 database; for v2 the bucket defaults to `database/retention_policy` (or `database`)."""
    retention_policy: str = ""
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    token: SecretStr | None = None
    """v2 API token: only from the environment (FACMON_INFLUXDB__TOKEN) or `token_file`."""
    token_file: Path | None = None
    org: str = "facmon"
    bucket: str | None = None
    timeout_s: float = Field(10.0, gt=0)
    create_database: bool = True
    verify_tls: bool = True

    @model_validator(mode="after")
    def _bucket_needs_v2(self) -> InfluxSettings:
        if self.bucket is not None and self.api != "v2":
            raise ValueError("bucket is only used with api: v2 (set database for v1)")
        return self

    def effective_bucket(self) -> str:
        if self.bucket:
            return self.bucket
        return f"{self.database}/{self.retention_policy}" if self.retention_policy else self.database
