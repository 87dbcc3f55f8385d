"""`facmon simulate`: run a site + scenario through the device models and publish over MQTT.

Start time (the `ts` of the first reading): live runs start now. Accelerated (`--speed N`, N > 1)
and backfill (`--speed max`) runs start by default one scenario-duration ago, so the simulated day
ends about when the run started and no reading is ever stamped ahead of the real clock (the
collector rejects readings more than 300 s in the future). `--start` overrides it.

Beside a running stack (facmon/live_stack.py: the broker of a running `facmon up`, or mqtt.* when
set) a run never disturbs the live site:
- its site id is its own: `test-<site id>` when the stack watches the site (`--site-id` chooses
  another), the live site's id only with `--into-live-site` (or `simulate.into_live_site`, which
  `facmon up` sets for the simulators it runs);
- its MQTT client ids carry a token of their own, so the broker never closes another run's sessions;
- at its end the retained statuses of the devices it ran are as it found them: restored where the
  broker held one before the run, cleared where it held none (a test site leaves nothing behind). The
  simulation's farewell `offline` for every device is not published then: consumers would see every
  device fail for an instant (the live site's rules engine would page for it).
The first line of output says which broker and which site id.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.clock import Clock, SystemClock
from core.config import FacmonConfig
from core.contract import ID_RE, STATUS_OFFLINE, DeviceKey
from core.settings.mqtt import MqttSettings
from core.site import Site, SiteFileError, iter_devices, load_site
from facmon.live_stack import TEST_SITE_PREFIX, LiveStack, find_live_stack
from facmon.retained_statuses import StatusesUnreachable, read_statuses, write_statuses
from simulators.physics import physics_of_site
from simulators.publish import BrokerUnreachable, MemoryPublisher, MqttPublisher, Publisher
from simulators.run import Summary, run_simulation
from simulators.scenario import (
    Scenario,
    check_scenario_against,
    load_scenario,
    named_scenarios,
    resolve_scenario,
    resolve_site,
)
from simulators.world import Message, Simulation, Step, scale_site

HELP = "run simulated devices (a site + scenario) live, accelerated or as backfill, publishing over MQTT"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    names = ", ".join(named_scenarios())
    parser.add_argument("--site", help="site file or shipped site name (default: the one site of sites.files, "
                                       "else the shipped park)")
    parser.add_argument("--scenario", help=f"scenario file or one of: {names} (default: load-shedding-day)")
    parser.add_argument("--speed", default="60",
                        help="1 = live (real time), N = N times faster, 'max' = backfill as fast as possible "
                             "(default 60: a day in 24 minutes)")
    parser.add_argument("--start", help="simulated start, ISO date/time (site-local if no offset) or 'now'; default: "
                                        "now for live runs, now minus the scenario's duration otherwise")
    parser.add_argument("--duration", help="override the scenario's duration, e.g. 2h, 7d")
    parser.add_argument("--seed", type=int, help="random seed (same seed, site, scenario, start: same bytes)")
    parser.add_argument("--devices", type=int, default=0, help="scale the site up to N devices (load generation)")
    parser.add_argument("--dry-run", action="store_true", help="simulate without a broker; print the summary only")
    parser.add_argument("--site-id", help="publish under this site id (default: the site file's id, or "
                                          f"'{TEST_SITE_PREFIX}<id>' when the running stack watches that site)")
    parser.add_argument("--into-live-site", action="store_true",
                        help="publish under the live site's own id, beside its real (or simulated) devices: "
                             "what the stack shows for that site then mixes both")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    world = parser.add_argument_group("a world that goes on across runs (facmon up)")
    world.add_argument("--world", metavar="FILE",
                       help="continue the simulated world kept in FILE (made at the first run): publish only what "
                            "InfluxDB does not hold yet, at most --replay back, as fast as it goes, then go on live "
                            "(--speed is not used); --scenario is repeated from the world's origin, --duration is "
                            "how long the world lasts (default 30d)")
    world.add_argument("--replay", default="24h", help="with --world: how far back to fill what is missing "
                                                       "(default 24h)")
    world.add_argument("--script", help="with --world: a scenario (name or file) placed on the world at this "
                                        "run's start, e.g. day-in-the-life")
    world.add_argument("--wait-for", action="append", default=[], metavar="URL",
                       help="with --world: publish nothing until URL answers 200 (repeatable; e.g. the rules "
                            "engine's /readyz, so it is subscribed before the past it judges goes by)")
    world.add_argument("--script-replayed", action="store_true",
                       help="with --world: place --script so it ends now: it is replayed with the past at full speed")



def _parse_speed(text: str) -> float | None:
    if text in ("max", "inf", "0"):
        return None
    try:
        speed = float(text)
    except ValueError:
        raise SystemExit(f"--speed {text!r}: give a number (1 = live) or 'max'") from None
    if speed <= 0:
        raise SystemExit("--speed must be positive, or 'max'")
    return speed


def start_time(text: str | None, speed: float | None, duration_s: float, clock: Clock, tz: object) -> float:
    """The simulated start in epoch seconds (see the module docstring for the defaults)."""
    now = clock.now()
    if text is None:
        return float(int(now)) if speed == 1 else float(int(now - duration_s))
    if text == "now":
        return float(int(now))
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"--start {text!r} is not an ISO date/time such as 2026-03-02 or 2026-03-02T08:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)  # type: ignore[arg-type]
    return when.timestamp()


def _configured_site(config: FacmonConfig) -> str | None:
    """The one site of `sites.files`, None (the shipped park) when there is none."""
    files = config.sites.files
    if len(files) > 1:
        raise ValueError(f"sites.files lists {len(files)} sites and a simulation runs one: choose it with --site")
    return str(files[0]) if files else None


@dataclass(frozen=True)
class Destination:
    """Where a run publishes: under which site id, to which broker (None: no broker)."""

    site_id: str
    mqtt: MqttSettings | None
    said: str
    """The first line of the run's output."""


