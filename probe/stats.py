"""A round of probe samples → the uplink metrics of the contract. Pure.

Definitions (stated in docs/simulators.md):
    loss_pct   lost probes / probes sent × 100, over all targets of the uplink
    rtt_ms     median of the answered probes' round-trip times (robust to one slow answer)
    jitter_ms  mean absolute difference between consecutive answered RTTs to the same target
               (the "ping jitter" of RFC 3550's definition, without its smoothing), averaged
               over all such pairs; 0.0 with a single answer
Nothing answered: rtt_ms and jitter_ms are null and loss_pct is 100.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Sample = float | None
"""One probe: its round-trip time in ms, or None if it was lost."""


@dataclass(frozen=True, slots=True)
class RoundStats:
    rtt_ms: float | None
    jitter_ms: float | None
    loss_pct: float


def summarise(samples_by_target: Mapping[str, Sequence[Sample]]) -> RoundStats:
    """The metrics of one round. Raises ValueError when no probe was sent at all."""
    sent = sum(len(samples) for samples in samples_by_target.values())
    if sent == 0:
        raise ValueError("a round needs at least one probe to summarise")
    answered = [s for samples in samples_by_target.values() for s in samples if s is not None]
    loss_pct = round(100.0 * (sent - len(answered)) / sent, 3)
    if not answered:
        return RoundStats(None, None, 100.0)
    steps = [abs(b - a) for samples in samples_by_target.values()
             for a, b in itertools.pairwise([s for s in samples if s is not None])]
    jitter = statistics.fmean(steps) if steps else 0.0
    return RoundStats(round(statistics.median(answered), 3), round(jitter, 3), loss_pct)

