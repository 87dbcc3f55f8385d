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

`CatchUpClock` is for a replayed past that runs into the present (`rules.clock: catch_up`, facmon
up's demo): device time while the readings are behind the wall clock, then, from the first reading
within `live_within_s` of it, the wall clock for good (the driver hands each message straight to the
engine, and the service's ticks run on the wall clock).

The clock never goes backwards: a reading older than the clock (a late or out-of-order delivery) is
handled at the clock's time, as a live engine would handle it on arrival. Status changes carry no
time and are handled at the clock's time. `handle` is thread-safe (paho calls it from its thread).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from core.clock import Clock, FakeClock
from core.contract import Reading
from core.decode import StatusChange
from rules.engine import Engine


class CatchUpClock:
    """Device time (`device`, moved by a `DeviceTimeDriver`) until `go_live()`, the wall clock after."""

    def __init__(self, device: FakeClock, wall: Clock) -> None:
        self.device = device
        self._wall = wall
        self.live = False

    def now(self) -> float:
        return self._wall.now() if self.live else self.device.now()

    def monotonic(self) -> float:
        return self._wall.monotonic()

    def sleep(self, seconds: float) -> None:
        self._wall.sleep(seconds)

    def wall_now(self) -> float:
        return self._wall.now()

    def go_live(self) -> None:
        self.live = True


class DeviceTimeDriver:
    def __init__(self, engine: Engine, clock: FakeClock, interval_s: float, *, started: bool = True,
                 on_moved: Callable[[float], None] | None = None, catch_up: CatchUpClock | None = None,
                 live_within_s: float = 30.0) -> None:
        """`started=False`: the clock's time means nothing yet (a fresh replay); the first reading sets
        it, with no ticks before, and connection changes wait for it. `on_moved(t)` is called after a
        message moved the clock to `t` (the rules service keeps it, to resume there after a restart).
        Ticks fall on multiples of `interval_s` (epoch time), so a resumed run ticks when an
        uninterrupted one would have. `catch_up` (its `device` is `clock`): go live on the first
        reading stamped within `live_within_s` of the wall clock; from then on messages pass straight
        to the engine."""
        if interval_s <= 0:
            raise ValueError(f"the evaluation interval must be positive (got {interval_s})")
        self._engine = engine
        self._clock = clock
        self._interval_s = interval_s
        self._started = started
        self._on_moved = on_moved
        self._connected: bool | None = None
        self._next_tick = self._tick_after(clock.now())
        self._catch_up = catch_up
        self._live_within_s = live_within_s
        self._lock = threading.Lock()
        self.handled = 0
        """Messages handled so far (tests poll it to know the replay has been consumed)."""

    def handle(self, message: Reading | StatusChange) -> None:
        with self._lock:
            catch_up = self._catch_up
            if catch_up is not None and catch_up.live:
                self._engine.handle(message)
                self.handled += 1
                return
            before = self._clock.now()
            if isinstance(message, Reading):
                ts = message.ts_ms / 1000.0
                if not self._started:
                    self._start_at(ts)
                self._advance_to(ts)
                if catch_up is not None and ts >= catch_up.wall_now() - self._live_within_s:
                    catch_up.go_live()
            self._engine.handle(message)
            self.handled += 1
            if self._on_moved is not None and self._clock.now() > before:
                self._on_moved(self._clock.now())

    def source_connected(self, connected: bool) -> None:
        """The broker connection changed: passed on at once, or when the first reading starts the clock."""
        with self._lock:
            if self._started or (self._catch_up is not None and self._catch_up.live):
                self._engine.source_connected(connected)
            else:
                self._connected = connected

    def advance_to(self, t: float) -> None:
        """Run the ticks due up to `t` and move the clock there (e.g. past the last reading)."""
        with self._lock:
            self._advance_to(t)

    def _start_at(self, t: float) -> None:
        self._clock.set(t)
        self._next_tick = self._tick_after(t)
        self._started = True
        if self._connected is not None:
            self._engine.source_connected(self._connected)

    def _tick_after(self, t: float) -> float:
        return (math.floor(t / self._interval_s) + 1) * self._interval_s

    def _advance_to(self, t: float) -> None:
        while self._next_tick <= t:
            if self._next_tick > self._clock.now():
                self._clock.set(self._next_tick)
            self._engine.tick()
            self._next_tick += self._interval_s
        if t > self._clock.now():
            self._clock.set(t)
