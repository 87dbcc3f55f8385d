from __future__ import annotations

from pathlib import Path

from pydantic import Field

from core.settings.base import Section


class LocalStackSettings(Section):
    """What `facmon up` starts itself when no external servers are configured.

    The local servers listen on loopback ports of their own (not 1883/8086), so they never clash
    with a broker or InfluxDB already running on the machine."""

    var_dir: Path = Path("var")
    """Where facmon up keeps its servers' data, the spool and the logs."""
    start_broker: bool = True
    """Start a local Mosquitto; false: use the broker in mqtt.*."""
    broker_port: int = Field(11883, ge=1, le=65535)
    """Loopback port of the local broker."""
    start_influxdb: bool = True
    """Start a local InfluxDB 1.x; false: use the one in influxdb.*."""
    influxdb_port: int = Field(18086, ge=1, le=65535)
    """Loopback port of the local InfluxDB."""
    run_simulators: bool = True
    """Run the simulated park (facmon up --no-simulators also turns it off)."""
    restart_backoff_max_s: float = Field(30.0, gt=0)
    """Longest wait before restarting a child process that died."""
