"""A site + scenario + seed → the exact stream of MQTT messages its devices publish, step by step.

`Simulation.steps()` is pure given its inputs: no clock, no I/O. The run loop (simulators/run.py)
paces it against a clock and hands the messages to a publisher. The same site, scenario, seed and
start give the same bytes, every time.

Per step (default 10 s of simulated time): scenario actions due by now fire; occupancy sensors move;
inverters step with the site's occupancy driving their load and their generators' AC input; generators
step with their inverter's grid and battery; uplinks step with their router's power;
each device's reading is encoded with the wire contract and passed through its delivery quirks
(clock skew, duplicates, swaps, late delivery) from scenario events.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

import numpy as np

from core.contract import STATUS_OFFLINE, STATUS_ONLINE, DeviceKey, Kind, Reading, encode_payload, format_ts
from core.site import Generator, Inverter, OccupancySensor, Plug, Site, Uplink, iter_devices
from simulators import scenario as sc
from simulators.context import StepContext, ambient_c, office_profile
from simulators.generator import GeneratorFleet, GeneratorModel
from simulators.inverter import InverterFleet
from simulators.malformed import malformed_messages
from simulators.occupancy import OccupancyFleet
from simulators.plug import PlugFleet
from simulators.sun import clear_sky_irradiance_w_m2, solar_elevation_deg
from simulators.uplink import FIBER_CUT, UplinkFleet, UplinkOverrides

_Fed = TypeVar("_Fed", Uplink, Plug)


class Message(NamedTuple):
    """One MQTT publish. `will`: this is the device dying; a publisher with a connection per device
    delivers it by dropping that connection so the broker publishes the last will instead.
    `expected_reject`: the collector must reject this message with that reason.

    A named tuple, not a frozen dataclass: one is made per reading, and a frozen dataclass's
    `__init__` (an `object.__setattr__` per field) cost 2 µs of the ~30 µs a reading took."""

    topic: str
    payload: bytes
    retain: bool = False
    device: DeviceKey | None = None
    will: bool = False
    expected_reject: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    t: float
    messages: list[Message]
    events: list[str]


@dataclass
class _Delivery:
    """A device's delivery quirks, set by scenario events."""

    skew_s: float = 0.0
    duplicates_left: int = 0
    swaps_left: int = 0
    held: Message | None = None
    late_left: int = 0
    late_delay_s: float = 0.0
    seq: int = 0
    silent: bool = False
    last: tuple[int, int, dict] | None = None
    """(ts_ms, seq, metrics) of the last reading, for malformed bursts (a `Reading` only when needed)."""


_QUIRKS = (sc.ClockSkew, sc.Duplicates, sc.OutOfOrder, sc.Late)
"""Scenario events that change how a device's readings are delivered (`_Delivery`)."""


@dataclass(order=True)
class _Action:
    t: float
    order: int
    description: str = field(compare=False)
    apply: object = field(compare=False)


