from __future__ import annotations

from pathlib import Path

from pydantic import Field

from core.settings.base import Section


class LocalStackSettings(Section):
    """What `facmon up` starts itself when no external servers are configured.

    The local servers listen on loopback ports of their own (not 1883/8086), so they never clash
    with a broker or InfluxDB already running on the machine."""

    var_dir: Path = Path("var")
    start_broker: bool = True
    broker_port: int = Field(11883, ge=1, le=65535)
    start_influxdb: bool = True
    influxdb_port: int = Field(18086, ge=1, le=65535)
    run_simulators: bool = True
    restart_backoff_max_s: float = Field(30.0, gt=0)
