"""Scenario files: events on a timeline, run against a site.

    name: load-shedding-day
    description: An ordinary day of scheduled load-shedding, plus one long unscheduled outage.
    duration: 24h
    initial: {battery_soc_pct: {inv-main: 70}}
    events:
      - {at: "14:00", type: grid_outage, duration: 2h}        # local time of day, first one after the start
      - {at: "+15h10m", type: uplink_outage, device: uplink-ptcl, duration: 40m, mode: fiber_cut}

`at` is either a local time of day ("HH:MM" or "HH:MM:SS", the first such moment at or after the
run's start, plus `day` whole days) or an offset from the start ("+90s", "+2h30m", "+1d"). The run
starting at any time of day therefore still has its 14:00 outage at 14:00 local time.

`load_scenario(path)` raises `SiteFileError` naming the file, line and problem;
`scenario_problems(scenario, site)` lists events naming devices the site does not have.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.contract import KINDS
from core.durations import parse_duration, parse_optional_duration
from core.site import (
    DeviceId,
    Location,
    Site,
    SiteFileError,
    describe_validation_error,
    iter_devices,
    line_of,
    read_yaml_with_lines,
)

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
SITE_DIR = Path(__file__).resolve().parent / "sites"
DEFAULT_SITE = SITE_DIR / "park.yaml"

_CLOCK_RE = re.compile(r"\A(\d{1,2}):(\d{2})(?::(\d{2}))?\Z")


Duration = Annotated[float, Field(ge=0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Event(_Frozen):
    at: str
    day: int = Field(0, ge=0, le=366, description="whole days after the first matching time of day")

    @field_validator("at")
    @classmethod
    def _check_at(cls, value: str) -> str:
        if value.startswith("+"):
            parse_duration(value[1:])
            return value
        match = _CLOCK_RE.match(value)
        if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59 or int(match.group(3) or 0) > 59:
            raise ValueError(f"at {value!r} is neither a local time 'HH:MM' nor an offset like '+2h30m'")
        return value

    def offset_s(self, site: Site, start_s: float) -> float:
        """Seconds from `start_s` to this event."""
        if self.at.startswith("+"):
            return parse_duration(self.at[1:]) + self.day * 86_400
        h, m, s = (int(x or 0) for x in _CLOCK_RE.match(self.at).groups())  # type: ignore[union-attr]
        start = site.local_time(start_s)
        when = datetime.combine(start.date(), time(h, m, s), start.tzinfo)
        if when.timestamp() < start_s:
            when = datetime.combine(start.date() + timedelta(days=1), time(h, m, s), start.tzinfo)
        return when.timestamp() - start_s + self.day * 86_400


class _Timed(_Event):
    duration: Duration | None = None
    """Seconds (the file says '2h'); null: for the rest of the run."""

    @field_validator("duration", mode="before")
    @classmethod
    def _parse_duration(cls, value: Any) -> Any:
        return parse_optional_duration(value)


class GridOutage(_Timed):
    """An unscheduled grid outage at the listed inverters (all when `devices` is empty)."""

    type: Literal["grid_outage"]
    devices: tuple[DeviceId, ...] = ()


class Clouds(_Timed):
    type: Literal["clouds"]
    devices: tuple[DeviceId, ...] = ()
    pv_factor: float = Field(0.3, ge=0, le=1)


class UplinkOutage(_Timed):
    """`fiber_cut`: the link stays up but nothing comes back; `link_down`: the interface loses carrier."""

    type: Literal["uplink_outage"]
    device: DeviceId
    mode: Literal["fiber_cut", "link_down"] = "fiber_cut"


class UplinkDegraded(_Timed):
    type: Literal["uplink_degraded"]
    device: DeviceId
    rtt_factor: float = Field(3.0, ge=1, le=100)
    extra_loss_pct: float = Field(5.0, ge=0, le=100)


class SensorSilent(_Timed):
    """The sensor stops reporting (dead); the broker publishes its last will `offline`."""

    type: Literal["sensor_silent"]
    device: DeviceId


class RoomOccupied(_Timed):
    """People in the room (at least `people`; a PIR sensor reports occupied) while it lasts, whatever
    the hour: a cleaner, a late meeting, or someone in an empty building after hours."""

    type: Literal["room_occupied"]
    device: DeviceId
    people: int = Field(2, ge=1, le=10_000)


class InverterFault(_Timed):
    """`over_temperature`: the heatsink heats past the trip point; `overload`: extra load past the rating."""

    type: Literal["inverter_fault"]
    device: DeviceId
    fault: Literal["over_temperature", "overload"]


class GeneratorFault(_Timed):
    """`fail_to_start`: every start attempt fails while it lasts; `stuck_on`: once running, the
    controller's auto-stop does not stop it (it runs on after the grid returns)."""

    type: Literal["generator_fault"]
    device: DeviceId
    fault: Literal["fail_to_start", "stuck_on"]


