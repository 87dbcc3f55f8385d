"""The one clock. Nothing else in facmon reads the wall clock.

Stages receive a `Clock` and ask it for the time, so tests can drive hours of simulated time in
milliseconds with `FakeClock` instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """A source of time. `now()` is wall time in epoch seconds (UTC); `monotonic()` only ever grows
    and is what durations, timeouts and rates are measured with."""

    def now(self) -> float: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: the only place facmon reads the machine's time."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that moves only when told to (`advance`, `set`, or `sleep`, which advances instantly).

    Thread-safe, so a test can advance it while a stage under test reads it from another thread.
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = float(start)
        self._mono = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock does not go backwards (advance({seconds}))")
        with self._lock:
            self._now += seconds
            self._mono += seconds

    def set(self, epoch_seconds: float) -> None:
        """Jump wall time (as NTP might); monotonic time moves forward by the same amount if positive."""
        with self._lock:
            delta = epoch_seconds - self._now
            self._now = float(epoch_seconds)
            self._mono += max(delta, 0.0)

    def sleep(self, seconds: float) -> None:
        self.advance(max(seconds, 0.0))
