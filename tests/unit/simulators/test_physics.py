"""simulators.physics: a device's `simulation:` section is the simulators' alone. Production loads a site
file whatever it holds there; the simulators read it with defaults and refuse what they cannot use,
naming site, device and parameter."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.site import load_site
from simulators.physics import InverterPhysics, PhysicsError, SensorPhysics, physics_of_site

PARK = Path(__file__).resolve().parents[3] / "simulators" / "sites" / "park.yaml"


def _site(tmp_path: Path, inverter_simulation: str) -> Path:
    text = PARK.read_text(encoding="utf-8").replace(
        "simulation: {max_charge_w: 4000, load_base_w: 600, load_peak_w: 4500}", inverter_simulation, 1)
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_park_simulation_sections_with_defaults_for_the_rest() -> None:
    physics = physics_of_site(load_site(PARK))
    assert physics["inv-main"] == InverterPhysics(charge_efficiency=0.95, max_charge_w=4000, load_base_w=600,
                                                  load_peak_w=4500)
    assert physics["occ-meeting"] == SensorPhysics(hold_s=300, battery_days=365)


@pytest.mark.parametrize(("section", "named"), [
    ("simulation: {load_basew: 600}", "load_basew"),                     # a typo
    ("simulation: {load_base_w: 5000, load_peak_w: 100}", "load_peak_w must be at least load_base_w"),
    ("simulation: {charge_efficiency: 1.5}", "charge_efficiency"),
    ("simulation: {max_charge_w: fast}", "max_charge_w"),
])
def test_what_the_simulators_cannot_use_is_refused_naming_site_device_and_parameter(
        tmp_path: Path, section: str, named: str) -> None:
    site = load_site(_site(tmp_path, section))  # production loads it: the section is not its business
    with pytest.raises(PhysicsError) as refused:
        physics_of_site(site)
    assert "site 'park', inverter 'inv-main': simulation:" in str(refused.value) and named in str(refused.value)


def test_a_site_without_simulation_sections_gets_the_defaults(tmp_path: Path) -> None:
    physics = physics_of_site(load_site(_site(tmp_path, "")))
    assert physics["inv-main"] == InverterPhysics()
