"""`facmon up` runs the bridge exactly when a mapping file is configured."""

from __future__ import annotations

from core.config import load_config
from facmon.commands.up import child_specs


def test_facmon_up_starts_the_bridge_only_when_mappings_are_configured() -> None:
    without = load_config(None, {})
    with_mapping = load_config(None, {"FACMON_BRIDGE__MAPPINGS": "bridge/mappings/zigbee2mqtt.yaml"})
    assert "bridge" not in [s.name for s in child_specs(without, simulators=False)]
    [bridge] = [s for s in child_specs(with_mapping, simulators=False) if s.name == "bridge"]
    assert bridge.steps == (("bridge",),)
