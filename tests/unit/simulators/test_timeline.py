"""The continuing world (simulators/timeline.py): a restart that publishes from each device's last
stored reading gives, message for message, what one uninterrupted run gives; the world's instants
are on the epoch grid of its step; the base scenario repeats daily and episodes keep their instants;
the kept timeline goes on unless it cannot."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from core.clock import FakeClock
from core.site import iter_devices, load_site
from simulators import scenario as sc
from simulators.publish import MemoryPublisher
from simulators.scenario import DEFAULT_SITE, load_scenario, resolve_scenario
from simulators.timeline import (
    Episode,
    Timeline,
    TimelineFileError,
    compose,
    continue_or_begin,
    load_timeline,
    publish_from,
    run_world,
    save_timeline,
    simulation_of,
)
from simulators.world import Message

SITE = load_site(DEFAULT_SITE)
NOW = datetime(2026, 3, 2, 19, 17, 23, tzinfo=SITE.tz).timestamp()
DAY = 86_400.0


def _load(name: str) -> sc.Scenario:
    return load_scenario(resolve_scenario(name))


def _begin(now: float = NOW, replay_s: float = 2 * 3600) -> Timeline:
    return continue_or_begin(None, SITE, 1, 10.0, "load-shedding-day", {}, now, replay_s, 2 * DAY, 2 * DAY)


def _run(timeline: Timeline, ends: dict[str, float], now: float, until_s: float,
         replay_s: float = 2 * 3600) -> list[Message]:
    publisher = MemoryPublisher()
    run_world(simulation_of(timeline, SITE, _load), publish_from(timeline, ends, now, replay_s), publisher,
              FakeClock(now), until_s=until_s)
    return publisher.messages


def _readings(messages: list[Message]) -> list[Message]:
    return [m for m in messages if not m.topic.endswith("/status")]


def _last_ts(messages: list[Message]) -> dict[str, float]:
    ends = {}
    for m in _readings(messages):
        ends[m.device.device] = datetime.fromisoformat(json.loads(m.payload)["ts"]).timestamp()
    return ends


def test_a_restart_publishes_what_one_run_would_have_after_what_is_stored() -> None:
    timeline = _begin().with_episode(Episode("day-in-the-life", NOW + 50))
    end = NOW + 1800
    single = _run(timeline, {}, NOW, end)
    first = _run(timeline, {}, NOW, NOW + 600)
    # The store holds less of some devices than was published (in flight at the stop), one nothing.
    ends = _last_ts(first)
    ends["inv-lab"] -= 60
    ends.pop("occ-cafe")
    second = _run(timeline, ends, NOW + 1200, end, replay_s=3 * 3600)  # back to the origin for occ-cafe
    stored = [m for m in _readings(first) if _ts(m) <= ends.get(m.device.device, 0.0)]
    assert sorted(stored + _readings(second), key=_order) == sorted(_readings(single), key=_order)
    devices = len(list(iter_devices(SITE)))
    announced = [m for m in second if m.topic.endswith("/status") and m.payload == b"online" and m.retain]
    assert len(announced) == devices, "every device announced online again, once"


def _ts(m: Message) -> float:
    return datetime.fromisoformat(json.loads(m.payload)["ts"]).timestamp()


def _iso(t: float) -> str:
    from core.contract import format_ts
    return format_ts(round(t * 1000))


def _order(m: Message) -> tuple[float, str]:
    return _ts(m), m.topic


def test_every_instant_is_on_the_epoch_grid_of_the_step() -> None:
    timeline = _begin(NOW + 3.7)
    assert timeline.origin_s % 10 == 0 and timeline.origin_s >= NOW + 3.7 - 2 * 3600
    assert all(_ts(m) % 10 == 0 for m in _readings(_run(timeline, {}, NOW + 3.7, timeline.origin_s + 600)))


def test_the_base_repeats_daily_and_episodes_keep_their_instants() -> None:
    timeline = _begin().with_episode(Episode("day-in-the-life", NOW))
    events = compose(timeline, SITE, _load).events
    outages = [timeline.origin_s + e.offset_s(SITE, timeline.origin_s) for e in events if e.type == "grid_outage"]
    base_outages = [t for t in outages if SITE.local_time(t).strftime("%H:%M") == "14:00"]
    assert len(base_outages) == 2 and base_outages[1] - base_outages[0] == DAY  # the 2-day world, twice
    assert NOW + 30 in outages  # the script's unscheduled outage, 30 s after its placement
    occupied = [e for e in events if e.type == "room_occupied"]
    assert [(e.device, e.people, e.duration) for e in occupied] == [("occ-lab", 2, 720.0)]


def test_the_kept_timeline_goes_on_unless_it_cannot(tmp_path: Path) -> None:
    saved = _begin()
    stored = {"inv-main": NOW + 3600}
    assert continue_or_begin(saved, SITE, 1, 10.0, "load-shedding-day", stored, NOW + 3700, 2 * 3600, 2 * DAY,
                             2 * DAY) == saved
    assert continue_or_begin(saved, SITE, 2, 10.0, "load-shedding-day", stored, NOW + 3700, 2 * 3600, 2 * DAY,
                             2 * DAY) != saved, "another seed is another world"
    later = NOW + 3 * DAY  # past the kept world's end: a new one, from what is missing (at most 2 h back)
    fresh = continue_or_begin(saved, SITE, 1, 10.0, "load-shedding-day", stored, later, 2 * 3600, 2 * DAY, 2 * DAY)
    assert fresh.origin_s == later - later % 10 + 10 - 2 * 3600 and fresh.episodes == ()
    path = tmp_path / "world.json"
    save_timeline(path, saved.with_episode(Episode("day-in-the-life", NOW)))
    assert load_timeline(path) == saved.with_episode(Episode("day-in-the-life", NOW))
    assert load_timeline(tmp_path / "none.json") is None
    path.write_text("{not json")
    with pytest.raises(TimelineFileError, match="delete it to begin a new world"):
        load_timeline(path)


def test_a_live_script_starts_after_the_replay_has_caught_up():
    """A day of 10 devices at 5 s is 172,800 messages: the script waits for them (at the estimated
    rate) and starts on the grid; with nothing to replay it starts a lead after now."""
    from simulators.timeline import REPLAY_RATE_ESTIMATE, script_start

    now = 1_800_000_003.0
    devices = [f"dev-{i}" for i in range(10)]
    day = {"": now - 86_400}  # nothing stored: every device from a day back (publish_from's default)
    at = script_start(day, devices, now, 5.0)
    assert at % 5.0 == 0
    assert now + 172_800 / REPLAY_RATE_ESTIMATE + 20 <= at < now + 172_800 / REPLAY_RATE_ESTIMATE + 25
    caught_up = {"": now - 86_400} | dict.fromkeys(devices, now)  # all stored up to now
    assert script_start(caught_up, devices, now, 5.0) == 1_800_000_025.0
