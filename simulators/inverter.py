"""A solar backup inverter with its battery and PV array, stepped through simulated time.

Power flows each step (W, averaged over the step):

    pv_w + grid_w + discharge_w = load_w + charge_w          (grid_w < 0: export)

The battery counts charge, as a BMS does: terminal power `P` (charge_w * charge_efficiency when
charging, -discharge_w / discharge_efficiency when discharging) flows at the open-circuit voltage,
so `battery_a = P / ocv` and SoC moves by `battery_a * dt / 3600 / capacity_ah`. Summing the
published `battery_a * dt` therefore reproduces the published SoC (tests/unit/simulators).

Modes: `grid` (grid present), `solar` (PV covers the load), `battery`, `bypass` (a fault with the
grid present: the grid feeds the load past the inverter), `fault` (the inverter is off and so is
the site's power). Faults: `overload`, `over_temperature`, `low_battery_cutoff`.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.site import Inverter
from simulators.context import StepContext
from simulators.noise import DeviceRandom

PV_DERATE = 0.82
"""Wiring, soiling, heat and conversion losses between the array's kWp and the inverter input."""
OVER_TEMP_TRIP_C = 85.0
OVER_TEMP_CLEAR_C = 70.0
THERMAL_TAU_S = 600.0
GRID_NOMINAL_V = 230.0
GRID_NOMINAL_HZ = 50.0


@dataclass(frozen=True, slots=True)
class PowerFlows:
    """One step's averaged flows (W); `balance_w` is sources minus sinks and must be ~0."""

    pv_w: float
    grid_w: float
    discharge_w: float
    load_w: float
    charge_w: float
    battery_terminal_w: float

    @property
    def balance_w(self) -> float:
        return self.pv_w + self.grid_w + self.discharge_w - self.load_w - self.charge_w


