"""One simulated world that goes on across restarts (`facmon up`'s park), so a restart fills only what
is missing and never writes a second history over the first.

A `Timeline` is the world's identity: site, seed, step, origin (on the epoch grid of the step, so
every run stamps the same instants), how long it lasts, the base scenario repeated day after day
from the origin, and the scripted episodes placed on it so far (`facmon up` adds a day-in-the-life
at each start). It is kept as a small JSON file next to the stack's data. From it, `compose` builds
one scenario and `Simulation` one deterministic stream: the same timeline gives the same reading at
the same instant whichever run publishes it, so a reading published twice (a restart that asked the
store a moment too early) overwrites itself with the same values.

    timeline = continue_or_begin(load_timeline(path), site, seed, step_s, stored_ends, now, replay_s, ...)
    save_timeline(path, timeline)
    summary = run_world(simulation_of(timeline, site), publish_from(timeline, stored_ends, now, replay_s),
                        publisher, clock)

A restart starts the world again at its origin and steps through what is stored without publishing
it (about 3 s a simulated day for the park), so a world begins anew (at the first missing instant,
from the scenario's initial state) once that would cost more than `fast_forward_max_s`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from core.clock import Clock
from core.contract import STATUS_ONLINE, Channel
from core.files import write_atomically
from core.site import Site, iter_devices
from simulators import scenario as sc
from simulators.publish import Publisher
from simulators.run import Summary
from simulators.world import Message, Simulation, Step

_STATUS_SUFFIX = "/" + Channel.STATUS.value
FAST_FORWARD_MAX_S = 2 * 86_400.0
"""A restart steps the world from its origin to the first missing instant unpublished; beyond this
much simulated time (about 6 s for the park) a new world begins there instead."""


@dataclass(frozen=True)
class Episode:
    """A scenario placed on the world at `at_s` (epoch seconds), lasting its own duration."""

    scenario: str
    """A shipped scenario's name or a scenario file's path."""
    at_s: float


@dataclass(frozen=True)
class Timeline:
    site_id: str
    seed: int
    step_s: float
    origin_s: float
    duration_s: float
    base: str
    """The scenario repeated from the origin, one placement per its own duration (a day)."""
    episodes: tuple[Episode, ...] = ()

    @property
    def end_s(self) -> float:
        return self.origin_s + self.duration_s

    def with_episode(self, episode: Episode) -> Timeline:
        return replace(self, episodes=(*self.episodes, episode))


class TimelineFileError(ValueError):
    """The timeline file cannot be read; the message names it (delete it to begin a new world)."""


def load_timeline(path: Path) -> Timeline | None:
    """The saved timeline, None when there is no file. Raises `TimelineFileError` for a damaged one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        episodes = tuple(Episode(str(e["scenario"]), float(e["at_s"])) for e in data.pop("episodes"))
        return Timeline(**{**data, "episodes": episodes})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise TimelineFileError(f"{path}: not a simulated world's timeline ({err}); delete it to begin a new "
                                "world") from None


def save_timeline(path: Path, timeline: Timeline) -> None:
    """Write atomically (a crash leaves the old file or the new one, never half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = asdict(timeline)
    data["episodes"] = [asdict(e) for e in timeline.episodes]
    write_atomically(path, json.dumps(data, indent=1))


def grid_ceil(t: float, step_s: float) -> float:
    """The first instant of the step grid (multiples of `step_s` since the epoch) at or after `t`."""
    return math.ceil(round(t / step_s, 6)) * step_s


REPLAY_RATE_ESTIMATE = 1_000.0
"""Messages a second a replay of the past is assumed to go out at (measured: 60,528 in 55 s on this
2-core VM under load, in 32-40 s when quiet): what `script_start` plans the catch-up by."""


def script_start(starts: Mapping[str, float], devices: Iterable[str], now_s: float, step_s: float,
                 lead_s: float = 20.0) -> float:
    """Where a live script goes on the grid: after the replay of the past has caught up (estimated at
    `REPLAY_RATE_ESTIMATE`, one message per device a step; `starts` as `publish_from` gives them) and
    `lead_s` more, so its events happen while a newcomer watches instead of inside the replay. An
    overestimate only delays the script."""
    messages = sum(max(0.0, now_s - start_of(starts, device)) / step_s for device in devices)
    return grid_ceil(now_s + messages / REPLAY_RATE_ESTIMATE + lead_s, step_s)


def grid_floor(t: float, step_s: float) -> float:
    return math.floor(round(t / step_s, 6)) * step_s


def publish_from(timeline: Timeline, stored_ends: Mapping[str, float], now_s: float,
                 replay_s: float) -> dict[str, float]:
    """Per device id: the first instant to publish, the step after its last stored reading, but no
    further back than `replay_s` before `now_s`, and not before the world's origin."""
    floor = max(timeline.origin_s, grid_ceil(now_s - replay_s, timeline.step_s))
    return {device: max(floor, grid_floor(end, timeline.step_s) + timeline.step_s)
            for device, end in stored_ends.items()} | {"": floor}


def start_of(starts: Mapping[str, float], device: str) -> float:
    """`device`'s first instant to publish, by `starts` as `publish_from` gives them ("" the default)."""
    return starts.get(device, starts[""])


