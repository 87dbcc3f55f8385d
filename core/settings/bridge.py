"""Settings of `facmon bridge`, the stage that turns foreign topics (Zigbee2MQTT, Tasmota,
SolarAssistant) into contract readings (see docs/devices.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from core.settings.base import Section


class BridgeSettings(Section):
    mappings: tuple[Path, ...] = ()
    """Mapping files (bridge/mappings/ has one per source to start from); in the environment,
    comma-separated. Empty: no bridge (`facmon up` starts one only when this lists a file)."""
    state_file: Path = Path("var/bridge-seq.json")
    """Where each bridged device's `seq` is kept across restarts (fsynced)."""
    client_id: str = Field("facmon-bridge", min_length=1, max_length=120)
    """MQTT client id of the bridge's subscription (persistent session); its publisher adds `-pub`."""
    qos: int = Field(1, ge=0, le=1)
    """QoS of the subscription to the foreign topics."""
    queue_limit: int = Field(100_000, ge=100, le=10_000_000)
    """Contract messages that may wait for the broker's acknowledgement. While it is unreachable the
    newest beyond this are dropped and counted (queue_full); while it is connected the bridge waits for
    room instead, and the foreign broker holds what the bridge has not yet read."""
    max_payload_bytes: int = Field(16_384, ge=256, le=1_048_576)
    """Foreign payloads larger than this are refused (payload_too_large)."""
    http_listen: str | None = Field("127.0.0.1:9110", pattern=r"^[^\s:]*:\d{1,5}$")
    """Where the bridge serves /metrics, /rejects (JSON) and /healthz; null: off."""
    log_reject_every_s: float = Field(60.0, ge=0)
    """Drops are logged at most once per reason and source per this many seconds (all are counted)."""

    @field_validator("mappings", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value
