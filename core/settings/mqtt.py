from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

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


_MOVED_TO_STAGES = {
    "client_id": "collector.mqtt.client_id",
    "session_expiry_s": "collector.mqtt.session_expiry_s (the rules engine's: rules.mqtt_session_expiry_s)",
    "shared_group": "collector.mqtt.shared_group",
    "receive_maximum": "collector.mqtt.receive_maximum",
}


class MqttSettings(Section):
    """Where the broker is and how every facmon client talks to it: the broker's identity, shared by all
    stages. Each stage's own session (client id, session expiry, in-flight window, shared group) is
    that stage's setting (`collector.mqtt`, `rules.mqtt_client_id`, `api.mqtt_client_id`)."""

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: object) -> object:
        if isinstance(data, dict):
            moved = [f"mqtt.{key} is now {_MOVED_TO_STAGES[key]}" for key in data if key in _MOVED_TO_STAGES]
            if moved:
                raise ValueError("; ".join(moved) + ": move it there (each stage keeps its own session)")
        return data

    host: str = "127.0.0.1"
    """The MQTT broker's host name or address."""
    port: int = Field(1883, ge=1, le=65535)
    """The broker's port (8883 is usual with TLS)."""
    protocol: Literal["5", "3.1.1"] = "5"
    """MQTT protocol version every facmon client speaks first."""
    fallback_to_311: bool = True
    """If the broker refuses MQTT 5, connect again with 3.1.1 (persistent session via clean_session=False)."""
    username: str | None = None
    """Broker login; the password comes from FACMON_MQTT__PASSWORD or password_file."""
    password: SecretStr | None = None
    """Only from the environment (FACMON_MQTT__PASSWORD) or `password_file`."""
    password_file: Path | None = None
    """File holding the broker password (e.g. a Docker/systemd secret)."""
    tls: TlsSettings = TlsSettings()
    keepalive_s: int = Field(30, ge=5, le=3600)
    """Keep-alive interval; a silent connection is declared dead after 1.5x this."""
    reconnect_min_s: float = Field(0.5, gt=0)
    """First wait before reconnecting; doubles on each failure."""
    reconnect_max_s: float = Field(30.0, gt=0)
    """Longest wait between reconnect attempts."""
