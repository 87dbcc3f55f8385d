"""Internet uplinks as the park's probe agent sees them: RTT, jitter and loss over a window of
probes, congestion at peak hours, random degraded periods, and scripted hard outages.

The probe host has its own small UPS; the router does not. So when the inverter feeding the router
loses power, the uplink reports `link_up: false` (and nothing comes back) instead of going silent.

All uplinks of a site step together (`UplinkFleet`), as arrays: one reading's ten probes are ten
columns, so a thousand uplinks cost a few numpy operations per step, not forty random draws each.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.site import Uplink
from simulators.context import StepContext
from simulators.noise import FleetRandom, device_generator
from simulators.physics import physics_of

PROBES_PER_READING = 10
FIBER_CUT = "fiber_cut"
LINK_DOWN = "link_down"
SPIKE_CHANCE = 0.02
"""A probe now and then meets a queue far longer than the usual jitter."""

# Per uplink per step: uniforms [degraded spell starts?, its length, 10 x lost?, 10 x spike?, 10 x spike
# size]; normals [10 x queueing, throughput share].
_U_SPELL, _U_SPELL_LENGTH, _U_LOSS = 0, 1, 2
_U_SPIKE = _U_LOSS + PROBES_PER_READING
_U_SPIKE_SIZE = _U_SPIKE + PROBES_PER_READING
_UNIFORMS = _U_SPIKE_SIZE + PROBES_PER_READING
_N_SHARE = PROBES_PER_READING
_NORMALS = _N_SHARE + 1


def congestion(local_hour: float) -> float:
    """Load factor on the ISP's network: 1 at night, up to ~1.6 in the evening home peak and ~1.3
    at the office midday peak."""
    evening = max(0.0, 1 - abs(local_hour - 21.5) / 2.5) * 0.6
    midday = max(0.0, 1 - abs(local_hour - 12.0) / 2.0) * 0.3
    return 1.0 + evening + midday


class UplinkOverrides:
    """One uplink's scenario state, which scenario events change: a stack of outage modes and
    forced degradation (a counter, so overlapping events nest)."""

    def __init__(self, spec: Uplink) -> None:
        self.spec = spec
        self.outages: list[str] = []
        self.forced_degraded = 0
        self.degraded_rtt_factor = 3.0
        self.degraded_extra_loss_pct = 5.0


class UplinkFleet:
    """Every uplink of a site, stepped together. `overrides[i]` belongs to `specs[i]`."""

    def __init__(self, specs: Sequence[Uplink], seed: int) -> None:
        self.specs = list(specs)
        self.overrides = [UplinkOverrides(spec) for spec in self.specs]
        self._random = FleetRandom([device_generator(seed, s.id) for s in self.specs], _UNIFORMS, _NORMALS)
        physics = [physics_of(s) for s in self.specs]
        self._baseline_rtt_ms = np.array([p.baseline_rtt_ms for p in physics], dtype=float)
        self._jitter_ms = np.array([p.jitter_ms for p in physics], dtype=float)
        self._loss_pct = np.array([p.loss_pct for p in physics], dtype=float)
        self._down_mbps = np.array([p.down_mbps for p in physics], dtype=float)
        self._up_mbps = np.array([p.up_mbps for p in physics], dtype=float)
        self._labels = [(s.isp, s.iface) for s in self.specs]
        self._degraded_left_s = np.zeros(len(self.specs))

    def step(self, ctx: StepContext, routers_powered: Sequence[bool]) -> list[dict[str, float | bool | str | None]]:
        """Advance every uplink by `ctx.dt`; their readings' metrics, in `specs` order."""
        if not self.specs:
            return []
        u, n = self._random.step()
        dt = ctx.dt
        left = self._degraded_left_s
        spell = (left <= 0) & (u[:, _U_SPELL] < dt / 86_400)  # about one degraded spell a day
        left[:] = np.where(left > 0, left - dt, np.where(spell, 300 + 1500 * u[:, _U_SPELL_LENGTH], left))
        overrides = self.overrides
        degraded = (left > 0) | np.array([o.forced_degraded > 0 for o in overrides])
        rtt_factor = np.where(degraded, [o.degraded_rtt_factor for o in overrides], 1.0)
        extra_loss_pct = np.where(degraded, [o.degraded_extra_loss_pct for o in overrides], 0.0)
        load = congestion(ctx.local_hour)

        loss_p = np.minimum(1.0, (self._loss_pct * load + extra_loss_pct) / 100)
        kept = u[:, _U_LOSS:_U_SPIKE] >= loss_p[:, None]
        jitter_ms = self._jitter_ms[:, None]
        queueing = np.abs(n[:, :PROBES_PER_READING]) * jitter_ms * load
        spike_size = u[:, _U_SPIKE_SIZE:]
        spike = np.where(u[:, _U_SPIKE:_U_SPIKE_SIZE] < SPIKE_CHANCE, 8 * jitter_ms * spike_size, 0.0)
        samples = ((self._baseline_rtt_ms * (0.9 + 0.1 * load))[:, None] + queueing + spike) * rtt_factor[:, None]
        answered = kept.sum(axis=1)
        rtt_ms = (samples * kept).sum(axis=1) / np.maximum(answered, 1)
        jitter = _mean_successive_difference(samples, kept, answered)
        share = np.maximum(0.05, (1.6 - 0.45 * load) * np.where(degraded, 0.4, 1.0) * (1 + 0.05 * n[:, _N_SHARE]))
        share = np.minimum(share, 1.0)

        loss_pct = (100.0 * (PROBES_PER_READING - answered) / PROBES_PER_READING).tolist()
        columns = zip(self._labels, overrides, routers_powered, answered.tolist(), np.round(rtt_ms, 2).tolist(),
                      np.round(jitter, 2).tolist(), loss_pct, np.round(self._down_mbps * share, 2).tolist(),
                      np.round(self._up_mbps * share, 2).tolist(), strict=True)
        out: list[dict[str, float | bool | str | None]] = []
        for (isp, iface), o, powered, got, rtt, jit, loss, down, up in columns:
            link_up = powered and (not o.outages or LINK_DOWN not in o.outages)
            if not link_up or not got or FIBER_CUT in o.outages:
                out.append({"isp": isp, "iface": iface, "link_up": link_up, "rtt_ms": None, "jitter_ms": None,
                            "loss_pct": 100.0, "down_mbps": 0.0, "up_mbps": 0.0})
            else:
                out.append({"isp": isp, "iface": iface, "link_up": True, "rtt_ms": rtt, "jitter_ms": jit,
                            "loss_pct": loss, "down_mbps": down, "up_mbps": up})
        return out


def _mean_successive_difference(samples: np.ndarray, kept: np.ndarray, answered: np.ndarray) -> np.ndarray:
    """Per row, the mean |difference| between successive answered probes (0 with fewer than two)."""
    columns = np.arange(samples.shape[1])
    last_kept = np.maximum.accumulate(np.where(kept, columns, -1), axis=1)
    previous = np.full(last_kept.shape, -1)
    previous[:, 1:] = last_kept[:, :-1]
    pairs = kept & (previous >= 0)
    before = np.take_along_axis(samples, np.maximum(previous, 0), axis=1)
    total = (np.abs(samples - before) * pairs).sum(axis=1)
    return np.where(answered > 1, total / np.maximum(answered - 1, 1), 0.0)
