from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from core.settings.base import Section


class TlsSettings(Section):
    enabled: bool = False
    """Connect with TLS."""
    ca_file: Path | None = None
    """CA certificate(s) to verify the broker; null: the system's CAs."""
    cert_file: Path | None = None
    """Client certificate, for brokers that authenticate clients by certificate."""
    key_file: Path | None = None
    """Private key of cert_file."""
    insecure_skip_verify: bool = False
    """Do not verify the broker's certificate (testing only)."""


class MqttSettings(Section):
    """Where the broker is and how facmon's clients talk to it."""

    host: str = "127.0.0.1"
    """The MQTT broker's host name or address."""
    port: int = Field(1883, ge=1, le=65535)
    """The broker's port (8883 is usual with TLS)."""
    protocol: Literal["5", "3.1.1"] = "5"
    """MQTT protocol version the collector and the rules engine speak first."""
    fallback_to_311: bool = True
    """If the broker refuses MQTT 5, connect again with 3.1.1 (persistent session via clean_session=False)."""
    username: str | None = None
    """Broker login; the password comes from FACMON_MQTT__PASSWORD or password_file."""
    password: SecretStr | None = None
    """Only from the environment (FACMON_MQTT__PASSWORD) or `password_file`."""
    password_file: Path | None = None
    """File holding the broker password (e.g. a Docker/systemd secret)."""
    tls: TlsSettings = TlsSettings()
    client_id: str = Field("facmon-collector", min_length=1, max_length=128)
    """MQTT client id; the persistent session is bound to it, so keep it stable (unique per collector)."""
    session_expiry_s: int = Field(7 * 86_400, ge=60)
    """How long the broker keeps the collector's session (and queues its messages) while it is away."""
    keepalive_s: int = Field(30, ge=5, le=3600)
    """Keep-alive interval; a silent connection is declared dead after 1.5x this."""
    shared_group: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """MQTT 5 shared subscription group: several collectors with the same group split the load."""
    receive_maximum: int = Field(2000, ge=1, le=65535)
    """Unacknowledged messages the broker may have in flight to the collector (MQTT 5)."""
    reconnect_min_s: float = Field(0.5, gt=0)
    """First wait before reconnecting; doubles on each failure."""
    reconnect_max_s: float = Field(30.0, gt=0)
    """Longest wait between reconnect attempts."""