def site_id_for_tests(site_id: str) -> str:
    """The id a test run of live site `site_id` publishes under."""
    return (TEST_SITE_PREFIX + site_id)[:64]


def choose_site_id(site: Site, requested: str | None, into_live_site: bool, stack: LiveStack) -> str:
    """The site id a run publishes under (module docstring). Raises ValueError naming what to change."""
    if requested is not None and not ID_RE.match(requested):
        raise ValueError(f"--site-id {requested!r} is not a site id: lower case letters, digits, '_' and '-', "
                         f"starting with a letter or digit, at most 64 characters (e.g. {site_id_for_tests(site.id)})")
    if into_live_site:
        if requested is not None and requested != site.id:
            raise ValueError(f"--into-live-site publishes under the site file's id {site.id!r}; drop --site-id "
                             f"{requested}, or drop --into-live-site to publish under {requested!r}")
        return site.id
    chosen = requested or (site_id_for_tests(site.id) if stack.is_live(site.id) else site.id)
    if stack.is_live(chosen):
        raise ValueError(f"site {chosen!r} is live: the stack at {stack.broker_url} watches it "
                         f"({stack.live_sites[chosen].path}). A test run publishes under a site id of its own "
                         f"(default {site_id_for_tests(chosen)}); to write into the live site itself, add "
                         "--into-live-site")
    return chosen


def destination(args: argparse.Namespace, config: FacmonConfig, site: Site, injected: bool) -> Destination:
    """Site id and broker of this run. Raises ValueError (or SiteFileError for sites.files) naming what to fix."""
    requested = getattr(args, "site_id", None)
    into_live = bool(getattr(args, "into_live_site", False)) or config.simulate.into_live_site
    if injected or args.dry_run:
        site_id = choose_site_id(site, requested, into_live, LiveStack(config.mqtt, ""))
        return Destination(site_id, None, f"facmon simulate: site {site_id}, "
                                          f"{'dry run, no broker' if args.dry_run else 'to the given publisher'}")
    stack = find_live_stack(config)
    site_id = choose_site_id(site, requested, into_live, stack)
    kind = ("the live site itself (--into-live-site)" if stack.is_live(site_id)
            else "a test site" if site_id != site.id else "the site file's id")
    return Destination(site_id, stack.mqtt, f"facmon simulate: site {site_id} ({kind}) to {stack.broker_url}, "
                                            f"{stack.broker_origin}")


