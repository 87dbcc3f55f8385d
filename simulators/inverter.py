"""Solar backup inverters with their batteries and PV arrays, stepped through simulated time.

Power flows each step (W, averaged over the step):

    pv_w + grid_w + discharge_w = load_w + charge_w          (grid_w < 0: export)

The battery counts charge, as a BMS does: terminal power `P` (charge_w * charge_efficiency when
charging, -discharge_w / discharge_efficiency when discharging) flows at the open-circuit voltage,
so `battery_a = P / ocv` and SoC moves by `battery_a * dt / 3600 / capacity_ah`. Summing the
published `battery_a * dt` therefore reproduces the published SoC (tests/unit/simulators).

Modes: `grid` (grid present), `solar` (PV covers the load), `battery`, `bypass` (a fault with the
grid present: the grid feeds the load past the inverter), `fault` (the inverter is off and so is
the site's power), `generator` (the grid is out and a generator powers the AC input, which the
flows then count as `grid_w`). Faults: `overload`, `over_temperature`, `low_battery_cutoff`.

All inverters of a site step together (`InverterFleet`), as arrays: each branch of the physics is
computed for every inverter and `np.where` keeps the one that applies, so a thousand inverters cost
a few hundred numpy operations per step instead of a thousand Python method calls each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.site import Inverter
from simulators.context import StepContext
from simulators.noise import FleetRandom, device_generator
from simulators.physics import physics_of

PV_DERATE = 0.82
"""Wiring, soiling, heat and conversion losses between the array's kWp and the inverter input."""
OVER_TEMP_TRIP_C = 85.0
OVER_TEMP_CLEAR_C = 70.0
THERMAL_TAU_S = 600.0
GRID_NOMINAL_V = 230.0
GRID_NOMINAL_HZ = 50.0
FADE_MONTH_S = 30 * 86_400.0
"""The month of `capacity_fade_pct_per_month` and `cell_spread_growth_mv_per_month`."""
LFP_CELL_V = 3.2
"""A LiFePO4 cell's nominal voltage: a battery's cells in series by default."""

MODES = ("grid", "solar", "battery", "bypass", "fault", "generator")
_GRID, _SOLAR, _BATTERY, _BYPASS, _FAULT, _GENERATOR = range(6)
FAULTS = (None, "over_temperature", "overload", "low_battery_cutoff")
_NO_FAULT, _OVER_TEMP, _OVERLOAD, _LOW_BATTERY = range(4)
# Per inverter per step: uniforms [a cloud comes?, its length, its thickness]; normals [load, grid V, grid Hz].
_U_CLOUD, _U_CLOUD_LENGTH, _U_CLOUD_FACTOR = 0, 1, 2
_N_LOAD, _N_GRID_V, _N_GRID_HZ = 0, 1, 2


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


def _first_of(conditions: Sequence[np.ndarray], values: Sequence[np.ndarray | float], default: float) -> np.ndarray:
    """`np.select(conditions, values, default)`, as nested `np.where`: the same answer, but np.select
    broadcasts its lists on every call, which cost more than the physics itself for a small site."""
    out: np.ndarray | float = default
    for condition, value in zip(reversed(conditions), reversed(values), strict=True):
        out = np.where(condition, value, out)
    return np.asarray(out)


class InverterOverrides:
    """One inverter of a fleet: the scenario state events change (counters, so overlapping events
    nest), and a look at its latest flows."""

    def __init__(self, spec: Inverter, fleet: InverterFleet, index: int) -> None:
        self.spec = spec
        self._fleet = fleet
        self._index = index
        self.forced_grid_outages = 0
        self.forced_over_temp = 0
        self.extra_load_w = 0.0
        self.scenario_pv_factor = 1.0

    @property
    def flows(self) -> PowerFlows:
        return PowerFlows(*(float(column[self._index]) for column in self._fleet.flows))

    @property
    def site_powered(self) -> bool:
        """Does the load behind this inverter have power?"""
        return bool(self._fleet.site_powered[self._index])


