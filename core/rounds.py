"""Doing something every interval of the injected clock, for agents that poll (the probe's uplinks, the
agent's inverters): a round that overruns starts the next at once, the schedule is not caught up
with bursts, and a stop is noticed within a quarter of a second."""

from __future__ import annotations

import threading
from collections.abc import Callable

from core.clock import Clock

STOP_CHECK_S = 0.25


def run_rounds(round_once: Callable[[], None], clock: Clock, interval_s: float, stop: threading.Event,
               rounds: int | None = None) -> int:
    """Call `round_once()` every `interval_s` until `stop` is set or `rounds` are done; returns the rounds done."""
    done = 0
    due = clock.monotonic()
    while not stop.is_set() and (rounds is None or done < rounds):
        round_once()
        done += 1
        due = max(due + interval_s, clock.monotonic())
        if rounds is not None and done >= rounds:
            break
        while not stop.is_set() and (remaining := due - clock.monotonic()) > 0:
            clock.sleep(min(remaining, STOP_CHECK_S))
    return done
