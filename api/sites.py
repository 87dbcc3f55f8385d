"""The site tree the API serves: the described sites (core/site.py) joined with what devices report.

Pure: `SiteTree` is built once from the sites by id (`core.known_devices.load_sites`, which refuses two
files of one site); views combine it with `DeviceStates` snapshots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.contract import DeviceKey
from core.site import DeviceSpec, Inverter, Site, iter_devices


@dataclass(frozen=True, slots=True)
class ConfiguredDevice:
    key: DeviceKey
    spec: DeviceSpec


class SiteTree:
    """Sites by id, and each described device by (site, device id)."""

    def __init__(self, sites: Mapping[str, Site]) -> None:
        self._sites = dict(sites)
        self._devices: dict[tuple[str, str], ConfiguredDevice] = {}
        for site in self._sites.values():
            for spec in iter_devices(site):
                self._devices[(site.id, spec.id)] = ConfiguredDevice(DeviceKey(site.id, spec.kind, spec.id), spec)

    def sites(self) -> Sequence[Site]:
        return list(self._sites.values())

    def site(self, site_id: str) -> Site | None:
        return self._sites.get(site_id)

    def device(self, site_id: str, device_id: str) -> ConfiguredDevice | None:
        return self._devices.get((site_id, device_id))

    def devices_of(self, site_id: str) -> list[ConfiguredDevice]:
        return [d for (s, _), d in self._devices.items() if s == site_id]


def battery_runtime_s(spec: Inverter, soc_pct: float, load_w: float, pv_w: float) -> float | None:
    """Seconds until the battery reaches its cut-off at today's net load (load minus PV), or None
    when PV covers the load (the battery is not draining). Energy above cut-off × discharge
    efficiency ÷ net draw: a linear estimate the status page shows as "about N h"."""
    net_w = load_w - pv_w
    if net_w <= 0:
        return None
    usable_pct = max(soc_pct - spec.cutoff_soc_pct, 0.0)
    energy_wh = spec.battery_kwh * 1000 * usable_pct / 100 * spec.discharge_efficiency
    return energy_wh / net_w * 3600
