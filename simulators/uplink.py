"""An internet uplink as the park's probe agent sees it: RTT, jitter and loss over a window of
probes, congestion at peak hours, random degraded periods, and scripted hard outages.

The probe host has its own small UPS; the router does not. So when the inverter feeding the router
loses power, the uplink reports `link_up: false` (and nothing comes back) instead of going silent.
"""

from __future__ import annotations

from itertools import pairwise

from core.site import Uplink
from simulators.context import StepContext
from simulators.noise import DeviceRandom

PROBES_PER_READING = 10
FIBER_CUT = "fiber_cut"
LINK_DOWN = "link_down"


def congestion(local_hour: float) -> float:
    """Load factor on the ISP's network: 1 at night, up to ~1.6 in the evening home peak and ~1.3
    at the office midday peak."""
    evening = max(0.0, 1 - abs(local_hour - 21.5) / 2.5) * 0.6
    midday = max(0.0, 1 - abs(local_hour - 12.0) / 2.0) * 0.3
    return 1.0 + evening + midday


class UplinkModel:
    def __init__(self, spec: Uplink, rng: DeviceRandom) -> None:
        self.spec = spec
        self.rng = rng
        self._degraded_left_s = 0.0
        # Scenario overrides: outage mode stack, and degradation from events.
        self.outages: list[str] = []
        self.forced_degraded = 0
        self.degraded_rtt_factor = 3.0
        self.degraded_extra_loss_pct = 5.0

    @property
    def degraded(self) -> bool:
        return self._degraded_left_s > 0 or self.forced_degraded > 0

    def step(self, ctx: StepContext, router_powered: bool) -> dict[str, float | bool | str | None]:
        spec, rng = self.spec, self.rng
        if self._degraded_left_s > 0:
            self._degraded_left_s -= ctx.dt
        elif rng.chance(ctx.dt / 86_400):  # about one degraded spell a day
            self._degraded_left_s = 300 + 1500 * rng.uniform()
        base = {"isp": spec.isp, "iface": spec.iface}
        link_up = router_powered and LINK_DOWN not in self.outages
        if not link_up or FIBER_CUT in self.outages:
            return {**base, "link_up": link_up, "rtt_ms": None, "jitter_ms": None, "loss_pct": 100.0,
                    "down_mbps": 0.0, "up_mbps": 0.0}
        load = congestion(ctx.local_hour)
        rtt_factor = self.degraded_rtt_factor if self.degraded else 1.0
        loss_p = min(1.0, (spec.loss_pct * load + (self.degraded_extra_loss_pct if self.degraded else 0.0)) / 100)
        samples = []
        for _ in range(PROBES_PER_READING):
            if rng.uniform() < loss_p:
                continue
            queueing = abs(rng.normal()) * spec.jitter_ms * load
            spike = 8 * spec.jitter_ms * rng.uniform() if rng.uniform() < 0.02 else 0.0
            samples.append((spec.baseline_rtt_ms * (0.9 + 0.1 * load) + queueing + spike) * rtt_factor)
        loss_pct = 100.0 * (PROBES_PER_READING - len(samples)) / PROBES_PER_READING
        if not samples:
            return {**base, "link_up": True, "rtt_ms": None, "jitter_ms": None, "loss_pct": 100.0,
                    "down_mbps": 0.0, "up_mbps": 0.0}
        rtt = sum(samples) / len(samples)
        jitter = (sum(abs(a - b) for a, b in pairwise(samples)) / (len(samples) - 1)
                  if len(samples) > 1 else 0.0)
        share = max(0.05, (1.6 - 0.45 * load) * (0.4 if self.degraded else 1.0) * (1 + 0.05 * rng.normal()))
        return {**base, "link_up": True, "rtt_ms": round(rtt, 2), "jitter_ms": round(jitter, 2),
                "loss_pct": loss_pct, "down_mbps": round(spec.down_mbps * min(share, 1.0), 2),
                "up_mbps": round(spec.up_mbps * min(share, 1.0), 2)}
