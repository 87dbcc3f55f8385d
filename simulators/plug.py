"""Smart plugs (Tasmota, Shelly) switching one load each. A plug fed by an inverter loses power when
that inverter stops powering the site: it goes silent (a plug without power cannot publish) and,
when power returns, starts again with its uptime from zero and its relay on (Tasmota's default
`PowerOnState`). While powered, its load draws around `rated_w`, its energy counter runs, mains
voltage and Wi-Fi signal wander a little.

All plugs of a site step together (`PlugFleet`), as arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.site import Plug
from simulators.context import StepContext
from simulators.noise import FleetRandom, device_generator
from simulators.physics import physics_of

_N_LOAD, _N_VOLTAGE, _N_SIGNAL = 0, 1, 2


class PlugFleet:
    """Every plug of a site, stepped together, in `specs` order."""

    def __init__(self, specs: Sequence[Plug], seed: int) -> None:
        self.specs = list(specs)
        generators = [device_generator(seed, s.id) for s in self.specs]
        first = [g.random(2) for g in generators]  # each plug's own start: its uptime and energy counter
        self._random = FleetRandom(generators, 0, 3)
        physics = [physics_of(s) for s in self.specs]
        self._rated_w = np.array([s.rated_w for s in self.specs], dtype=float)
        self._swing = np.array([p.load_swing for p in physics], dtype=float)
        self._mains_v = np.array([p.mains_v for p in physics], dtype=float)
        self._signal_dbm = np.array([p.wifi_signal_dbm for p in physics], dtype=float)
        self.uptime_s = np.array([86_400 * 20 * f[0] for f in first], dtype=float)
        self.energy_kwh = np.array([500 * f[1] for f in first], dtype=float)
        self.has_power = np.ones(len(self.specs), dtype=bool)

    def step(self, ctx: StepContext, powered: Sequence[bool]) -> list[dict | None]:
        """Advance every plug by `ctx.dt`; `powered[i]`: plug i has mains power this step. Each plug's
        reading's metrics, or None for one without power."""
        if not self.specs:
            return []
        _, n = self._random.step()
        has_power = np.asarray(powered, dtype=bool)
        self.uptime_s = np.where(has_power & self.has_power, self.uptime_s + ctx.dt, 0.0)
        self.has_power = has_power
        power_w = np.where(has_power, np.maximum(0.0, self._rated_w * (1 + self._swing * np.clip(
            n[:, _N_LOAD], -3, 3) / 3)), 0.0)
        self.energy_kwh = self.energy_kwh + power_w * ctx.dt / 3_600_000
        voltage = self._mains_v + 2.0 * n[:, _N_VOLTAGE]
        signal = np.clip(self._signal_dbm + 2.0 * n[:, _N_SIGNAL], -120, 0)
        out: list[dict | None] = []
        columns = zip(has_power.tolist(), np.round(power_w, 1).tolist(), np.round(self.energy_kwh, 3).tolist(),
                      np.round(voltage, 1).tolist(), np.round(signal).tolist(), self.uptime_s.astype(np.int64).tolist(),
                      strict=True)
        for on_mains, watts, kwh, volts, dbm, uptime in columns:
            out.append(None if not on_mains else {"relay_on": True, "power_w": watts, "energy_kwh": kwh,
                                                  "voltage_v": volts, "wifi_signal_dbm": dbm, "uptime_s": uptime})
        return out
