"""The site description: one YAML file per site saying what is there and when things happen.

    id: park                          # contract id ([a-z0-9][a-z0-9_-]{0,63})
    name: ٹیکنالوجی پارک               # display name, any script
    timezone: Asia/Karachi            # IANA zone; opening hours and schedules are local time
    latitude: 29.8
    longitude: 71.8
    opening_hours:                    # per weekday (mon..sun), or `daily`; a listed day overrides `daily`
      daily: ["09:00-18:00"]
      sun: []                         # closed
    load_shedding:                    # the published schedule, same shape; "22:00-02:00" crosses midnight
      daily: ["10:00-11:00", "16:00-17:00"]
    inverters:   [{id: inv-main, battery_kwh: 15, pv_kwp: 10, rated_w: 8000}]
    uplinks:     [{id: uplink-a, isp: PTCL, iface: eth1, role: primary, powered_by: inv-main,
                   sla_pct: 99.5,                # contracted availability (reports); optional
                   maintenance: [{start: "2026-11-12 02:00", end: "2026-11-12 04:00", note: "PTCL notice 41"}]}]
    occupancy_sensors: [{id: occ-room-1, room: کمرہ 1, capacity: 12}]
    generators:  [{id: gen-main, feeds: inv-main, rated_w: 10000, tank_l: 50, auto_start_soc_pct: 30}]
    plugs:       [{id: plug-router, name: Router, rated_w: 18, powered_by: inv-main}]
    tariffs: {currency: PKR, grid_per_kwh: 62, diesel_per_litre: 285}   # optional; the reports' costs

`load_site(path)` returns a frozen, validated `Site` or raises `SiteFileError` naming the file, the
line and what is wrong. The simulators build devices from it; the rules engine asks it whether the
grid is *expected* to be out (`in_load_shedding`, `next_grid_return`) and whether the site is open
(`is_open`); the API serves it. Nothing here reads a clock: callers pass the time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from core.contract import ID_PATTERN, KINDS, MAX_LABEL_CHARS, METRICS, DeviceKey, Kind
from core.durations import parse_optional_duration
from core.yaml_limits import YamlLimitError, compose_yaml

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday keys in `datetime.weekday()` order (Monday is 0)."""
DEFAULT_TIMEZONE = "Asia/Karachi"
MINUTES_PER_DAY = 24 * 60

_WINDOW_RE = re.compile(r"\A\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*\Z")

DeviceId = Annotated[str, Field(pattern=rf"^{ID_PATTERN}$")]
Label = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_CHARS)]