class InverterModel:
    """State and physics of one inverter. Scenario events flip the public override attributes."""

    def __init__(self, spec: Inverter, rng: DeviceRandom, initial_soc_pct: float | None = None) -> None:
        self.spec = spec
        self.rng = rng
        self.capacity_ah = spec.battery_kwh * 1000 / spec.battery_nominal_v
        soc = initial_soc_pct if initial_soc_pct is not None else 60 + 35 * rng.uniform()
        self.charge_ah = self.capacity_ah * soc / 100
        self.inverter_temp_c: float | None = None
        self.battery_temp_c: float | None = None
        self.cut_off = False
        self.fault: str | None = None
        self.cloud_factor = 1.0
        self._cloud_left_s = 0.0
        self.flows = PowerFlows(0, 0, 0, 0, 0, 0)
        self._current_a = 0.0
        # Scenario overrides (counters, so overlapping events nest).
        self.forced_grid_outages = 0
        self.forced_over_temp = 0
        self.extra_load_w = 0.0
        self.scenario_pv_factor = 1.0

    @property
    def soc_pct(self) -> float:
        return 100 * self.charge_ah / self.capacity_ah

    @property
    def site_powered(self) -> bool:
        """Does the load behind this inverter have power?"""
        return self.flows.load_w > 0

    def _ocv(self) -> float:
        return self.spec.battery_nominal_v * (0.92 + 0.16 * self.soc_pct / 100)

    def _step_clouds(self, dt: float) -> None:
        if self._cloud_left_s > 0:
            self._cloud_left_s -= dt
            if self._cloud_left_s <= 0:
                self.cloud_factor = 1.0
        elif self.rng.chance(dt / 5400):  # a passing cloud every ~1.5 h of daylight
            self._cloud_left_s = 120 + 900 * self.rng.uniform()
            self.cloud_factor = 0.25 + 0.5 * self.rng.uniform()

    def step(self, ctx: StepContext, occupancy_fraction: float) -> dict[str, float | bool | str | None]:
        """Advance by `ctx.dt` and return the reading's metrics (contract names)."""
        spec, dt = self.spec, ctx.dt
        self._step_clouds(dt)
        grid_ok = not ctx.scheduled_outage and self.forced_grid_outages == 0
        pv_avail = spec.pv_kwp * ctx.irradiance_w_m2 * PV_DERATE * self.cloud_factor * self.scenario_pv_factor
        demand = (spec.load_base_w + (spec.load_peak_w - spec.load_base_w) * occupancy_fraction) * (
            1 + 0.04 * self.rng.normal()) + self.extra_load_w
        demand = max(demand, 0.0)
        self._update_faults(ctx, grid_ok, demand)
        if self.cut_off and (grid_ok or self.soc_pct >= spec.restart_soc_pct):
            self.cut_off = False
        if self.fault is not None:
            mode, flows = self._faulted(grid_ok, demand)
        elif grid_ok:
            mode, flows = self._on_grid(pv_avail, demand, dt)
        else:
            mode, flows = self._off_grid(pv_avail, demand, dt)
        self.flows = flows
        return self._metrics(ctx, mode, grid_ok)

    def _update_faults(self, ctx: StepContext, grid_ok: bool, demand: float) -> None:
        heat = 30 * self.flows.load_w / self.spec.rated_w + 8 * self.flows.charge_w / self.spec.max_charge_w
        target = ctx.ambient_c + 5 + heat + (45 if self.forced_over_temp else 0)
        if self.inverter_temp_c is None:
            self.inverter_temp_c = target
        self.inverter_temp_c += (target - self.inverter_temp_c) * min(1.0, ctx.dt / THERMAL_TAU_S)
        if self.inverter_temp_c >= OVER_TEMP_TRIP_C:
            self.fault = "over_temperature"
        elif self.fault == "over_temperature" and self.inverter_temp_c < OVER_TEMP_CLEAR_C:
            self.fault = None
        if demand > self.spec.rated_w * 1.1 and self.fault is None:
            self.fault = "overload"
        elif self.fault == "overload" and demand <= self.spec.rated_w:
            self.fault = None

    def _faulted(self, grid_ok: bool, demand: float) -> tuple[str, PowerFlows]:
        if grid_ok:  # bypass: the grid feeds the load directly; nothing charges
            return "bypass", PowerFlows(0, demand, 0, demand, 0, 0)
        return "fault", PowerFlows(0, 0, 0, 0, 0, 0)

    def _battery(self, terminal_w: float, dt: float) -> float:
        """Move charge for `terminal_w` over `dt`, clipped to 0..capacity; returns the terminal power applied."""
        current = terminal_w / self._ocv()
        delta_ah = current * dt / 3600
        if self.charge_ah + delta_ah > self.capacity_ah:
            delta_ah = self.capacity_ah - self.charge_ah
        elif self.charge_ah + delta_ah < 0:
            delta_ah = -self.charge_ah
        applied_w = delta_ah * 3600 / dt * self._ocv() if dt > 0 else 0.0
        self.charge_ah += delta_ah
        self._current_a = delta_ah * 3600 / dt if dt > 0 else 0.0
        return applied_w

    def _on_grid(self, pv_avail: float, demand: float, dt: float) -> tuple[str, PowerFlows]:
        spec = self.spec
        headroom_w = (self.capacity_ah - self.charge_ah) * self._ocv() * 3600 / dt / spec.charge_efficiency
        charge_w = min(spec.max_charge_w, max(headroom_w, 0.0))
        terminal = self._battery(charge_w * spec.charge_efficiency, dt)
        charge_w = terminal / spec.charge_efficiency
        grid_w = demand + charge_w - pv_avail  # negative: PV surplus exported
        mode = "solar" if pv_avail >= demand + charge_w else "grid"
        return mode, PowerFlows(pv_avail, grid_w, 0, demand, charge_w, terminal)

    def _off_grid(self, pv_avail: float, demand: float, dt: float) -> tuple[str, PowerFlows]:
        spec = self.spec
        if self.cut_off:  # output off; the charge controller still charges from PV
            terminal = self._battery(min(pv_avail, spec.max_charge_w) * spec.charge_efficiency, dt)
            charge_w = terminal / spec.charge_efficiency
            return "fault", PowerFlows(charge_w, 0, 0, 0, charge_w, terminal)
        if pv_avail >= demand:
            terminal = self._battery(min(pv_avail - demand, spec.max_charge_w) * spec.charge_efficiency, dt)
            charge_w = terminal / spec.charge_efficiency
            return "solar", PowerFlows(demand + charge_w, 0, 0, demand, charge_w, terminal)
        deficit = demand - pv_avail
        terminal = self._battery(-deficit / spec.discharge_efficiency, dt)
        discharge_w = -terminal * spec.discharge_efficiency
        served = pv_avail + discharge_w
        if self.soc_pct <= spec.cutoff_soc_pct or served < demand - 1e-6:
            self.cut_off = True
        return "battery", PowerFlows(pv_avail, 0, discharge_w, served, 0, terminal)

    def _metrics(self, ctx: StepContext, mode: str, grid_ok: bool) -> dict[str, float | bool | str | None]:
        flows, rng = self.flows, self.rng
        current = self._current_a if flows.battery_terminal_w else 0.0
        battery_v = self._ocv() + current * 0.02 * self.spec.battery_nominal_v / 48
        target_bt = ctx.ambient_c + 2 + current * current * 0.0008
        self.battery_temp_c = target_bt if self.battery_temp_c is None else (
            self.battery_temp_c + (target_bt - self.battery_temp_c) * min(1.0, ctx.dt / (3 * THERMAL_TAU_S)))
        fault_code = self.fault or ("low_battery_cutoff" if self.cut_off and not grid_ok else None)
        if fault_code is not None and mode not in ("bypass", "fault"):
            fault_code = None
        return {
            "grid_v": round(GRID_NOMINAL_V + 4 * rng.normal(), 1) if grid_ok else 0.0,
            "grid_hz": round(GRID_NOMINAL_HZ + 0.04 * rng.normal(), 2) if grid_ok else 0.0,
            "grid_ok": grid_ok,
            "mode": mode,
            "battery_soc_pct": round(self.soc_pct, 3),
            "battery_v": round(battery_v, 3),
            "battery_a": round(current, 3),
            "battery_temp_c": round(self.battery_temp_c, 1),
            "pv_w": round(flows.pv_w, 1),
            "load_w": round(flows.load_w, 1),
            "inverter_temp_c": round(min(self.inverter_temp_c or 0.0, 149.0), 1),
            "fault_code": fault_code,
        }
