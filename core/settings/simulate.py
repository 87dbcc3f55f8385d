from __future__ import annotations

from pydantic import Field

from core.settings.base import Section


class SimulateSettings(Section):
    """Defaults of `facmon simulate` (each also a command-line option)."""

    scenario: str = "load-shedding-day"
    """A shipped scenario's name or a scenario file."""
    seed: int = 1
    step_s: float = Field(10.0, ge=1, le=3600)
    """Simulated seconds between inverter and uplink readings."""
    occupancy_every_steps: int = Field(3, ge=1, le=1000)
    """Occupancy sensors report every this many steps."""
    max_connections: int = Field(64, ge=1, le=10_000)
    """Up to this many devices get an MQTT connection (and last will) of their own; more share them."""
    max_inflight: int = Field(1000, ge=1, le=65535)
    """Unacknowledged QoS 1 publishes per connection (capped by the broker's advertised receive maximum)."""
    connect_attempts: int = Field(5, ge=1, le=100)
    client_id_prefix: str = Field("facmon-sim", min_length=1, max_length=64)
    """Each run adds a token of its own to it, so two runs never share a client id."""
    into_live_site: bool = False
    """Publish under the site file's own id even when a running stack watches that site (`facmon up`
    sets it for the simulators it runs); a tester's run otherwise publishes as `test-<site id>`."""