class SiteFileError(ValueError):
    """A site (or scenario) file that cannot be used; the message names the file, the line and the problem."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeWindow(_Frozen):
    """A daily window in local time, written "HH:MM-HH:MM". `end_min` <= `start_min` means the window
    crosses midnight into the next day; "24:00" is allowed as an end. Start and end are equal only
    for "00:00-24:00"-style whole days, which are stored as 0..1440."""

    start_min: int = Field(ge=0, lt=MINUTES_PER_DAY)
    end_min: int = Field(ge=0, le=MINUTES_PER_DAY)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = _WINDOW_RE.match(value)
        if not match:
            raise ValueError(f"window {value!r} is not 'HH:MM-HH:MM' (e.g. '14:00-16:00')")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
            raise ValueError(f"window {value!r}: hours are 00-23 (24:00 only as an end), minutes 00-59")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if start == end:
            raise ValueError(f"window {value!r} is empty (start equals end)")
        return {"start_min": start, "end_min": end}

    @property
    def crosses_midnight(self) -> bool:
        return self.end_min <= self.start_min

    @property
    def duration_min(self) -> int:
        return self.end_min - self.start_min + (MINUTES_PER_DAY if self.crosses_midnight else 0)

    def __str__(self) -> str:
        return f"{self.start_min // 60:02d}:{self.start_min % 60:02d}-{self.end_min // 60:02d}:{self.end_min % 60:02d}"


class WeeklySchedule(_Frozen):
    """Windows per weekday in local time. `daily` applies to every weekday not listed by name."""

    daily: tuple[TimeWindow, ...] = ()
    mon: tuple[TimeWindow, ...] | None = None
    tue: tuple[TimeWindow, ...] | None = None
    wed: tuple[TimeWindow, ...] | None = None
    thu: tuple[TimeWindow, ...] | None = None
    fri: tuple[TimeWindow, ...] | None = None
    sat: tuple[TimeWindow, ...] | None = None
    sun: tuple[TimeWindow, ...] | None = None

    def windows_on(self, weekday: int) -> tuple[TimeWindow, ...]:
        """The windows that *start* on `weekday` (0 = Monday)."""
        own = getattr(self, WEEKDAYS[weekday])
        return self.daily if own is None else own

    def intervals(self, tz: ZoneInfo, first_day: date, days: int) -> list[tuple[float, float]]:
        """Absolute (start, end) epoch-second intervals of windows starting on `first_day` and the
        `days - 1` days after it, sorted, with touching or overlapping intervals merged."""
        raw: list[tuple[float, float]] = []
        for offset in range(days):
            day = first_day + timedelta(days=offset)
            midnight = datetime.combine(day, time(0), tz)
            for window in self.windows_on(day.weekday()):
                start = _local_minute(midnight, window.start_min)
                end = _local_minute(midnight, window.start_min + window.duration_min)
                raw.append((start, end))
        raw.sort()
        merged: list[tuple[float, float]] = []
        for start, end in raw:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged


def _local_minute(midnight: datetime, minute: int) -> float:
    """Epoch seconds of `minute` minutes into the local day starting at `midnight` (wall-clock
    arithmetic, so a DST day still puts 14:00 at 14:00)."""
    day = midnight.date() + timedelta(days=minute // MINUTES_PER_DAY)
    rest = minute % MINUTES_PER_DAY
    return datetime.combine(day, time(rest // 60, rest % 60), midnight.tzinfo).timestamp()


_LOCAL_DATETIME_FORMAT = "%Y-%m-%d %H:%M"


class MaintenanceWindow(_Frozen):
    """An outage the ISP announced, in the site's local time ("2026-11-12 02:00"): the reports count
    its minutes as maintenance, not as the ISP's downtime."""

    start: datetime
    end: datetime
    note: str = Field("", max_length=200, description="the ISP's notice (reference, reason)")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _parse_local(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return datetime.strptime(value.strip(), _LOCAL_DATETIME_FORMAT)
            except ValueError:
                raise ValueError(f"{value!r} is not a local date and time 'YYYY-MM-DD HH:MM' "
                                 f"(e.g. '2026-11-12 02:00')") from None
        if isinstance(value, datetime) and value.tzinfo is not None:
            raise ValueError("write the local time of the site without a UTC offset ('2026-11-12 02:00')")
        return value

    @model_validator(mode="after")
    def _check(self) -> MaintenanceWindow:
        if self.end <= self.start:
            raise ValueError(f"maintenance ends ({self.end:{_LOCAL_DATETIME_FORMAT}}) before it starts "
                             f"({self.start:{_LOCAL_DATETIME_FORMAT}})")
        return self

    def interval(self, tz: ZoneInfo) -> tuple[float, float]:
        """(start, end) in epoch seconds, the wall-clock times read in `tz`."""
        return self.start.replace(tzinfo=tz).timestamp(), self.end.replace(tzinfo=tz).timestamp()


class Tariffs(_Frozen):
    """What energy costs the site, for the reports' cost estimates (one currency)."""

    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. PKR")
    grid_per_kwh: float = Field(gt=0, le=100_000, description="grid energy price per kWh (average, taxes included)")
    diesel_per_litre: float = Field(gt=0, le=100_000, description="diesel price per litre")
    diesel_l_per_kwh: float = Field(0.3, gt=0, le=5, description="a generator's fuel per kWh delivered, used when "
                                    "the generators report too little to measure it")


SimulationParameters = tuple[tuple[str, bool | int | float | str | None], ...]
"""A device's `simulation:` section, as (name, value) pairs: facmon's simulators read it
(simulators/physics.py says what it may hold); nothing else does."""


def _simulation_pairs(value: object) -> object:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), v) for k, v in value.items()))
    return value


