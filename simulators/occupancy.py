"""Rooms' occupancy sensors: people arrive (Poisson) and leave (each with a chance per step), so
the count wanders around the office-day profile; a PIR variant reports only `occupied`, held for
`hold_s` after the last presence. Each sensor's own battery drains; at 0 % it goes silent for good.

All sensors of a site step together (`OccupancyFleet`), as arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.site import OccupancySensor
from simulators.context import StepContext
from simulators.noise import FleetRandom, binomial_from_uniform, device_generator, poisson_from_uniform
from simulators.physics import physics_of

MEAN_STAY_OPEN_S = 2700.0
MEAN_STAY_CLOSED_S = 900.0
REPORT_COST_PCT = 0.00002
"""Battery spent per report (radio), on top of the steady drain."""
_U_ARRIVALS, _U_DEPARTURES = 0, 1


class OccupancyFleet:
    """Every occupancy sensor of a site, stepped together, in `specs` order."""

    def __init__(self, specs: Sequence[OccupancySensor], seed: int) -> None:
        self.specs = list(specs)
        generators = [device_generator(seed, s.id) for s in self.specs]
        first = [g.random(2) for g in generators]  # each sensor's own start: how busy its room is, its battery
        self._random = FleetRandom(generators, 2, 0)
        self._room_use = np.array([0.55 + 0.4 * f[0] for f in first], dtype=float)
        self.battery_pct = np.array([60 + 40 * f[1] for f in first], dtype=float)
        self.people = np.zeros(len(self.specs), dtype=np.int64)
        self.forced_silent = np.zeros(len(self.specs), dtype=np.int64)
        """Per sensor, how many scenario events hold it silent now."""
        self.forced_people = np.zeros(len(self.specs), dtype=np.int64)
        """Per sensor, people a scenario puts in the room now (visitors: shown, not part of the room's own
        comings and goings, so the room is as it was when they leave)."""
        self._capacity = np.array([s.capacity for s in self.specs], dtype=np.int64)
        physics = [physics_of(s) for s in self.specs]
        self._drain_pct_per_s = np.array([100 / (p.battery_days * 86_400) for p in physics],
                                         dtype=float)
        self._hold_s = np.array([p.hold_s for p in physics], dtype=float)
        self._last_presence_t = np.full(len(self.specs), -np.inf)
        self._labels = [(s.room, s.counts_people) for s in self.specs]
        self._silent = np.zeros(len(self.specs), dtype=bool)
        self._occupied = np.zeros(len(self.specs), dtype=bool)
        self._shown = self.people

    def step(self, ctx: StepContext) -> None:
        """Advance every sensor by `ctx.dt` (they report less often than they step: `metrics`)."""
        if not self.specs:
            return
        u, _ = self._random.step()
        leave_p = min(1.0, ctx.dt / (MEAN_STAY_OPEN_S if ctx.site_open else MEAN_STAY_CLOSED_S))
        target = self._capacity * self._room_use * ctx.expected_occupancy
        people = (self.people + poisson_from_uniform(target * leave_p, u[:, _U_ARRIVALS])
                  - binomial_from_uniform(self.people, leave_p, u[:, _U_DEPARTURES]))
        self.people = people = np.clip(people, 0, self._capacity)
        self._shown = shown = np.minimum(np.maximum(people, self.forced_people), self._capacity)
        battery = np.maximum(0.0, self.battery_pct - self._drain_pct_per_s * ctx.dt)
        present = shown > 0
        self._last_presence_t = np.where(present, ctx.t, self._last_presence_t)
        self._silent = silent = (self.forced_silent > 0) | (battery <= 0)
        self.battery_pct = np.where(silent, battery, np.maximum(0.0, battery - REPORT_COST_PCT))
        self._occupied = present | (ctx.t - self._last_presence_t < self._hold_s)

    def metrics(self) -> list[dict[str, float | bool | str | int | None] | None]:
        """Each sensor's reading's metrics after the last step, or None for a silent sensor."""
        out: list[dict[str, float | bool | str | int | None] | None] = []
        columns = zip(self._labels, self._silent.tolist(), self._shown.tolist(), self._occupied.tolist(),
                      np.round(self.battery_pct, 2).tolist(), strict=True)
        for (room, counts_people), quiet, count, occupied, battery_pct in columns:
            if quiet:
                out.append(None)
            elif counts_people:
                out.append({"room": room, "occupied": count > 0, "people": count, "sensor_battery_pct": battery_pct})
            else:
                out.append({"room": room, "occupied": occupied, "sensor_battery_pct": battery_pct})
        return out
