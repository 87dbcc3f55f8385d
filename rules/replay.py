"""Running the engine on device time: for replays and accelerated simulations, where the readings'
`ts` (simulated time) and the wall clock part ways.

The engine judges every time by its injected clock (`for`, `keep_firing_for`, absence, schedules,
group wait/interval). When a simulator replays a day in seconds, wall time would make a 10 s `for`
span an hour of simulated readings. `DeviceTimeDriver` instead moves a `FakeClock` with the
readings: before a reading stamped `ts` is handled, the clock is advanced to `ts`, and every
evaluation tick due on the way (`interval_s` apart, on simulated time) runs first. The result only
depends on the order of the messages, not on how fast they arrive, so a replay through a real broker
gives the same alert timeline, within one evaluation interval, as the simulated day would live.

    clock = FakeClock(start_s)
    engine = Engine(..., clock, ...)
    driver = DeviceTimeDriver(engine, clock, interval_s=10.0)
    RulesSubscription(mqtt, client_id, clock, driver.handle, engine.source_connected).start()

The clock never goes backwards: a reading older than the clock (a late or out-of-order delivery) is
handled at the clock's time, as a live engine would handle it on arrival. Status changes carry no
time and are handled at the clock's time. `handle` is thread-safe (paho calls it from its thread).
"""

from __future__ import annotations

import threading

from core.clock import FakeClock
from core.contract import Reading
from core.decode import StatusChange
from rules.engine import Engine


class DeviceTimeDriver:
    def __init__(self, engine: Engine, clock: FakeClock, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"the evaluation interval must be positive (got {interval_s})")
        self._engine = engine
        self._clock = clock
        self._interval_s = interval_s
        self._next_tick = clock.now() + interval_s
        self._lock = threading.Lock()
        self.handled = 0
        """Messages handled so far (tests poll it to know the replay has been consumed)."""

    def handle(self, message: Reading | StatusChange) -> None:
        with self._lock:
            if isinstance(message, Reading):
                self._advance_to(message.ts_ms / 1000.0)
            self._engine.handle(message)
            self.handled += 1

    def advance_to(self, t: float) -> None:
        """Run the ticks due up to `t` and move the clock there (e.g. past the last reading)."""
        with self._lock:
            self._advance_to(t)

    def _advance_to(self, t: float) -> None:
        while self._next_tick <= t:
            if self._next_tick > self._clock.now():
                self._clock.set(self._next_tick)
            self._engine.tick()
            self._next_tick += self._interval_s
        if t > self._clock.now():
            self._clock.set(t)