MAX_QUIET_S = 7 * 86_400


class _Device(_Frozen):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: Label | None = Field(None, description="what people call the device (\"Admin block\"), any script; "
                               "the status page shows it instead of the id")
    max_quiet_s: float | None = Field(
        None, alias="max_quiet", ge=1, le=MAX_QUIET_S,
        description="the longest this device goes without a reading when it is healthy (a Zigbee PIR reports on "
                    "motion and checks in hourly: 2h); the rules' absence conditions and the status page wait at "
                    "least this long before calling it silent. Unset: their own limits (the rule's after_s, the "
                    "API's stale_after_s)")
    simulation: SimulationParameters = Field(
        (), description="parameters only facmon's simulators use (load profile, link quality, ...); production "
                        "ignores them")

    _simulation_is_a_mapping = field_validator("simulation", mode="before")(_simulation_pairs)
    _max_quiet_is_a_duration = field_validator("max_quiet_s", mode="before")(
        lambda cls, value: parse_optional_duration(value))


class Inverter(_Device):
    """A solar backup inverter with its battery and PV array."""

    kind: ClassVar[Kind] = Kind.INVERTER
    id: DeviceId
    battery_kwh: float = Field(gt=0, le=10_000, description="usable battery capacity")
    pv_kwp: float = Field(ge=0, le=10_000, description="PV array peak power")
    rated_w: float = Field(5000, gt=0, le=1_000_000, description="continuous output; above it the inverter overloads")
    battery_nominal_v: float = Field(48.0, gt=0, le=1000)
    discharge_efficiency: float = Field(0.95, gt=0, le=1, description="battery to load (the runtime estimate uses it)")
    cutoff_soc_pct: float = Field(5.0, ge=0, lt=100, description="low-battery cut-off: below it the inverter stops")
    restart_soc_pct: float = Field(20.0, ge=0, le=100, description="after a cut-off, restart on battery above this")
    capacity_alert_pct: float = Field(80.0, gt=0, le=100, description="the battery report warns when the "
                                      "estimated usable capacity falls below this share of battery_kwh")

    @model_validator(mode="after")
    def _check(self) -> Inverter:
        if self.restart_soc_pct <= self.cutoff_soc_pct:
            raise ValueError("restart_soc_pct must be above cutoff_soc_pct, or the inverter would flap")
        return self


class Uplink(_Device):
    """An internet uplink (one ISP) on the site's router."""

    kind: ClassVar[Kind] = Kind.UPLINK
    id: DeviceId
    isp: Label
    iface: str = Field(min_length=1, max_length=32)
    role: Literal["primary", "backup"] = "primary"
    powered_by: DeviceId | None = Field(None, description="inverter that powers the router; null: own supply")
    sla_pct: float | None = Field(None, gt=0, le=100, description="contracted availability; null: the ISP "
                                  "report shows availability without judging it against a contract")
    maintenance: tuple[MaintenanceWindow, ...] = Field((), description="announced maintenance windows, local time")

    def maintenance_intervals(self, tz: ZoneInfo) -> list[tuple[float, float]]:
        """The announced windows as (start, end) epoch seconds, sorted."""
        return sorted(window.interval(tz) for window in self.maintenance)


class OccupancySensor(_Device):
    """A room's occupancy sensor: a PIR with hold time, or a people counter (`counts_people`)."""

    kind: ClassVar[Kind] = Kind.OCCUPANCY
    id: DeviceId
    room: Label
    capacity: int = Field(ge=1, le=10_000)
    counts_people: bool = True


