"""Settings of `facmon agent`, the drivers that poll inverters directly (Modbus, Solarman V5, PI30)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from core.contract import ID_PATTERN
from core.settings.base import Section

_PORTS = {"modbus_tcp": 502, "solarman_v5": 8899}


class AgentDevice(Section):
    """One inverter and how to reach it."""

    device: str = Field(pattern=rf"^{ID_PATTERN}$")
    """Its contract id (the site file's inverter id)."""
    driver: Literal["modbus_tcp", "modbus_rtu", "solarman_v5", "pi30"]
    register_map: str | None = Field(None, min_length=1, max_length=4096)
    """For Modbus and Solarman: a shipped map (deye_hybrid, growatt_spf, sunspec_hybrid) or a map file's path."""
    host: str | None = Field(None, min_length=1, max_length=253)
    """Modbus TCP gateway or Solarman logger address."""
    port: int | None = Field(None, ge=1, le=65535)
    """TCP port; default 502 (Modbus TCP), 8899 (Solarman V5)."""
    serial_port: str | None = Field(None, min_length=1, max_length=4096)
    """Serial device for modbus_rtu and pi30, e.g. /dev/ttyUSB0 (a /dev/serial/by-id/ path survives replugging);
    for pi30 also the inverter's USB HID port, /dev/hidrawN or a udev link to it."""
    baudrate: int | None = Field(None, ge=300, le=921_600)
    """Default 9600 (Modbus RTU), 2400 (PI30)."""
    unit_id: int = Field(1, ge=0, le=247)
    """Modbus unit (slave) id."""
    logger_serial: int | None = Field(None, ge=1, le=2**32 - 1)
    """The Solarman logger's serial number, from its label (not the inverter's)."""
    timeout_s: float = Field(3.0, gt=0, le=60)
    """A device silent this long is reported offline for this round."""

    @model_validator(mode="after")
    def _reachable(self) -> AgentDevice:
        need = {"modbus_tcp": ("host", "register_map"), "solarman_v5": ("host", "register_map", "logger_serial"),
                "modbus_rtu": ("serial_port", "register_map"), "pi30": ("serial_port",)}[self.driver]
        missing = [key for key in need if getattr(self, key) is None]
        if missing:
            raise ValueError(f"driver {self.driver} needs {', '.join(missing)}")
        if self.driver == "pi30" and self.register_map is not None:
            raise ValueError("pi30 speaks its own protocol: remove register_map")
        return self

    @property
    def tcp_port(self) -> int:
        return self.port or _PORTS.get(self.driver, 502)

    @property
    def serial_baudrate(self) -> int:
        return self.baudrate or (2400 if self.driver == "pi30" else 9600)


class AgentSettings(Section):
    """Defaults of `facmon agent`; `devices` must be configured (see docs/devices.md)."""

    site: str = Field("park", pattern=rf"^{ID_PATTERN}$")
    """The site the polled inverters belong to."""
    interval_s: float = Field(5.0, ge=1, le=3600)
    """A reading per device this often."""
    client_id_prefix: str = Field("facmon-agent", min_length=1, max_length=64)
    """Each device's MQTT client id is this, the site and the device id."""
    devices: tuple[AgentDevice, ...] = ()
    """The inverters to poll (keys above this table); none: `facmon agent` says what to add."""