class ClockSkew(_Timed):
    """The device's clock runs `offset` ahead (negative: behind) of simulated time."""

    type: Literal["clock_skew"]
    device: DeviceId
    offset: float = 600.0

    @field_validator("offset", mode="before")
    @classmethod
    def _parse_offset(cls, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("-"):
            return -parse_duration(value[1:])
        return parse_duration(value)


class MalformedBurst(_Event):
    """Publish each payload of the malformed catalog (simulators/malformed.py) `rounds` times."""

    type: Literal["malformed_burst"]
    device: DeviceId
    rounds: int = Field(1, ge=1, le=10_000)


class Duplicates(_Event):
    """The device's next `count` readings are each published twice (same bytes)."""

    type: Literal["duplicates"]
    device: DeviceId
    count: int = Field(10, ge=1, le=100_000)


class OutOfOrder(_Event):
    """The device's next `count` pairs of readings are published swapped."""

    type: Literal["out_of_order"]
    device: DeviceId
    count: int = Field(5, ge=1, le=100_000)


class Late(_Event):
    """The device's next `count` readings are held back and published `delay` later (a flaky link)."""

    type: Literal["late"]
    device: DeviceId
    count: int = Field(10, ge=1, le=100_000)
    delay: Duration = 600.0

    @field_validator("delay", mode="before")
    @classmethod
    def _parse_delay(cls, value: Any) -> Any:
        return parse_duration(value)


Event = Annotated[
    GridOutage | Clouds | UplinkOutage | UplinkDegraded | SensorSilent | RoomOccupied | InverterFault | GeneratorFault
    | ClockSkew | MalformedBurst | Duplicates | OutOfOrder | Late,
    Field(discriminator="type"),
]
EVENT_TYPES = ("grid_outage", "clouds", "uplink_outage", "uplink_degraded", "sensor_silent", "room_occupied",
               "inverter_fault", "generator_fault", "clock_skew", "malformed_burst", "duplicates", "out_of_order",
               "late")


class Initial(_Frozen):
    battery_soc_pct: dict[DeviceId, Annotated[float, Field(ge=0, le=100)]] = {}


class Scenario(_Frozen):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    description: str = ""
    duration: Duration
    initial: Initial = Initial()
    events: tuple[Event, ...] = ()

    @field_validator("duration", mode="before")
    @classmethod
    def _parse_duration(cls, value: Any) -> Any:
        return parse_duration(value)


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario file. Raises `SiteFileError` (file, line, what is wrong)."""
    path = Path(path)
    data, lines = read_yaml_with_lines(path, "scenario")
    if not isinstance(data, dict):
        raise SiteFileError(f"{path}:1: a scenario file is a mapping (name:, duration:, events:)")
    events = data.get("events")
    if isinstance(events, list):  # name the unknown type clearly instead of pydantic's union noise
        for index, event in enumerate(events):
            if isinstance(event, dict) and event.get("type") not in EVENT_TYPES:
                raise SiteFileError(f"{path}:{line_of(lines, ('events', index, 'type')) or '?'}: events.{index}.type: "
                                    f"{event.get('type')!r} is not one of {', '.join(EVENT_TYPES)}")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        raise SiteFileError(describe_validation_error(_strip_union_tags(err), path, lines)) from None
    return scenario


def _strip_union_tags(err: ValidationError) -> ValidationError:
    # Discriminated unions insert the tag ("grid_outage") into error locations; the file has no such key.
    errors = []
    for problem in err.errors():
        loc = problem["loc"]
        if len(loc) >= 3 and loc[0] == "events" and loc[2] in EVENT_TYPES:
            problem = {**problem, "loc": (*loc[:2], *loc[3:])}
        errors.append(problem)
    return ValidationError.from_exception_data(err.title, errors)  # type: ignore[arg-type]


def scenario_problems(scenario: Scenario, site: Site) -> list[tuple[Location, str]]:
    """Events that name devices the site lacks, or devices of the wrong kind."""
    kinds = {device.id: KINDS[device.kind].title.lower() for device in iter_devices(site)}
    wanted = {GridOutage: "inverter", Clouds: "inverter", UplinkOutage: "uplink", UplinkDegraded: "uplink",
              SensorSilent: "room", RoomOccupied: "room", InverterFault: "inverter", GeneratorFault: "generator"}
    problems: list[tuple[Location, str]] = []
    for index, event in enumerate(scenario.events):
        names = getattr(event, "devices", None) or ((event.device,) if hasattr(event, "device") else ())
        for name in names:
            kind = kinds.get(name)
            need = wanted.get(type(event))
            if kind is None:
                problems.append((("events", index, "device" if hasattr(event, "device") else "devices"),
                                 f"site {site.id!r} has no device {name!r} (it has {', '.join(sorted(kinds))})"))
            elif need is not None and kind != need:
                problems.append((("events", index, "device" if hasattr(event, "device") else "devices"),
                                 f"{event.type} needs a device of kind {need!r}, but {name!r} is of kind {kind!r}"))
    for name in scenario.initial.battery_soc_pct:
        if kinds.get(name) != "inverter":
            problems.append((("initial", "battery_soc_pct", name), f"{name!r} is not an inverter of site {site.id!r}"))
    return problems


def check_scenario_against(path: Path, scenario: Scenario, site: Site) -> None:
    """Raise `SiteFileError` with lines from `path` if the scenario does not fit `site`."""
    problems = scenario_problems(scenario, site)
    if problems:
        _, lines = read_yaml_with_lines(path, "scenario")
        raise SiteFileError("\n".join(f"{path}:{line_of(lines, loc) or '?'}: {'.'.join(map(str, loc))}: {message}"
                                      for loc, message in problems))


def named_scenarios() -> dict[str, Path]:
    """The shipped scenarios by name (file stem)."""
    return {p.stem: p for p in sorted(SCENARIO_DIR.glob("*.yaml"))}


def resolve_scenario(name_or_path: str) -> Path:
    """A shipped scenario's name, or a path to a scenario file."""
    shipped = named_scenarios()
    if name_or_path in shipped:
        return shipped[name_or_path]
    path = Path(name_or_path)
    if path.exists():
        return path
    raise SiteFileError(f"no scenario {name_or_path!r}: give a file path or one of {', '.join(shipped)}")


def resolve_site(name_or_path: str | None) -> Path:
    if name_or_path is None:
        return DEFAULT_SITE
    shipped = {p.stem: p for p in SITE_DIR.glob("*.yaml")}
    if name_or_path in shipped:
        return shipped[name_or_path]
    path = Path(name_or_path)
    if path.exists():
        return path
    raise SiteFileError(f"no site {name_or_path!r}: give a file path or one of {', '.join(sorted(shipped))}")
