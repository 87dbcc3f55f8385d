"""A room's occupancy sensor: people arrive (Poisson) and leave (each with a chance per step), so
the count wanders around the office-day profile; a PIR variant reports only `occupied`, held for
`hold_s` after the last presence. Its own battery drains; at 0 % it goes silent for good."""

from __future__ import annotations

from core.site import OccupancySensor
from simulators.context import StepContext
from simulators.noise import DeviceRandom

MEAN_STAY_OPEN_S = 2700.0
MEAN_STAY_CLOSED_S = 900.0
REPORT_COST_PCT = 0.00002
"""Battery spent per report (radio), on top of the steady drain."""


class OccupancyModel:
    def __init__(self, spec: OccupancySensor, rng: DeviceRandom) -> None:
        self.spec = spec
        self.rng = rng
        self.people = 0
        self.room_use = 0.55 + 0.4 * rng.uniform()
        self.battery_pct = 60 + 40 * rng.uniform()
        self._last_presence_t: float | None = None
        self.forced_silent = 0

    @property
    def silent(self) -> bool:
        return self.forced_silent > 0 or self.battery_pct <= 0

    def step(self, ctx: StepContext) -> dict[str, float | bool | str | int | None] | None:
        """Advance; return the reading's metrics, or None when the sensor is silent."""
        spec, rng = self.spec, self.rng
        leave_p = min(1.0, ctx.dt / (MEAN_STAY_OPEN_S if ctx.site_open else MEAN_STAY_CLOSED_S))
        target = spec.capacity * self.room_use * ctx.expected_occupancy
        self.people += rng.poisson(target * leave_p) - rng.binomial(self.people, leave_p)
        self.people = max(0, min(self.people, spec.capacity))
        self.battery_pct = max(0.0, self.battery_pct - 100 * ctx.dt / (spec.battery_days * 86_400))
        if self.people > 0:
            self._last_presence_t = ctx.t
        if self.silent:
            return None
        self.battery_pct = max(0.0, self.battery_pct - REPORT_COST_PCT)
        metrics: dict[str, float | bool | str | int | None] = {"room": spec.room}
        if spec.counts_people:
            metrics["occupied"] = self.people > 0
            metrics["people"] = self.people
        else:
            held = self._last_presence_t is not None and ctx.t - self._last_presence_t < spec.hold_s
            metrics["occupied"] = self.people > 0 or held
        metrics["sensor_battery_pct"] = round(self.battery_pct, 2)
        return metrics