class Generator(_Device):
    """A diesel generator whose controller starts it when the grid is out and the battery it backs is low."""

    kind: ClassVar[Kind] = Kind.GENERATOR
    id: DeviceId
    feeds: DeviceId = Field(description="the inverter whose generator (AC) input it powers")
    rated_w: float = Field(gt=0, le=10_000_000, description="continuous electrical output")
    tank_l: float = Field(gt=0, le=100_000, description="fuel tank size")
    auto_start_soc_pct: float = Field(30.0, ge=0, le=100, description="the controller starts it when the grid is "
                                      "out and the battery of `feeds` falls below this")
    auto_stop_soc_pct: float = Field(90.0, ge=0, le=100, description="... and stops it when the grid returns or the "
                                     "battery is back above this")

    @model_validator(mode="after")
    def _check(self) -> Generator:
        if self.auto_stop_soc_pct <= self.auto_start_soc_pct:
            raise ValueError("auto_stop_soc_pct must be above auto_start_soc_pct, or the generator would flap")
        return self


class Plug(_Device):
    """A smart plug or relay (Tasmota, Shelly) switching one load: the router, a pump, an air conditioner."""

    kind: ClassVar[Kind] = Kind.PLUG
    id: DeviceId
    rated_w: float = Field(gt=0, le=100_000, description="what the load usually draws while on")
    powered_by: DeviceId | None = Field(None, description="inverter whose output feeds the plug; null: the grid "
                                        "or its own supply")


DeviceSpec = Inverter | Uplink | OccupancySensor | Generator | Plug
"""A device as its site file describes it; `spec.kind` names its contract kind."""


class Site(_Frozen):
    """A validated site description. Frozen: share it freely between stages and threads."""

    id: DeviceId
    name: Label
    timezone: str = DEFAULT_TIMEZONE
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    opening_hours: WeeklySchedule = WeeklySchedule()
    load_shedding: WeeklySchedule = WeeklySchedule()
    inverters: tuple[Inverter, ...] = ()
    uplinks: tuple[Uplink, ...] = ()
    occupancy_sensors: tuple[OccupancySensor, ...] = ()
    generators: tuple[Generator, ...] = ()
    plugs: tuple[Plug, ...] = ()
    tariffs: Tariffs | None = Field(None, description="energy prices for the reports; null: no costs estimated")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'Asia/Karachi'") from None
        return value

    @model_validator(mode="after")
    def _check_devices(self, info: ValidationInfo) -> Site:
        # `load_site` checks these itself afterwards so it can point at the offending line.
        if not (info.context or {}).get("defer_device_checks"):
            problems = device_problems(self)
            if problems:
                raise ValueError("; ".join(message for _, message in problems))
        return self

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_time(self, epoch_s: float) -> datetime:
        """`epoch_s` as an aware datetime in the site's time zone."""
        return datetime.fromtimestamp(epoch_s, self.tz)

    def _around(self, schedule: WeeklySchedule, epoch_s: float) -> list[tuple[float, float]]:
        # Windows that started yesterday may still run (crossing midnight); tomorrow's may touch today's.
        today = self.local_time(epoch_s).date()
        return schedule.intervals(self.tz, today - timedelta(days=1), 3)

    def _containing(self, schedule: WeeklySchedule, epoch_s: float) -> tuple[float, float] | None:
        for start, end in self._around(schedule, epoch_s):
            if start <= epoch_s < end:
                return start, end
        return None

    def in_load_shedding(self, epoch_s: float) -> bool:
        """Is the grid scheduled to be out at `epoch_s` (the published load-shedding schedule)?"""
        return self._containing(self.load_shedding, epoch_s) is not None

    def near_load_shedding(self, epoch_s: float, grace_s: float) -> bool:
        """Does a scheduled window touch [epoch_s - grace_s, epoch_s + grace_s]? (A grid cut this close to
        the schedule, or overrunning it by this much, is the schedule's.) A window shorter than the
        grace that lies wholly inside it counts too."""
        if grace_s <= 0:
            return self.in_load_shedding(epoch_s)
        # shedding_windows is end-exclusive: a window starting exactly at the grace's end is asked apart.
        return bool(self.shedding_windows(epoch_s - grace_s, epoch_s + grace_s)) \
            or self.in_load_shedding(epoch_s + grace_s)

    def next_grid_return(self, epoch_s: float) -> float | None:
        """End (epoch seconds) of the scheduled load-shedding window containing `epoch_s`, with
        back-to-back windows merged; None when no window is scheduled at `epoch_s`.
        Windows longer than a day are not supported (the schedule is daily)."""
        found = self._containing(self.load_shedding, epoch_s)
        if found is None:
            return None
        end = found[1]
        # A window running to 24:00 followed by one from 00:00 is one outage: follow the chain.
        for _ in range(8):
            following = self._containing(self.load_shedding, end)
            if following is None or following[1] <= end:
                break
            end = following[1]
        return end

    def shedding_windows(self, start_s: float, end_s: float) -> list[tuple[float, float]]:
        """Scheduled load-shedding intervals (epoch seconds) overlapping [start_s, end_s), merged."""
        first = self.local_time(start_s).date() - timedelta(days=1)
        days = (self.local_time(end_s).date() - first).days + 1
        return [(s, e) for s, e in self.load_shedding.intervals(self.tz, first, days) if e > start_s and s < end_s]

    def is_open(self, epoch_s: float) -> bool:
        """Is the site within its opening hours at `epoch_s`?"""
        return self._containing(self.opening_hours, epoch_s) is not None

    def inverter(self, device_id: str) -> Inverter:
        for inv in self.inverters:
            if inv.id == device_id:
                return inv
        raise KeyError(f"site {self.id!r} has no inverter {device_id!r}")