class InverterFleet:
    """Every inverter of a site, stepped together, in `specs` order. `initial_soc_pct` by id; an
    inverter without one starts between 60 and 95 %."""

    def __init__(self, specs: Sequence[Inverter], seed: int, initial_soc_pct: dict[str, float]) -> None:
        self.specs = list(specs)
        n = len(self.specs)
        generators = [device_generator(seed, s.id) for s in self.specs]
        drawn_soc = [60 + 35 * g.random() for g in generators]
        self._random = FleetRandom(generators, 3, 3)
        self.overrides = [InverterOverrides(spec, self, index) for index, spec in enumerate(self.specs)]

        physics = [physics_of(s) for s in self.specs]

        def column(name: str) -> np.ndarray:
            return np.array([getattr(s, name) for s in self.specs], dtype=float)

        def physics_column(name: str) -> np.ndarray:
            return np.array([getattr(p, name) for p in physics], dtype=float)

        self._nominal_v = column("battery_nominal_v")
        self._capacity_ah = column("battery_kwh") * 1000 / self._nominal_v
        self._pv_kwp, self._rated_w, self._max_charge_w = column("pv_kwp"), column("rated_w"), physics_column(
            "max_charge_w")
        self._charge_eff, self._discharge_eff = physics_column("charge_efficiency"), column("discharge_efficiency")
        self._cutoff_soc, self._restart_soc = column("cutoff_soc_pct"), column("restart_soc_pct")
        self._load_base_w, self._load_peak_w = physics_column("load_base_w"), physics_column("load_peak_w")
        self._rated_ah = self._capacity_ah.copy()
        self._fade_per_s = physics_column("capacity_fade_pct_per_month") / 100 / FADE_MONTH_S
        self._cell_spread0_mv = np.array([np.nan if p.cell_spread_mv is None else p.cell_spread_mv for p in physics])
        self._cells_reporting = np.flatnonzero(np.isfinite(self._cell_spread0_mv))
        """Which batteries report cells: fixed by the site, so not looked for at every step."""
        self._cell_growth_mv_per_s = physics_column("cell_spread_growth_mv_per_month") / FADE_MONTH_S
        self._cells = np.array([p.cells or max(1, round(s.battery_nominal_v / LFP_CELL_V))
                                for p, s in zip(physics, self.specs, strict=True)], dtype=float)
        self._t = 0.0
        self._fade_origin_s: float | None = None
        soc = np.array([initial_soc_pct.get(s.id, drawn) for s, drawn in zip(self.specs, drawn_soc, strict=True)])
        self._charge_ah = self._capacity_ah * soc / 100
        self._inverter_temp_c = np.full(n, np.nan)  # nan: not yet stepped (starts at its target)
        self._battery_temp_c = np.full(n, np.nan)
        self._cut_off = np.zeros(n, dtype=bool)
        self._fault = np.zeros(n, dtype=np.int64)
        self._cloud_factor = np.ones(n)
        self._cloud_left_s = np.zeros(n)
        self.flows: tuple[np.ndarray, ...] = tuple(np.zeros(n) for _ in PowerFlows.__slots__)
        self.grid_ok = np.ones(n, dtype=bool)
        """The utility grid at each inverter in the latest step (a generator's AC input is not the grid)."""
        """pv_w, grid_w, discharge_w, load_w, charge_w, battery_terminal_w: one array each."""

    @property
    def site_powered(self) -> np.ndarray:
        """Per inverter: does the load behind it have power?"""
        return self.flows[3] > 0

    @property
    def capacity_ah(self) -> np.ndarray:
        """Per inverter, the battery's usable capacity now (Ah): rated, less its simulated fade."""
        return self._capacity_ah.copy()

    @property
    def cell_spread_mv(self) -> np.ndarray:
        """Per inverter, its battery's cell spread now (mV; nan where it reports no cells): the truth the
        battery report's cell spread must find."""
        since = 0.0 if self._fade_origin_s is None else self._t - self._fade_origin_s
        return self._cell_spread0_mv + self._cell_growth_mv_per_s * since

    def _fade(self, t: float) -> None:
        """Shrink each fading battery's capacity to its value at `t`, keeping its state of charge:
        the charge lost with the capacity flows through no current, so counting current between two
        state-of-charge readings measures the capacity of the time (what a BMS sees)."""
        if self._fade_origin_s is None:
            self._fade_origin_s = t
        self._t = t
        if not self._fade_per_s.any():
            return
        capacity = self._rated_ah * np.maximum(0.01, 1 - self._fade_per_s * (t - self._fade_origin_s))
        self._charge_ah = self._charge_ah * capacity / self._capacity_ah
        self._capacity_ah = capacity

    def _soc_pct(self) -> np.ndarray:
        return 100 * self._charge_ah / self._capacity_ah

    def _ocv(self) -> np.ndarray:
        return self._nominal_v * (0.92 + 0.16 * self._soc_pct() / 100)

    def _step_clouds(self, dt: float, u: np.ndarray) -> None:
        passing = self._cloud_left_s > 0
        left = np.where(passing, self._cloud_left_s - dt, self._cloud_left_s)
        factor = np.where(passing & (left <= 0), 1.0, self._cloud_factor)
        comes = ~passing & (u[:, _U_CLOUD] < dt / 5400)  # a passing cloud every ~1.5 h of daylight
        self._cloud_left_s = np.where(comes, 120 + 900 * u[:, _U_CLOUD_LENGTH], left)
        self._cloud_factor = np.where(comes, 0.25 + 0.5 * u[:, _U_CLOUD_FACTOR], factor)

    def _update_faults(self, ctx: StepContext, demand: np.ndarray, forced_over_temp: np.ndarray) -> None:
        load_w, charge_w = self.flows[3], self.flows[4]
        heat = 30 * load_w / self._rated_w + 8 * charge_w / self._max_charge_w
        target = ctx.ambient_c + 5 + heat + np.where(forced_over_temp, 45.0, 0.0)
        temp = np.where(np.isnan(self._inverter_temp_c), target, self._inverter_temp_c)
        self._inverter_temp_c = temp = temp + (target - temp) * min(1.0, ctx.dt / THERMAL_TAU_S)
        fault = self._fault
        fault = np.where(temp >= OVER_TEMP_TRIP_C, _OVER_TEMP,
                         np.where((fault == _OVER_TEMP) & (temp < OVER_TEMP_CLEAR_C), _NO_FAULT, fault))
        fault = np.where((demand > self._rated_w * 1.1) & (fault == _NO_FAULT), _OVERLOAD,
                         np.where((fault == _OVERLOAD) & (demand <= self._rated_w), _NO_FAULT, fault))
        self._fault = fault

    def _battery(self, terminal_w: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """Move charge for `terminal_w` over `dt`, clipped to 0..capacity; returns (terminal power
        applied, battery current)."""
        ocv = self._ocv()
        delta_ah = np.clip(terminal_w / ocv * dt / 3600, -self._charge_ah, self._capacity_ah - self._charge_ah)
        self._charge_ah = self._charge_ah + delta_ah
        current_a = delta_ah * 3600 / dt
        return current_a * ocv, current_a

    def step(self, ctx: StepContext, occupancy_fraction: float,
             generator_ac: np.ndarray | None = None) -> list[dict[str, float | bool | str | None]]:
        """Advance every inverter by `ctx.dt`; their readings' metrics (contract names), in `specs` order.
        `generator_ac`: per inverter, a running generator powers its AC input this step."""
        if not self.specs:
            return []
        u, n = self._random.step()
        dt = ctx.dt
        overrides = self.overrides
        self._fade(ctx.t)
        self._step_clouds(dt, u)
        grid_ok = np.array([not ctx.scheduled_outage and o.forced_grid_outages == 0 for o in overrides])
        ac_in = grid_ok if generator_ac is None else grid_ok | generator_ac
        self.grid_ok = grid_ok
        pv_factor = np.array([o.scenario_pv_factor for o in overrides])
        pv = self._pv_kwp * ctx.irradiance_w_m2 * PV_DERATE * self._cloud_factor * pv_factor
        demand = (self._load_base_w + (self._load_peak_w - self._load_base_w) * occupancy_fraction) * (
            1 + 0.04 * n[:, _N_LOAD]) + np.array([o.extra_load_w for o in overrides])
        demand = np.maximum(demand, 0.0)
        self._update_faults(ctx, demand, np.array([o.forced_over_temp > 0 for o in overrides]))
        self._cut_off &= ~(ac_in | (self._soc_pct() >= self._restart_soc))
        mode, current_a = self._flows(dt, ac_in, pv, demand)
        mode = np.where(ac_in & ~grid_ok & (mode != _BYPASS) & (mode != _FAULT), _GENERATOR, mode)
        return self._metrics(ctx, grid_ok, ac_in, mode, current_a, n)

    def _flows(self, dt: float, grid_ok: np.ndarray, pv: np.ndarray,
               demand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every case's flows, kept where it applies: faulted (bypass or off), on the grid, and off
        it (cut off, PV covering the load, or the battery making up the deficit)."""
        eff_c, eff_d, max_charge = self._charge_eff, self._discharge_eff, self._max_charge_w
        faulted = self._fault != _NO_FAULT
        on_grid = ~faulted & grid_ok
        off_grid = ~faulted & ~grid_ok
        cut_off = off_grid & self._cut_off
        sunny = off_grid & ~cut_off & (pv >= demand)
        deficit = off_grid & ~cut_off & ~sunny
        headroom_w = (self._capacity_ah - self._charge_ah) * self._ocv() * 3600 / dt / eff_c
        request = _first_of(
            [on_grid, cut_off, sunny, deficit],
            [np.minimum(max_charge, np.maximum(headroom_w, 0.0)) * eff_c, np.minimum(pv, max_charge) * eff_c,
             np.minimum(pv - demand, max_charge) * eff_c, -(demand - pv) / eff_d], 0.0)
        terminal, current_a = self._battery(request, dt)
        charge = np.where(on_grid | cut_off | sunny, terminal / eff_c, 0.0)
        discharge = np.where(deficit, -terminal * eff_d, 0.0)
        bypass = faulted & grid_ok
        pv_w = _first_of([on_grid | deficit, cut_off, sunny], [pv, charge, demand + charge], 0.0)
        grid_w = _first_of([bypass, on_grid], [demand, demand + charge - pv], 0.0)
        load_w = _first_of([bypass | on_grid | sunny, deficit], [demand, pv + discharge], 0.0)
        self.flows = (pv_w, grid_w, discharge, load_w, charge, np.where(faulted, 0.0, terminal))
        self._cut_off |= deficit & ((self._soc_pct() <= self._cutoff_soc) | (load_w < demand - 1e-6))
        mode = _first_of([bypass, faulted | cut_off, on_grid & (pv >= demand + charge), on_grid, sunny],
                         [_BYPASS, _FAULT, _SOLAR, _GRID, _SOLAR], _BATTERY)
        return mode, np.where(faulted, 0.0, current_a)

    def _metrics(self, ctx: StepContext, grid_ok: np.ndarray, ac_in: np.ndarray, mode: np.ndarray,
                 current_a: np.ndarray, n: np.ndarray) -> list[dict[str, float | bool | str | None]]:
        current = np.where(self.flows[5] != 0, current_a, 0.0)
        battery_v = self._ocv() + current * 0.02 * self._nominal_v / 48
        target_bt = ctx.ambient_c + 2 + current * current * 0.0008
        before = self._battery_temp_c
        self._battery_temp_c = np.where(np.isnan(before), target_bt,
                                        before + (target_bt - before) * min(1.0, ctx.dt / (3 * THERMAL_TAU_S)))
        fault = np.where((self._fault == _NO_FAULT) & self._cut_off & ~ac_in, _LOW_BATTERY, self._fault)
        fault = np.where((mode == _BYPASS) | (mode == _FAULT), fault, _NO_FAULT)
        grid_v = np.where(grid_ok, (GRID_NOMINAL_V + 4 * n[:, _N_GRID_V]).round(1), 0.0)
        grid_hz = np.where(grid_ok, (GRID_NOMINAL_HZ + 0.04 * n[:, _N_GRID_HZ]).round(2), 0.0)
        # ndarray.round: np.round's dispatch wrapper costs as much as the rounding on a small fleet.
        columns = zip(
            grid_v.tolist(), grid_hz.tolist(), grid_ok.tolist(), mode.tolist(), self._soc_pct().round(3).tolist(),
            battery_v.round(3).tolist(), current.round(3).tolist(), self._battery_temp_c.round(1).tolist(),
            self.flows[0].round(1).tolist(), self.flows[3].round(1).tolist(),
            np.minimum(self._inverter_temp_c, 149.0).round(1).tolist(), fault.tolist(), strict=True)
        readings = [{"grid_v": v, "grid_hz": hz, "grid_ok": ok, "mode": MODES[m], "battery_soc_pct": soc,
                     "battery_v": bv, "battery_a": ba, "battery_temp_c": bt, "pv_w": pv, "load_w": load,
                     "inverter_temp_c": it, "fault_code": FAULTS[f]}
                    for v, hz, ok, m, soc, bv, ba, bt, pv, load, it, f in columns]
        self._add_cells(readings, battery_v)
        return readings

    def _add_cells(self, readings: list[dict[str, float | bool | str | None]], battery_v: np.ndarray) -> None:
        """The cell voltages of the batteries that report cells: the mean cell at battery_v / cells, the
        lowest and highest cell the spread apart around it."""
        reporting = self._cells_reporting
        if not len(reporting):
            return
        delta_mv = self.cell_spread_mv[reporting].round(1)
        low_v = (battery_v[reporting] / self._cells[reporting] - delta_mv / 2000).round(4)
        high_v = (low_v + delta_mv / 1000).round(4)
        for index, low, high, delta in zip(reporting.tolist(), low_v.tolist(), high_v.tolist(), delta_mv.tolist(),
                                           strict=True):
            readings[index].update(cell_v_min=low, cell_v_max=high, cell_v_delta_mv=delta)
