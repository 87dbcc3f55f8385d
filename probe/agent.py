"""Rounds of probes per uplink → contract readings, paced by the injected clock.

A round, per uplink: read the interface's link state; if the link is up, send
`probes_per_target` probes to each target (spaced by `spacing_s`, each waiting at most `timeout_s`);
summarise (probe/stats.py) into one `uplink` Reading stamped when the round ended. A link that is
down is not probed: its reading says link_up false, loss 100 %, rtt and jitter null. Uplinks are
probed in parallel, so a dead ISP's timeouts never delay a healthy one's reading.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from core import rounds as core_rounds
from core.clock import Clock
from core.contract import DeviceKey, Kind, Reading
from core.settings.probe import ProbeSettings, ProbeUplink
from probe.link import SYS_CLASS_NET, check_interface, read_link_state
from probe.probers import Binding, Prober, prober_for
from probe.stats import Sample, summarise


@dataclass
class UplinkProbe:
    """One configured uplink, its probers and its reading counter."""

    spec: ProbeUplink
    device: DeviceKey
    probers: Sequence[Prober]
    seq: int = field(default=0)


class ProbeAgent:
    """Measures every configured uplink. Raises ProbeSetupError/LinkStateError at construction when
    the configuration cannot work on this host (missing interface, ICMP forbidden for an icmp target)."""

    def __init__(self, settings: ProbeSettings, clock: Clock, icmp_type: int | None,
                 sys_class_net: Path = SYS_CLASS_NET) -> None:
        self._settings = settings
        self._clock = clock
        self._sys = sys_class_net
        self.uplinks: list[UplinkProbe] = []
        for spec in settings.uplinks:
            check_interface(spec.iface, sys_class_net)
            binding = Binding(None if spec.source_address is None else str(spec.source_address),
                              spec.iface if spec.bind_to_interface else None)
            probers = [prober_for(t, binding, settings.timeout_s, clock, icmp_type) for t in spec.targets]
            self.uplinks.append(UplinkProbe(spec, DeviceKey(settings.site, Kind.UPLINK, spec.device), probers))

    @property
    def devices(self) -> list[DeviceKey]:
        return [u.device for u in self.uplinks]

    def measure(self, uplink: UplinkProbe) -> Reading:
        """One round for one uplink → its reading (advances its seq)."""
        link = read_link_state(uplink.spec.iface, self._sys)
        metrics: dict[str, object] = {"isp": uplink.spec.isp, "iface": uplink.spec.iface, "link_up": link.up}
        if link.up:
            stats = summarise({p.target: self._samples(p) for p in uplink.probers})
            metrics.update(rtt_ms=stats.rtt_ms, jitter_ms=stats.jitter_ms, loss_pct=stats.loss_pct)
        else:
            metrics.update(rtt_ms=None, jitter_ms=None, loss_pct=100.0)
        reading = Reading(uplink.device, round(self._clock.now() * 1000), uplink.seq, metrics)  # type: ignore[arg-type]
        uplink.seq += 1
        return reading

    def _samples(self, prober: Prober) -> list[Sample]:
        samples: list[Sample] = []
        for seq in range(self._settings.probes_per_target):
            if seq:
                self._clock.sleep(self._settings.spacing_s)
            samples.append(prober.probe(seq))
        return samples

    def round(self) -> list[Reading]:
        """Every uplink measured once, in parallel; readings in configuration order."""
        if len(self.uplinks) <= 1:
            return [self.measure(u) for u in self.uplinks]
        with ThreadPoolExecutor(max_workers=len(self.uplinks), thread_name_prefix="probe") as pool:
            return list(pool.map(self.measure, self.uplinks))


def run_rounds(agent: ProbeAgent, publish: Callable[[Reading], None], clock: Clock, interval_s: float,
               stop: threading.Event, rounds: int | None = None) -> int:
    """Measure and publish a round every `interval_s` (clock time) until `stop` is set or `rounds`
    rounds are done; returns the rounds done (the schedule of `core.rounds.run_rounds`)."""

    def round_once() -> None:
        for reading in agent.round():
            publish(reading)

    return core_rounds.run_rounds(round_once, clock, interval_s, stop, rounds)
