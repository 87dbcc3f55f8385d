"""Diesel generators behind the site's inverters, stepped through simulated time.

A generator's controller watches the inverter it feeds: with the grid out and that inverter's
battery below `auto_start_soc_pct`, it cranks; after `crank_s` the engine runs (or, if the start
fails, the controller latches `fail_to_start` until the grid returns); running, it powers the
inverter's AC input (the load and the charger) and burns fuel by its output; when the grid returns
or the battery is back above `auto_stop_soc_pct` it cools down unloaded for `cooldown_s` and stops.
An empty tank stops it with the alarm `low_fuel_shutdown`.

Scenario events (`generator_fault`) force what real gensets do wrong: `fail_to_start` (every start
attempt fails while the event lasts), `stuck_on` (the auto-stop does not stop it).

A site has few generators: they step as plain objects, each a small state machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.site import Generator
from simulators.context import StepContext
from simulators.noise import device_generator
from simulators.physics import physics_of

COOLANT_RUNNING_C = 85.0
COOLANT_TAU_S = 600.0
STARTER_BATTERY_V = 12.8


class GeneratorModel:
    """One generator; `step` takes what its inverter did and returns the generator's reading."""

    def __init__(self, spec: Generator, seed: int, site_id: str = "") -> None:
        self.spec = spec
        self.physics = physics_of(spec, site_id)
        self.state = "off"
        self.fuel_l = spec.tank_l * self.physics.initial_fuel_pct / 100
        self.engine_hours = self.physics.initial_engine_hours
        self.coolant_c: float | None = None
        self.fault_code: str | None = None
        self.forced_start_failures = 0
        self.forced_stuck_on = 0
        self._state_since = 0.0
        self._random = device_generator(seed, spec.id)

    @property
    def feeding(self) -> bool:
        """Does it power its inverter's AC input now (this step's flows use it)?"""
        return self.state == "running"

    def step(self, ctx: StepContext, grid_ok: bool, soc_pct: float, ac_input_w: float) -> dict:
        """Advance by `ctx.dt` given its inverter's grid, battery and the AC power it drew from the
        generator this step (W); the generator's metrics (contract names)."""
        p, spec, dt = self.physics, self.spec, ctx.dt
        output_w = ac_input_w if self.state == "running" and not grid_ok else 0.0
        if self.state == "running":
            self.engine_hours += dt / 3600
            self.fuel_l = max(0.0, self.fuel_l - (p.idle_l_per_h * dt / 3600 + p.l_per_kwh * output_w * dt / 3.6e6))
        self._next_state(ctx.t, grid_ok, soc_pct)
        ambient = ctx.ambient_c
        target = COOLANT_RUNNING_C if self.state in ("running", "cooldown") else ambient
        before = ambient if self.coolant_c is None else self.coolant_c
        self.coolant_c = before + (target - before) * min(1.0, dt / COOLANT_TAU_S)
        running = self.state in ("running", "cooldown")
        cranking = self.state == "cranking"
        return {"running": running, "state": self.state, "output_w": round(output_w, 1),
                "fuel_pct": round(100 * self.fuel_l / spec.tank_l, 3), "engine_hours": round(self.engine_hours, 4),
                "coolant_temp_c": round(self.coolant_c, 1),
                "starter_battery_v": round(STARTER_BATTERY_V - (1.8 if cranking else 0.0)
                                           + (0.9 if running else 0.0) + float(self._random.normal(0, 0.02)), 2),
                "fault_code": self.fault_code}

    def _next_state(self, t: float, grid_ok: bool, soc_pct: float) -> None:
        spec, p = self.spec, self.physics
        elapsed = t - self._state_since
        wanted = not grid_ok and soc_pct < spec.auto_start_soc_pct
        match self.state:
            case "off" if wanted and self.fuel_l > 0:
                self._enter("cranking", t)
            case "cranking" if elapsed >= p.crank_s:
                failed = self.forced_start_failures > 0 or self._random.random() < p.start_failure_rate
                self.fault_code = "fail_to_start" if failed else None
                self._enter("fail_to_start" if failed else "running", t)
            case "running" if self.fuel_l <= 0:
                self.fault_code = "low_fuel_shutdown"
                self._enter("off", t)
            case "running" if (grid_ok or soc_pct >= spec.auto_stop_soc_pct) and not self.forced_stuck_on:
                self._enter("cooldown", t)
            case "cooldown" if elapsed >= p.cooldown_s:
                self._enter("off", t)
            case "fail_to_start" if grid_ok:  # the controller resets its alarm when the mains return
                self.fault_code = None
                self._enter("off", t)

    def _enter(self, state: str, t: float) -> None:
        self.state, self._state_since = state, t


class GeneratorFleet:
    """A site's generators, each feeding one inverter (by index into the inverter fleet)."""

    def __init__(self, specs: Sequence[Generator], inverter_index: dict[str, int], seed: int, site_id: str) -> None:
        self.models = [GeneratorModel(spec, seed, site_id) for spec in specs]
        self.feeds = np.array([inverter_index[spec.feeds] for spec in specs], dtype=np.int64)

    def feeding(self, inverters: int) -> np.ndarray:
        """Per inverter: does a running generator power its AC input this step?"""
        out = np.zeros(inverters, dtype=bool)
        for model, index in zip(self.models, self.feeds.tolist(), strict=True):
            out[index] |= model.feeding
        return out

    def step(self, ctx: StepContext, grid_ok: Sequence[bool], soc_pct: Sequence[float],
             ac_input_w: Sequence[float]) -> list[dict]:
        """Every generator's reading, given its inverter's grid state, battery and AC input this step."""
        return [model.step(ctx, grid_ok[i], soc_pct[i], ac_input_w[i])
                for model, i in zip(self.models, self.feeds.tolist(), strict=True)]