def device_problems(site: Site) -> list[tuple[Location, str]]:
    """Cross-device mistakes (duplicate ids, `powered_by` naming no inverter), each with its location."""
    problems: list[tuple[Location, str]] = []
    seen: set[str] = set()
    for spec in KINDS.values():
        group = spec.site_section
        for index, device in enumerate(getattr(site, group)):
            if device.id in seen:
                problems.append(((group, index, "id"),
                                 f"device id {device.id!r} is used twice; ids must be unique within a site"))
            seen.add(device.id)
    inverter_ids = {inv.id for inv in site.inverters}
    fed: tuple[tuple[str, tuple[Uplink, ...] | tuple[Plug, ...]], ...] = (("uplinks", site.uplinks),
                                                                           ("plugs", site.plugs))
    for section, devices in fed:
        for index, device in enumerate(devices):
            if device.powered_by is not None and device.powered_by not in inverter_ids:
                problems.append(((section, index, "powered_by"),
                                 f"{device.powered_by!r} is not an inverter of this site "
                                 f"(inverters: {', '.join(sorted(inverter_ids)) or 'none'})"))
    for index, generator in enumerate(site.generators):
        if generator.feeds not in inverter_ids:
            problems.append((("generators", index, "feeds"),
                             f"{generator.feeds!r} is not an inverter of this site "
                             f"(inverters: {', '.join(sorted(inverter_ids)) or 'none'})"))
    return problems


# --- loading YAML with line numbers -------------------------------------------------------------

Location = tuple[str | int, ...]


def _node_lines(node: yaml.Node, path: Location, out: dict[Location, int]) -> None:
    """Record the 1-based line of every node under `node`, by its key path."""
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.start_mark)
            out[(*path, key)] = key_node.start_mark.line + 1
            _node_lines(value_node, (*path, key), out)
            # The key's own line is more useful for "unknown key" errors than its value's.
            out[(*path, key, "__key__")] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _node_lines(item, (*path, index), out)


