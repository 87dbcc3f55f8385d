"""What facmon's simulators need to know about a device beyond its description: the `simulation:`
section of each device in a site file, which production stages ignore.

    inverters:
      - id: inv-main
        battery_kwh: 15
        ...
        simulation: {load_base_w: 600, load_peak_w: 4500, max_charge_w: 4000}

`physics_of_site(site)` reads every device's section, with the defaults below for what it leaves
out, and raises `PhysicsError` naming the site, the device and the parameter for anything it cannot
use (an unknown name, a value out of range).
"""

from __future__ import annotations

from typing import overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.site import DeviceSpec, Generator, Inverter, OccupancySensor, Plug, Site, Uplink, iter_devices


class PhysicsError(ValueError):
    """A device's `simulation:` section cannot be used; the message names site, device and parameter."""


class _Physics(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InverterPhysics(_Physics):
    charge_efficiency: float = Field(0.95, gt=0, le=1, description="charger to battery")
    max_charge_w: float = Field(3000, gt=0, le=1_000_000, description="the charger's limit")
    load_base_w: float = Field(400, ge=0, description="night/weekend load (servers, lights, router)")
    load_peak_w: float = Field(3500, ge=0, description="office-hours load at full occupancy")
    capacity_fade_pct_per_month: float = Field(0.0, ge=0, le=50, description="the battery loses this share of its "
                                               "rated capacity every 30 days (linear, from the run's start): the "
                                               "known truth the battery report must find")
    cell_spread_mv: float | None = Field(None, ge=0, le=1000, description="the battery reports its cells "
                                         "(cell_v_min, cell_v_max, cell_v_delta_mv) with this spread at the run's "
                                         "start; none: it reports no cells")
    cell_spread_growth_mv_per_month: float = Field(0.0, ge=0, le=1000, description="the cell spread grows by this "
                                                   "every 30 days (linear): the known truth of the battery report's "
                                                   "cell spread")
    cells: int | None = Field(None, ge=1, le=1000, description="cells in series; default the nominal voltage / 3.2 "
                              "(LiFePO4)")

    @model_validator(mode="after")
    def _check(self) -> InverterPhysics:
        if self.load_peak_w < self.load_base_w:
            raise ValueError("load_peak_w must be at least load_base_w")
        return self


class UplinkPhysics(_Physics):
    baseline_rtt_ms: float = Field(35.0, gt=0, le=10_000)
    jitter_ms: float = Field(4.0, ge=0, le=10_000)
    loss_pct: float = Field(0.2, ge=0, le=100)
    down_mbps: float = Field(50.0, gt=0, le=100_000)
    up_mbps: float = Field(10.0, gt=0, le=100_000)


class SensorPhysics(_Physics):
    hold_s: float = Field(300.0, ge=0, le=86_400, description="PIR: stays occupied this long after motion")
    battery_days: float = Field(365.0, gt=0, description="sensor battery life from full")


class GeneratorPhysics(_Physics):
    crank_s: float = Field(15.0, gt=0, le=600, description="from the start signal to running (or giving up)")
    cooldown_s: float = Field(60.0, ge=0, le=3600, description="unloaded run before it stops")
    idle_l_per_h: float = Field(0.8, ge=0, le=1000, description="fuel burnt running with no load")
    l_per_kwh: float = Field(0.27, ge=0, le=10, description="fuel per kWh delivered, on top of idle")
    start_failure_rate: float = Field(0.0, ge=0, le=1, description="chance that a start attempt fails")
    initial_fuel_pct: float = Field(80.0, ge=0, le=100)
    initial_engine_hours: float = Field(1200.0, ge=0)


class PlugPhysics(_Physics):
    wifi_signal_dbm: float = Field(-62.0, ge=-120, le=0, description="mean Wi-Fi signal at the plug")
    mains_v: float = Field(230.0, gt=0, le=500, description="mean mains voltage at the plug")
    load_swing: float = Field(0.1, ge=0, lt=1, description="the load's draw wanders this share around rated_w")


_MODELS: dict[type, type[_Physics]] = {Inverter: InverterPhysics, Uplink: UplinkPhysics,
                                       OccupancySensor: SensorPhysics, Generator: GeneratorPhysics,
                                       Plug: PlugPhysics}


@overload
def physics_of(spec: Inverter, site_id: str = "") -> InverterPhysics: ...
@overload
def physics_of(spec: Uplink, site_id: str = "") -> UplinkPhysics: ...
@overload
def physics_of(spec: OccupancySensor, site_id: str = "") -> SensorPhysics: ...
@overload
def physics_of(spec: Generator, site_id: str = "") -> GeneratorPhysics: ...
@overload
def physics_of(spec: Plug, site_id: str = "") -> PlugPhysics: ...


def physics_of(spec: DeviceSpec, site_id: str = "") -> _Physics:
    """The physics of one device (of site `site_id`, for the error message). Raises `PhysicsError`."""
    try:
        return _MODELS[type(spec)].model_validate(dict(spec.simulation))
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(section)'}: {e['msg']}" for e in err.errors())
        raise PhysicsError(f"site {site_id!r}, {spec.kind.value} {spec.id!r}: simulation: {problems} "
                           f"(known: {', '.join(_MODELS[type(spec)].model_fields)})") from None


def physics_of_site(site: Site) -> dict[str, _Physics]:
    """Every device's physics by device id. Raises `PhysicsError` for the first device it cannot use."""
    return {spec.id: physics_of(spec, site.id) for spec in iter_devices(site)}