def scale_site(site: Site, devices: int) -> Site:
    """`site` with its devices cloned round-robin until it has `devices` devices (at least its own).
    Clone k of device `x` is `x-k`; clones' uplinks are powered by the clone of the same number."""
    own = sum(1 for _ in iter_devices(site))
    if devices <= own:
        return site
    copies = -(-devices // own)
    inverters: list[Inverter] = []
    uplinks: list[Uplink] = []
    sensors: list[OccupancySensor] = []
    generators: list[Generator] = []
    plugs: list[Plug] = []
    made = 0
    for k in range(copies):
        suffix = "" if k == 0 else f"-{k}"
        for inv in site.inverters:
            if made < devices:
                inverters.append(inv.model_copy(update={"id": inv.id[:58] + suffix}))
                made += 1
        for up in site.uplinks:
            if made < devices:
                uplinks.append(_clone_powered(up, suffix, inverters))
                made += 1
        for occ in site.occupancy_sensors:
            if made < devices:
                sensors.append(occ.model_copy(update={"id": occ.id[:58] + suffix}))
                made += 1
        for gen in site.generators:
            if made < devices:
                feeds = gen.feeds[:58] + suffix
                if feeds not in {i.id for i in inverters}:
                    feeds = gen.feeds
                generators.append(gen.model_copy(update={"id": gen.id[:58] + suffix, "feeds": feeds}))
                made += 1
        for plug in site.plugs:
            if made < devices:
                plugs.append(_clone_powered(plug, suffix, inverters))
                made += 1
    return site.model_copy(update={"inverters": tuple(inverters), "uplinks": tuple(uplinks),
                                   "occupancy_sensors": tuple(sensors), "generators": tuple(generators),
                                   "plugs": tuple(plugs)})


def _clone_powered(device: _Fed, suffix: str, inverters: list[Inverter]) -> _Fed:
    """Clone `suffix` of a device fed by an inverter: fed by that inverter's clone of the same number when
    there is one, else by the original."""
    powered = None if device.powered_by is None else device.powered_by[:58] + suffix
    if powered is not None and powered not in {i.id for i in inverters}:
        powered = device.powered_by
    return device.model_copy(update={"id": device.id[:58] + suffix, "powered_by": powered})


class Simulation:
    """Deterministic message stream of `site` under `scenario` from `start_s` for `duration_s`."""

    def __init__(self, site: Site, scenario: sc.Scenario, seed: int, start_s: float, *,
                 step_s: float = 10.0, occupancy_every: int = 3, duration_s: float | None = None) -> None:
        self.site = site
        self.scenario = scenario
        self.seed = seed
        self.start_s = float(start_s)
        self.step_s = step_s
        self.occupancy_every = occupancy_every
        self.duration_s = scenario.duration if duration_s is None else duration_s
        self.end_s = self.start_s + self.duration_s
        self.inverter_fleet = InverterFleet(site.inverters, seed, dict(scenario.initial.battery_soc_pct))
        self.inverters = {o.spec.id: o for o in self.inverter_fleet.overrides}
        self.uplink_fleet = UplinkFleet(site.uplinks, seed)
        self.uplinks = {o.spec.id: o for o in self.uplink_fleet.overrides}
        self.occupancy = OccupancyFleet(site.occupancy_sensors, seed)
        self._sensor_index = {o.id: index for index, o in enumerate(site.occupancy_sensors)}
        inverter_index = {inv.id: index for index, inv in enumerate(site.inverters)}
        self.generator_fleet = GeneratorFleet(site.generators, inverter_index, seed, site.id)
        self.generators: dict[str, GeneratorModel] = {m.spec.id: m for m in self.generator_fleet.models}
        self.plug_fleet = PlugFleet(site.plugs, seed)
        self._plug_ids = [p.id for p in site.plugs]
        self._plug_powered_by = _feeding_inverters(site.plugs, inverter_index)
        self.keys = {**{d: DeviceKey(site.id, Kind.INVERTER, d) for d in self.inverters},
                     **{d: DeviceKey(site.id, Kind.UPLINK, d) for d in self.uplinks},
                     **{d: DeviceKey(site.id, Kind.OCCUPANCY, d) for d in self._sensor_index},
                     **{d: DeviceKey(site.id, Kind.GENERATOR, d) for d in self.generators},
                     **{d: DeviceKey(site.id, Kind.PLUG, d) for d in self._plug_ids}}
        self._powered_by = _feeding_inverters(site.uplinks, inverter_index)
        """Per uplink, the index of the inverter powering its router (-1: its own supply)."""
        self.delivery = {d: _Delivery() for d in self.keys}
        self._outputs = {d: (self.delivery[d], key, key.kind, key.reading_topic()) for d, key in self.keys.items()}
        self._quirky = {e.device for e in scenario.events if isinstance(e, _QUIRKS)}
        """Devices whose delivery a scenario event changes; the others take the short path."""
        self._capacity = sum(o.capacity for o in site.occupancy_sensors)
        margin = 86_400.0
        self._open = site.opening_hours.intervals(site.tz, site.local_time(self.start_s - margin).date(),
                                                  int(self.duration_s // 86_400) + 4)
        self._shed = site.shedding_windows(self.start_s - margin, self.end_s + margin)
        self._actions = self._schedule()
        self._late: list[tuple[float, int, Message]] = []
        self._late_order = 0
        self._pending: list[Message] = []

    @property
    def devices(self) -> list[DeviceKey]:
        return list(self.keys.values())

    # --- scenario actions ---------------------------------------------------------------------

    def _schedule(self) -> list[_Action]:
        actions: list[_Action] = []
        for index, event in enumerate(self.scenario.events):
            at = self.start_s + event.offset_s(self.site, self.start_s)
            begin, end = self._effects(event)
            label = f"{event.type} {getattr(event, 'device', '') or ','.join(getattr(event, 'devices', ()))}".strip()
            actions.append(_Action(at, 2 * index, f"{label} starts" if end else label, begin))
            duration = getattr(event, "duration", None)
            if end is not None and duration is not None:
                actions.append(_Action(at + duration, 2 * index + 1, f"{label} ends", end))
        return sorted(actions + self._maintenance_actions(2 * len(self.scenario.events)))

    def _maintenance_actions(self, first_order: int) -> list[_Action]:
        """The ISPs keep their announcements: each uplink's declared maintenance windows (site file)
        take its link down (nothing comes back) from start to end."""
        actions: list[_Action] = []
        for uplink in self.site.uplinks:
            model = self.uplinks[uplink.id]
            for start, end in uplink.maintenance_intervals(self.site.tz):
                if end <= self.start_s or start >= self.end_s:
                    continue
                order = first_order + len(actions)
                actions.append(_Action(start, order, f"maintenance {uplink.id} starts",
                                       lambda m=model: m.outages.append(FIBER_CUT)))
                actions.append(_Action(end, order + 1, f"maintenance {uplink.id} ends",
                                       lambda m=model: m.outages.remove(FIBER_CUT)))
        return actions

    def _effects(self, event: object) -> tuple[object, object | None]:
        match event:
            case sc.GridOutage() | sc.Clouds():
                targets = [self.inverters[d] for d in (event.devices or tuple(self.inverters)) if d in self.inverters]
                if isinstance(event, sc.GridOutage):
                    return (lambda: [setattr(m, "forced_grid_outages", m.forced_grid_outages + 1) for m in targets],
                            lambda: [setattr(m, "forced_grid_outages", m.forced_grid_outages - 1) for m in targets])
                factor = event.pv_factor
                return (lambda: [setattr(m, "scenario_pv_factor", factor) for m in targets],
                        lambda: [setattr(m, "scenario_pv_factor", 1.0) for m in targets])
            case sc.UplinkOutage():
                model, mode = self.uplinks[event.device], event.mode
                return lambda: model.outages.append(mode), lambda: model.outages.remove(mode)
            case sc.UplinkDegraded():
                model = self.uplinks[event.device]

                def degrade(m: UplinkOverrides = model, e: sc.UplinkDegraded = event) -> None:
                    m.forced_degraded += 1
                    m.degraded_rtt_factor, m.degraded_extra_loss_pct = e.rtt_factor, e.extra_loss_pct

                return degrade, lambda: setattr(model, "forced_degraded", model.forced_degraded - 1)
            case sc.SensorSilent():
                device = event.device
                return lambda: self._set_silent(device, True), lambda: self._set_silent(device, False)
            case sc.RoomOccupied():
                forced, index, people = self.occupancy.forced_people, self._sensor_index[event.device], event.people
                return (lambda: forced.__setitem__(index, forced[index] + people),
                        lambda: forced.__setitem__(index, forced[index] - people))
            case sc.InverterFault():
                inv = self.inverters[event.device]
                if event.fault == "over_temperature":
                    return (lambda: setattr(inv, "forced_over_temp", inv.forced_over_temp + 1),
                            lambda: setattr(inv, "forced_over_temp", inv.forced_over_temp - 1))
                extra = inv.spec.rated_w * 0.6
                return (lambda: setattr(inv, "extra_load_w", inv.extra_load_w + extra),
                        lambda: setattr(inv, "extra_load_w", inv.extra_load_w - extra))
            case sc.GeneratorFault():
                generator = self.generators[event.device]
                counter = "forced_start_failures" if event.fault == "fail_to_start" else "forced_stuck_on"
                return (lambda: setattr(generator, counter, getattr(generator, counter) + 1),
                        lambda: setattr(generator, counter, getattr(generator, counter) - 1))
            case sc.ClockSkew():
                quirks, offset = self.delivery[event.device], event.offset
                return lambda: setattr(quirks, "skew_s", offset), lambda: setattr(quirks, "skew_s", 0.0)
            case sc.MalformedBurst():
                return lambda d=event.device, r=event.rounds: self._burst(d, r), None
            case sc.Duplicates():
                quirks, count = self.delivery[event.device], event.count
                return lambda: setattr(quirks, "duplicates_left", count), None
            case sc.OutOfOrder():
                quirks, count = self.delivery[event.device], event.count
                return lambda: setattr(quirks, "swaps_left", count), None
            case sc.Late():
                quirks, count, delay = self.delivery[event.device], event.count, event.delay
                return lambda: (setattr(quirks, "late_left", count), setattr(quirks, "late_delay_s", delay)), None
        raise TypeError(f"no effect for scenario event {event!r}")

    def _set_silent(self, device: str, silent: bool) -> None:
        self.delivery[device].silent = silent
        sensor = self._sensor_index.get(device)
        if sensor is not None:
            self.occupancy.forced_silent[sensor] += 1 if silent else -1
        key = self.keys[device]
        if silent:
            self._pending.append(Message(key.status_topic(), STATUS_OFFLINE.encode(), True, key, will=True))
        else:
            self._pending.append(Message(key.status_topic(), STATUS_ONLINE.encode(), True, key))

    def _burst(self, device: str, rounds: int) -> None:
        last = self.delivery[device].last
        if last is None:
            return
        reading = Reading(self.keys[device], *last)
        for _ in range(rounds):
            for bad in malformed_messages(reading):
                self._pending.append(Message(bad.topic, bad.payload, False, self.keys[device],
                                             expected_reject=bad.expected_reason))

    # --- stepping -----------------------------------------------------------------------------

    def _context(self, t: float, dt: float) -> StepContext:
        local = self.site.local_time(t)
        hour = local.hour + local.minute / 60 + local.second / 3600
        open_iv = _containing(self._open, t)
        since_open = None if open_iv is None else (t - open_iv[0]) / 3600
        to_close = None if open_iv is None else (open_iv[1] - t) / 3600
        elevation = solar_elevation_deg(t, self.site.latitude, self.site.longitude)
        return StepContext(t=t, dt=dt, local_hour=hour, weekday=local.weekday(), site_open=open_iv is not None,
                           scheduled_outage=_containing(self._shed, t) is not None,
                           irradiance_w_m2=clear_sky_irradiance_w_m2(elevation),
                           ambient_c=ambient_c(hour, local.timetuple().tm_yday),
                           expected_occupancy=office_profile(hour, local.weekday(), since_open, to_close))

    def context(self, t: float, dt: float) -> StepContext:
        """The site-wide conditions at `t` (for tests and tools)."""
        return self._context(t, dt)

    def advance(self, t: float, dt: float) -> tuple[list[str], dict[str, dict | None]]:
        """Fire due actions and step every model to `t`. Returns the events fired and each device's
        metrics (None for a silent device). Pure physics; no encoding. For tests and tools."""
        fired, metrics = self._advance(t, dt)
        return fired, {**self._occupancy_metrics(), **metrics}

    def _occupancy_metrics(self) -> dict[str, dict | None]:
        return dict(zip(self._sensor_index, self.occupancy.metrics(), strict=True))

    def _advance(self, t: float, dt: float) -> tuple[list[str], dict[str, dict | None]]:
        """`advance` without the occupancy sensors' metrics: they report every `occupancy_every` steps
        only, and building 600 dicts a step to throw most away cost ~5 % of a step."""
        fired = []
        while self._actions and self._actions[0].t <= t:
            action = self._actions.pop(0)
            action.apply()  # type: ignore[operator]
            fired.append(action.description)
        ctx = self._context(t, dt)
        self.occupancy.step(ctx)
        people = int(self.occupancy.people.sum())
        fraction = people / self._capacity if self._capacity else ctx.expected_occupancy
        fleet = self.inverter_fleet
        generators = self.generator_fleet
        if generators.models:
            inverters = fleet.step(ctx, fraction, generators.feeding(len(self.inverters)))
            readings = generators.step(ctx, fleet.grid_ok.tolist(), [m["battery_soc_pct"] for m in inverters],
                                       fleet.flows[1].tolist())
        else:
            inverters, readings = fleet.step(ctx, fraction), []
        metrics: dict[str, dict | None] = dict(zip(self.inverters, inverters, strict=True))
        metrics.update(zip(self.generators, readings, strict=True))
        site_powered = self.inverter_fleet.site_powered
        metrics.update(zip(self.uplinks, self.uplink_fleet.step(ctx, _fed(self._powered_by, site_powered)),
                           strict=True))
        if self._plug_ids:
            had_power = self.plug_fleet.has_power.tolist()
            plugs = self.plug_fleet.step(ctx, _fed(self._plug_powered_by, site_powered))
            metrics.update(zip(self._plug_ids, plugs, strict=True))
            # A plug that loses power drops off the broker, which publishes its last will; back on power
            # it connects again and says it is online: a silence as a scenario makes one.
            for device, before, now in zip(self._plug_ids, had_power, self.plug_fleet.has_power.tolist(),
                                           strict=True):
                if before != now:
                    self._set_silent(device, not now)
        return fired, metrics

    def steps(self) -> Iterator[Step]:
        """Every step from the start to the end, inclusive of the start."""
        n_steps = int(self.duration_s // self.step_s)
        first = [Message(k.status_topic(), STATUS_ONLINE.encode(), True, k) for k in self.keys.values()]
        for i in range(n_steps + 1):
            t = self.start_s + i * self.step_s
            fired, metrics = self._advance(t, self.step_s)
            if i % self.occupancy_every == 0:
                metrics = {**self._occupancy_metrics(), **metrics}
            messages = first + self._pending
            first, self._pending = [], []
            self._deliver_all(t, metrics, messages)
            messages.extend(self._pending)
            self._pending = []
            while self._late and self._late[0][0] <= t:
                messages.append(heapq.heappop(self._late)[2])
            yield Step(t, messages, fired)
        final = [m for _, _, m in sorted(self._late)]
        final += [Message(k.status_topic(), STATUS_OFFLINE.encode(), True, k)
                  for d, k in self.keys.items() if not self.delivery[d].silent]
        yield Step(self.end_s, final, [])

    def _deliver_all(self, t: float, metrics: dict[str, dict | None], out: list[Message]) -> None:
        """Encode each device's reading for step `t` into `out` (through its quirks, if any)."""
        ts_ms = round(t * 1000)
        ts = format_ts(ts_ms)  # one timestamp for the whole step, unless a device's clock is skewed
        outputs, quirky = self._outputs, self._quirky
        for device, values in metrics.items():
            quirks, key, kind, topic = outputs[device]
            if values is None or quirks.silent:
                continue
            seq = quirks.seq
            quirks.seq = seq + 1
            if device not in quirky:
                quirks.last = (ts_ms, seq, values)
                out.append(Message(topic, encode_payload(kind, ts, seq, values), False, key))
                continue
            own_ts_ms = round((t + quirks.skew_s) * 1000)
            quirks.last = (own_ts_ms, seq, values)
            self._deliver_quirky(quirks, t, Message(topic, encode_payload(kind, format_ts(own_ts_ms), seq, values),
                                                    False, key), out)

    def _deliver_quirky(self, quirks: _Delivery, t: float, message: Message, out: list[Message]) -> None:
        if quirks.late_left > 0:
            quirks.late_left -= 1
            self._late_order += 1
            heapq.heappush(self._late, (t + quirks.late_delay_s, self._late_order, message))
            return
        if quirks.swaps_left > 0:
            if quirks.held is None:
                quirks.held = message
                return
            out.extend((message, quirks.held))
            quirks.held = None
            quirks.swaps_left -= 1
            return
        out.append(message)
        if quirks.duplicates_left > 0:
            quirks.duplicates_left -= 1
            out.append(message)


def _feeding_inverters(devices: tuple[Uplink, ...] | tuple[Plug, ...], inverter_index: dict[str, int]) -> np.ndarray:
    """Per device, the index of the inverter powering it (-1: not an inverter)."""
    return np.array([-1 if d.powered_by is None else inverter_index[d.powered_by] for d in devices], dtype=np.int64)


def _fed(powered_by: np.ndarray, site_powered: np.ndarray) -> list[bool]:
    """Per device fed by inverter `powered_by[i]` (-1: not by an inverter): does it have power?"""
    if not site_powered.size:
        return [True] * len(powered_by)
    return ((powered_by < 0) | site_powered[np.maximum(powered_by, 0)]).tolist()


def _containing(intervals: list[tuple[float, float]], t: float) -> tuple[float, float] | None:
    index = bisect.bisect_right(intervals, (t, float("inf"))) - 1
    if index >= 0 and intervals[index][0] <= t < intervals[index][1]:
        return intervals[index]
    return None