def read_yaml_with_lines(path: Path, what: str) -> tuple[Any, dict[Location, int]]:
    """Parse `path` into plain data plus a map from key path to line number. Raises `SiteFileError`
    for unreadable files and YAML syntax errors (with the line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SiteFileError(f"{path}: cannot read the {what} file: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise SiteFileError(f"{path}: the {what} file is not UTF-8 ({err.reason} at byte {err.start})") from None
    try:
        node, data = compose_yaml(text, what=f"{what} file")
    except YamlLimitError as err:
        where = f":{err.line}" if err.line is not None else ""
        raise SiteFileError(f"{path}{where}: refused: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise SiteFileError(f"{path}{where}: not valid YAML: {getattr(err, 'problem', None) or err}") from None
    lines: dict[Location, int] = {}
    if node is not None:
        _node_lines(node, (), lines)
    return data, lines


def line_of(lines: Mapping[Location, int], loc: Sequence[str | int], prefer_key: bool = False) -> int | None:
    """The line of the deepest node of `loc` present in the file (pydantic locations may name
    model-internal steps that have no node, e.g. a union member)."""
    loc = tuple(loc)
    for depth in range(len(loc), -1, -1):
        prefix = loc[:depth]
        if prefer_key and depth == len(loc) and (*prefix, "__key__") in lines:
            return lines[(*prefix, "__key__")]
        if prefix in lines:
            return lines[prefix]
    return None


def describe_validation_error(err: ValidationError, path: Path, lines: Mapping[Location, int],
                              loc_prefix: Location = ()) -> str:
    """One line per problem: `file:line: key.path: what is wrong`."""
    out = []
    for problem in err.errors():
        loc = (*loc_prefix, *problem["loc"])
        extra = problem["type"] == "extra_forbidden"
        line = line_of(lines, loc, prefer_key=extra)
        key = ".".join(str(part) for part in loc if part not in ("function-after", "function-before")) or "(top)"
        message = problem["msg"].removeprefix("Value error, ")
        if extra:
            message = "unknown key (check the spelling)"
        elif problem["type"] not in ("missing",) and not isinstance(problem.get("input"), dict | list):
            message += f" (got {problem.get('input')!r})"
        out.append(f"{path}:{line or '?'}: {key}: {message}")
    return "\n".join(out)


def load_site(path: Path | str) -> Site:
    """Read and validate a site file. Raises `SiteFileError` (file, line, what is wrong)."""
    path = Path(path)
    data, lines = read_yaml_with_lines(path, "site")
    if not isinstance(data, dict):
        raise SiteFileError(f"{path}:1: a site file is a mapping (id:, name:, inverters:, ...), "
                            f"not a {type(data).__name__}")
    try:
        site = Site.model_validate(data, context={"defer_device_checks": True})
    except ValidationError as err:
        raise SiteFileError(describe_validation_error(err, path, lines)) from None
    problems = device_problems(site)
    if problems:
        raise SiteFileError("\n".join(f"{path}:{line_of(lines, loc) or '?'}: {'.'.join(map(str, loc))}: {message}"
                                      for loc, message in problems))
    return site


DEVICE_MODELS: Mapping[Kind, type[DeviceSpec]] = {model.kind: model for model in DeviceSpec.__args__}


def _check_sections_match_the_contract() -> None:
    """Each kind of the contract has its device model and its section in `Site`, listing that model:
    a kind added to core/contract.py without them fails at import, not silently in some stage."""
    for kind, spec in KINDS.items():
        field = Site.model_fields.get(spec.site_section)
        if kind not in DEVICE_MODELS or field is None or DEVICE_MODELS[kind] not in getattr(field.annotation,
                                                                                               "__args__", ()):
            raise ImportError(f"core.site: kind {kind.value!r} needs a device model and a Site.{spec.site_section} "
                              f"section of them")


_check_sections_match_the_contract()


def iter_devices(site: Site) -> Iterator[DeviceSpec]:
    """Every device of `site`, kind by kind in the contract's order (`KINDS`), each kind in file order;
    each knows its contract kind (`spec.kind`)."""
    for spec in KINDS.values():
        yield from getattr(site, spec.site_section)


def quiet_limits(sites: Iterable[Site]) -> dict[DeviceKey, float]:
    """The devices whose site file gives them a `max_quiet`, and it in seconds."""
    return {DeviceKey(site.id, device.kind, device.id): device.max_quiet_s
            for site in sites for device in iter_devices(site) if device.max_quiet_s is not None}


def described_labels(spec: DeviceSpec) -> dict[str, str]:
    """The labels a site file gives a device: each label metric of its kind (contract `METRICS`) that
    its description has a field for, e.g. an uplink's `isp`, a sensor's `room`."""
    return {m.name: value for m in METRICS[spec.kind]
            if m.is_tag and isinstance(value := getattr(spec, m.name, None), str)}
