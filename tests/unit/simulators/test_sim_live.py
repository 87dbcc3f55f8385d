"""The live run `facmon up` starts after its accelerated day: `simulate --scenario load-shedding-day
--speed 1 --duration 30d --quiet` starts now and stamps every reading with the time it is published,
for 30 days. Driven by a FakeClock; the run is cut after six simulated hours."""

from __future__ import annotations

import argparse
from datetime import datetime

from core.clock import FakeClock
from core.config import FacmonConfig
from core.contract import DeviceKey
from core.decode import DecodeLimits, decode_message
from core.durations import parse_duration
from core.site import load_site
from facmon.commands import simulate as simulate_command
from simulators.scenario import DEFAULT_SITE
from simulators.world import Message

SITE = load_site(DEFAULT_SITE)
NOW = datetime(2026, 3, 2, 9, 17, 23, tzinfo=SITE.tz).timestamp()
CUT_AFTER_S = 6 * 3600


class _Enough(Exception):
    """Raised by the publisher to end the 30-day run early."""


class _LivePublisher:
    """Decodes each message as the collector would, at the moment the clock says it is published."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.lags_s: list[float] = []
        self.rejects: list[object] = []
        self.devices: list[DeviceKey] = []

    def open(self, devices: list[DeviceKey]) -> None:
        self.devices = list(devices)

    def publish(self, message: Message) -> None:
        decoded = decode_message(message.topic, message.payload, self.clock.now(), DecodeLimits())
        if hasattr(decoded, "ts_ms"):
            self.lags_s.append(self.clock.now() - decoded.ts_ms / 1000)  # type: ignore[union-attr]
        elif hasattr(decoded, "reason"):
            self.rejects.append(decoded)
        if self.clock.now() - NOW > CUT_AFTER_S:
            raise _Enough

    def publish_step(self, messages: list[Message]) -> None:
        for message in messages:
            self.publish(message)

    def close(self) -> None:
        pass


def test_the_live_leg_of_facmon_up_runs_in_real_time_from_now() -> None:
    clock = FakeClock(NOW)
    publisher = _LivePublisher(clock)
    args = argparse.Namespace(site=None, scenario="load-shedding-day", speed="1", start=None, duration="30d",
                              seed=None, devices=0, dry_run=False, quiet=True)
    try:
        simulate_command.run(args, FacmonConfig(), clock=clock, publisher=publisher)
    except _Enough:
        pass
    else:
        raise AssertionError("a 30-day live run ended within six hours")
    assert parse_duration("30d") == 30 * 86_400
    assert publisher.rejects == []
    # Live: the first readings are stamped now, and no reading is ever ahead of the clock or behind it.
    assert publisher.lags_s[0] == 0.0
    assert len(publisher.lags_s) > 6 * 360 * len(publisher.devices) // 2
    assert min(publisher.lags_s) == 0.0 and max(publisher.lags_s) < 1.0
    assert clock.now() - NOW > CUT_AFTER_S
