"""A simulated stretch of time straight into InfluxDB's line protocol, without MQTT: a month of a
site in seconds, for the monthly reports' demos, tests and benchmarks (the collector's own path is
proven elsewhere; here only the stored result matters).

`backfill(simulation)` yields, step by step, the step's time, each device's metrics (as
`Simulation.advance` returns them) and the readings as lines of line protocol, the same lines the
collector writes for those readings (core/line_protocol.py). The caller sees the simulation's state
between steps: that is the known truth the reports are checked against.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from core.contract import Reading
from core.line_protocol import reading_to_line
from simulators.world import Simulation


@dataclass(frozen=True)
class BackfillStep:
    t: float
    metrics: dict[str, dict | None]
    lines: list[str]


def backfill(simulation: Simulation) -> Iterator[BackfillStep]:
    """Every step of `simulation` from its start to its end (inclusive of the start), one reading per
    device per step (silent devices send none)."""
    steps = int(simulation.duration_s // simulation.step_s)
    seq = dict.fromkeys(simulation.keys, 0)
    for i in range(steps + 1):
        t = simulation.start_s + i * simulation.step_s
        _, metrics = simulation.advance(t, simulation.step_s)
        ts_ms = round(t * 1000)
        lines = []
        for device, values in metrics.items():
            if values is None or simulation.delivery[device].silent:
                continue
            lines.append(reading_to_line(Reading(simulation.keys[device], ts_ms, seq[device], values)))
            seq[device] += 1
        yield BackfillStep(t, metrics, lines)