def earliest(starts: Mapping[str, float], devices: Iterable[str]) -> float:
    """The earliest start among `devices` (device ids)."""
    return min(start_of(starts, d) for d in devices)


def continue_or_begin(saved: Timeline | None, site: Site, seed: int, step_s: float, base: str,
                      stored_ends: Mapping[str, float], now_s: float, replay_s: float, duration_s: float,
                      fast_forward_max_s: float) -> Timeline:
    """The saved timeline if it can go on (same site, seed, step and base; it still lasts past
    `now_s`; stepping from its origin to the first missing instant costs at
    most `fast_forward_max_s` of simulated time), else a new one whose origin is that first
    missing instant (no further back than `replay_s`)."""
    devices = [d.id for d in iter_devices(site)]
    if saved is not None and (saved.site_id, saved.seed, saved.step_s, saved.base) == (
            site.id, seed, step_s, base) and saved.end_s > now_s:
        first = earliest(publish_from(saved, stored_ends, now_s, replay_s), devices)
        if first - saved.origin_s <= fast_forward_max_s:
            return saved
    fresh = Timeline(site.id, seed, step_s, grid_ceil(now_s - replay_s, step_s), duration_s, base)
    return replace(fresh, origin_s=earliest(publish_from(fresh, stored_ends, now_s, replay_s), devices))


def compose(timeline: Timeline, site: Site, load: Callable[[str], sc.Scenario]) -> sc.Scenario:
    """One scenario for the whole world: the base scenario placed at the origin and again after each
    of its durations, and every episode at its instant; each event at its absolute offset from the
    origin, and clipped to the end of its placement (an event without a duration lasts to there)."""
    base = load(timeline.base)
    placements: list[tuple[sc.Scenario, float]] = []
    period = max(base.duration, timeline.step_s)
    at = timeline.origin_s
    while at < timeline.end_s:
        placements.append((base, at))
        at += period
    placements.extend((load(e.scenario), e.at_s) for e in timeline.episodes)
    events = []
    for scenario, start_s in placements:
        placement_end = min(start_s + scenario.duration, timeline.end_s)
        for event in scenario.events:
            when = start_s + event.offset_s(site, start_s)
            if when < timeline.origin_s or when >= placement_end:
                continue
            update: dict[str, object] = {"at": f"+{when - timeline.origin_s:.3f}s", "day": 0}
            if isinstance(event, sc._Timed):
                lasts = placement_end - when
                update["duration"] = lasts if event.duration is None else min(event.duration, lasts)
            events.append(event.model_copy(update=update))
    return sc.Scenario(name="world", description=f"{timeline.base} from the origin, with "
                       f"{len(timeline.episodes)} episode(s)", duration=timeline.duration_s,
                       initial=base.initial, events=tuple(events))


def simulation_of(timeline: Timeline, site: Site, load: Callable[[str], sc.Scenario], *,
                  occupancy_every: int = 3) -> Simulation:
    return Simulation(site, compose(timeline, site, load), timeline.seed, timeline.origin_s,
                      step_s=timeline.step_s, occupancy_every=occupancy_every, duration_s=timeline.duration_s)


def run_world(simulation: Simulation, starts: Mapping[str, float], publisher: Publisher, clock: Clock, *,
              until_s: float | None = None, on_step: Callable[[Step, Summary], None] | None = None,
              barrier: Callable[[], object] | None = None) -> Summary:
    """Step `simulation` from its origin; publish a device's messages from its start in `starts`
    (device id → epoch seconds, "" for the others) on, each step once the clock has reached the
    step's instant: what is past goes out as fast as it can, the rest live. Every device is announced
    `online` (retained) with its first published step. Ends at the world's end, or after `until_s`.
    `barrier` (e.g. `MqttPublisher.wait_all_acked`) runs after each step of the past: devices on
    different connections would otherwise reach a subscriber hours apart at full speed, and a rules
    engine judging the past on its readings' time (`rules.clock: catch_up`) needs them in step order.
    Opens and closes `publisher`."""
    summary = Summary()
    keys = simulation.keys
    first_of = {d: start_of(starts, d) for d in keys}
    first = min(first_of.values())
    origin = simulation.start_s  # its first step announces every device: done here, per device, instead
    announced: set[str] = set()
    publisher.open(simulation.devices)
    try:
        for step in simulation.steps():
            if until_s is not None and step.t > until_s:
                break
            if step.t < first:
                continue
            wait = step.t - clock.now()
            if wait > 0:
                clock.sleep(wait)
            messages: list[Message] = []
            for device, key in keys.items():
                if device not in announced and step.t >= first_of[device]:
                    announced.add(device)
                    messages.append(Message(key.status_topic(), STATUS_ONLINE.encode(), True, key))
            messages.extend(m for m in step.messages if m.device is None or (step.t >= first_of[m.device.device]
                            and not (step.t == origin and m.topic.endswith(_STATUS_SUFFIX))))
            published = Step(step.t, messages, step.events)
            publisher.publish_step(messages)
            if barrier is not None and wait <= 0:
                barrier()
            summary.count(published)
            summary.sim_seconds = step.t - first
            if on_step is not None:
                on_step(published, summary)
    finally:
        publisher.close()
    return summary