def run(args: argparse.Namespace, config: FacmonConfig, clock: Clock | None = None,
        publisher: Publisher | None = None) -> int:
    clock = clock or SystemClock()
    settings = config.simulate
    try:
        site_path = resolve_site(args.site or _configured_site(config))
        site = load_site(site_path)
        physics_of_site(site)  # a bad `simulation:` section is a clear error now, not a traceback later
        scenario_path = resolve_scenario(args.scenario or settings.scenario)
        scenario = load_scenario(scenario_path)
        check_scenario_against(scenario_path, scenario, site)
        from core.durations import parse_duration
        duration_s = parse_duration(args.duration) if args.duration else scenario.duration
        where = destination(args, config, site, injected=publisher is not None)
    except (SiteFileError, ValueError) as err:
        print(f"facmon simulate: {err}", file=sys.stderr)
        return 2
    print(where.said, flush=True)
    site = site.model_copy(update={"id": where.site_id})
    if args.devices:
        site = scale_site(site, args.devices)
    world = getattr(args, "world", None)  # tests build the namespace without the world's options
    found: dict[DeviceKey, bytes] | None = None
    if publisher is None:
        if where.mqtt is None:
            publisher = MemoryPublisher(keep=False)
        else:
            if not world:  # a world is the live site itself: no statuses of others to leave as found
                try:
                    found = read_statuses(where.mqtt, clock, where.site_id)
                except StatusesUnreachable as err:
                    print(f"facmon simulate: {err}", file=sys.stderr)
                    return 3
            # A token per run: a broker closes a session when another connects with its client id.
            publisher = WithoutFarewell(MqttPublisher(
                where.mqtt, clock, client_id_prefix=f"{settings.client_id_prefix}-{secrets.token_hex(3)}",
                max_connections=settings.max_connections, max_inflight=settings.max_inflight,
                connect_attempts=settings.connect_attempts))
    if world:
        return _continue_world(args, config, site, publisher, clock)
    speed = _parse_speed(args.speed)
    start_s = start_time(args.start, speed, duration_s, clock, site.tz)
    seed = settings.seed if args.seed is None else args.seed
    simulation = Simulation(site, scenario, seed, start_s, step_s=settings.step_s,
                            occupancy_every=settings.occupancy_every_steps, duration_s=duration_s)
    progress = None if args.quiet or not sys.stderr.isatty() else _progress_bar(duration_s, site)
    try:
        summary = run_simulation(simulation, publisher, clock, speed, progress)
    except BrokerUnreachable as err:
        print(f"facmon simulate: {err}", file=sys.stderr)
        return 3
    finally:
        if found is not None and where.mqtt is not None:
            left_as_found = _leave_statuses_as_found(where.mqtt, clock, simulation.devices, found)
    if progress is not None:
        print(file=sys.stderr)
    print(format_summary(summary, site, scenario.name, seed))
    if found is not None:
        skipped = publisher.skipped if isinstance(publisher, WithoutFarewell) else 0
        print(f"{left_as_found}; farewell `offline`s not published: {skipped}")
    return 0


_OFFLINE = STATUS_OFFLINE.encode()


def is_farewell(message: Message) -> bool:
    """The simulation's `offline` for a device at the end of the run: the one retained `offline` it
    publishes itself (a device that dies mid-run leaves through its last will, `will` set)."""
    return message.retain and not message.will and message.payload == _OFFLINE


class WithoutFarewell:
    """A `Publisher` that publishes everything but the farewells (`is_farewell`): a run that leaves
    the statuses as it found them ends without every device announcing itself offline first."""

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self.skipped = 0

    def open(self, devices: Sequence[DeviceKey]) -> None:
        self._publisher.open(devices)

    def publish_step(self, messages: Sequence[Message]) -> None:
        kept = [message for message in messages if not is_farewell(message)]
        self.skipped += len(messages) - len(kept)
        self._publisher.publish_step(kept)

    def close(self) -> None:
        self._publisher.close()

    def wait_all_acked(self, timeout_s: float = 30.0) -> int:
        """The wrapped publisher's barrier (`MqttPublisher.wait_all_acked`), 0 when it has none."""
        wait = getattr(self._publisher, "wait_all_acked", None)
        return wait(timeout_s) if wait is not None else 0


def _leave_statuses_as_found(mqtt: MqttSettings, clock: Clock, devices: list[DeviceKey],
                             found: dict[DeviceKey, bytes]) -> str:
    """Restore each device's retained status as the run found it (clear it where there was none)."""
    statuses = {device: found.get(device, b"") for device in devices}
    restored = sum(1 for payload in statuses.values() if payload)
    try:
        write_statuses(mqtt, clock, statuses)
    except StatusesUnreachable as err:
        print(f"facmon simulate: the retained statuses of {len(statuses)} devices were not left as found: {err}",
              file=sys.stderr)
        return "retained statuses: NOT left as found (see the error above)"
    return f"retained statuses left as found: {restored} restored, {len(statuses) - restored} cleared"


def _progress_bar(duration_s: float, site: object) -> object:
    def show(step: Step, summary: Summary) -> None:
        if int(summary.sim_seconds) % 600 and step.events == []:
            return
        done = min(1.0, summary.sim_seconds / duration_s) if duration_s else 1.0
        bar = "#" * int(done * 30)
        local = site.local_time(step.t).strftime("%Y-%m-%d %H:%M")  # type: ignore[attr-defined]
        print(f"\r[{bar:<30}] {done:4.0%} {local} {summary.messages} messages", end="", file=sys.stderr, flush=True)

    return show


