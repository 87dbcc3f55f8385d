from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from core.settings.base import Section


class TlsSettings(Section):
    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = False


class MqttSettings(Section):
    """Where the broker is and how facmon's clients talk to it."""

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = "5"
    fallback_to_311: bool = True
    """If the broker refuses MQTT 5, connect again with 3.1.1 (persistent session via clean_session=False)."""
    username: str | None = None
    password: SecretStr | None = None
    """Only from the environment (FACMON_MQTT__PASSWORD) or `password_file`."""
    password_file: Path | None = None
    tls: TlsSettings = TlsSettings()
    client_id: str = Field("facmon-collector", min_length=1, max_length=128)
    session_expiry_s: int = Field(7 * 86_400, ge=60)
    """How long the broker keeps the collector's session (and queues its messages) while it is away."""
    keepalive_s: int = Field(30, ge=5, le=3600)
    shared_group: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """MQTT 5 shared subscription group: several collectors with the same group split the load."""
    receive_maximum: int = Field(2000, ge=1, le=65535)
    """Unacknowledged messages the broker may have in flight to the collector (MQTT 5)."""
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