def format_summary(summary: Summary, site: object, scenario: str, seed: int) -> str:
    lines = [f"scenario {scenario} (seed {seed}): {summary.sim_seconds / 3600:.1f} h simulated, "
             f"{summary.messages} messages"]
    for kind, count in sorted(summary.readings_by_kind.items()):
        lines.append(f"  {kind:<10} {count:>9} readings")
    lines.append(f"  {'status':<10} {summary.status_messages:>9} messages")
    if summary.malformed:
        lines.append(f"  malformed  {sum(summary.malformed.values()):>9} ("
                     + ", ".join(f"{r} {n}" for r, n in sorted(summary.malformed.items())) + ")")
    lines.append(f"events fired: {len(summary.events)}")
    for t, event in summary.events:
        lines.append(f"  {site.local_time(t).strftime('%Y-%m-%d %H:%M')}  {event}")  # type: ignore[attr-defined]
    return "\n".join(lines)


def _continue_world(args: argparse.Namespace, config: FacmonConfig, site: Site, publisher: Publisher,
                    clock: Clock) -> int:
    """`--world`: the world of simulators/timeline.py, going on from what InfluxDB holds."""
    from core.durations import parse_duration
    from core.influxql import InfluxError, influxql_client_for
    from simulators.stored import stored_ends
    from simulators.timeline import (
        FAST_FORWARD_MAX_S,
        Episode,
        continue_or_begin,
        grid_ceil,
        load_timeline,
        publish_from,
        run_world,
        save_timeline,
        script_start,
        simulation_of,
    )

    settings = config.simulate
    path = Path(args.world)
    try:
        replay_s = parse_duration(args.replay)
        duration_s = parse_duration(args.duration or "30d")
        base = args.scenario or settings.scenario
        saved = load_timeline(path)
        scripted = load_scenario(resolve_scenario(args.script)) if args.script else None
    except (SiteFileError, ValueError) as err:
        print(f"facmon simulate: {err}", file=sys.stderr)
        return 2
    for url in args.wait_for:
        if not _answers(url, clock, WAIT_FOR_S):
            print(f"facmon simulate: {url} did not answer 200 within {WAIT_FOR_S:g} s; is that stage running?",
                  file=sys.stderr)
            return 3
    try:
        with influxql_client_for(config.influxdb) as influx:
            ends = stored_ends(influx, site.id)
    except InfluxError as err:
        # Without knowing what is stored, publishing could write a second history over the first.
        print(f"facmon simulate: cannot ask InfluxDB where the stored history ends ({err}); check influxdb.* "
              "and that InfluxDB is running", file=sys.stderr)
        return 3
    now = clock.now()
    seed = settings.seed if args.seed is None else args.seed
    timeline = continue_or_begin(saved, site, seed, settings.step_s, base, ends, now, replay_s, duration_s,
                                 FAST_FORWARD_MAX_S)
    starts = publish_from(timeline, ends, now, replay_s)
    if scripted is not None:
        if args.script_replayed:
            at = max(grid_ceil(now - scripted.duration, timeline.step_s), min(starts.values()))
        else:
            at = script_start(starts, [d.id for d in iter_devices(site)], now, timeline.step_s)
        timeline = timeline.with_episode(Episode(args.script, at))
    save_timeline(path, timeline)

    def load(name: str) -> Scenario:
        return load_scenario(resolve_scenario(name))

    simulation = simulation_of(timeline, site, load, occupancy_every=settings.occupancy_every_steps)
    print(f"world {path}: origin {site.local_time(timeline.origin_s):%Y-%m-%d %H:%M}, publishing from "
          f"{site.local_time(min(starts.values())):%Y-%m-%d %H:%M:%S} "
          f"({len(ends)} devices have stored history)", flush=True)
    if scripted is not None:
        print(f"script {args.script} from {site.local_time(at):%H:%M:%S} site time", flush=True)
    began = clock.monotonic()
    caught_up: list[bool] = []

    def say_when_caught_up(step: Step, summary: Summary) -> None:
        if not caught_up and step.t + timeline.step_s > clock.now():
            caught_up.append(True)
            print(f"caught up with the present: {summary.messages} messages published in "
                  f"{clock.monotonic() - began:.0f} s; live from now", flush=True)

    try:
        summary = run_world(simulation, starts, publisher, clock, on_step=say_when_caught_up,
                            barrier=getattr(publisher, "wait_all_acked", None))  # in-memory ones have no flight
    except BrokerUnreachable as err:
        print(f"facmon simulate: {err}", file=sys.stderr)
        return 3
    print(format_summary(summary, site, "world", seed))
    return 0


WAIT_FOR_S = 120.0


def _answers(url: str, clock: Clock, within_s: float) -> bool:
    """Whether `url` answers 200 within `within_s` (asked every half second)."""
    import urllib.error
    import urllib.request

    deadline = clock.monotonic() + within_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):  # not listening yet, or 503 while not ready
            pass
        if clock.monotonic() >= deadline:
            return False
        clock.sleep(0.5)
