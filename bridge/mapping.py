"""The mapping file: which foreign topics become which contract devices, and how their fields,
labels, timestamps and availability translate. Data, not code: adding a sensor is a few lines of
YAML, validated at start with `file:line: key: problem` for every mistake.

    time_zone: Asia/Karachi          # offset-less timestamps (Tasmota's Time) are this zone's local time,
                                     # unless a site file gives the device's site its own timezone
    max_clock_skew_s: 900            # a device timestamp further than this from the bridge's clock is refused
    sources:
      - name: zigbee-pir
        topic: zigbee2mqtt/{device}               # {name} captures one level, + matches any one
        availability: zigbee2mqtt/{device}/availability
        site: park
        kind: occupancy
        device: "{device}"                        # the contract id (lower-cased); or set per device below
        labels: {room: "{device}"}
        fields:
          occupied: {from: occupancy}
          sensor_battery_pct: {from: battery}
        devices:
          Hall_PIR: {device: pir-hall, labels: {room: Hall}}

Pure apart from `load_mapping`, which reads the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bridge import MappingError
from bridge.convert import CONVERSIONS, FieldRule, TsRule, units_for
from bridge.topics import PatternError, TopicPattern
from core.contract import ID_PATTERN, MAX_LABEL_CHARS, METRICS_BY_NAME, FieldValue, Kind, MetricType
from core.site import SiteFileError, describe_validation_error, line_of, read_yaml_with_lines

_TEMPLATE_PART = re.compile(r"\{([^{}]*)\}")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FieldSpec(_Spec):
    source: str = Field(alias="from", min_length=1, max_length=256)
    """Dotted JSON path (`ENERGY.Power`); for a one-value-per-topic source, the value's key."""
    unit: str | None = None
    """The unit the source sends (`kW`, `mV`, `°F`); converted into the contract metric's."""
    unit_from: str | None = Field(None, min_length=1, max_length=256)
    """Dotted path of the payload's own unit field (Tasmota `TempUnit`), checked on every message."""
    scale: float = 1.0
    offset: float = 0.0
    values: dict[Any, FieldValue] | None = None
    """Source value → contract value (`{"ON": true, "OFF": false}`, `{"Solar/Battery": battery}`)."""
    shared: bool = False
    """With {index} in from: a single value where a device gives one instead of a per-channel array (a
    Voltage) is every channel's. Without it a single value is no channel's (a Total summed over the
    channels) and the metric is left out."""
    above: float | None = None
    """A number → true when above this (`grid_ok: {from: grid_voltage, above: 180}`); with values:, the
    true/false is looked up there (`state: {from: ENERGY.Power, above: 50, values: {"true": running,
    "false": off}}`)."""

    @field_validator("values")
    @classmethod
    def _text_keys(cls, values: dict[Any, FieldValue] | None) -> dict[str, FieldValue] | None:
        if values is None:
            return None
        out: dict[str, FieldValue] = {}
        for key, value in values.items():
            if isinstance(key, bool):
                raise ValueError(f"key {key!r} was read by YAML as a boolean (ON/OFF/yes/no are); quote it: "
                                 '"ON": true')
            out[str(key)] = value
        return out


CHANNEL_PLACEHOLDERS = ("{channel}", "{index}")
"""In a field's `from:` path, a multi-channel device's channel: {channel} counts from 1 (Tasmota's POWER1,
POWER2), {index} from 0 (a JSON array's position: ENERGY.Power.{index})."""
MAX_CHANNELS = 32


class DeviceSpec(_Spec):
    device: str | None = Field(None, pattern=rf"^{ID_PATTERN}$")
    channels: tuple[Annotated[str, Field(pattern=rf"^{ID_PATTERN}$")], ...] | None = Field(
        None, min_length=1, max_length=MAX_CHANNELS)
    """A device with several relays or meters (Sonoff 4CH, Shelly 2.5): one contract device per channel,
    in channel order; the source's fields say where each channel's values are with {channel}/{index}."""
    labels: dict[str, str] = {}

    @model_validator(mode="after")
    def _device_or_channels(self) -> DeviceSpec:
        if self.device is not None and self.channels is not None:
            raise ValueError("set device: for a one-channel device or channels: for a multi-channel one, not both")
        if self.channels is not None and len(set(self.channels)) < len(self.channels):
            raise ValueError("channels: each channel needs its own device id")
        return self


class TsSpec(_Spec):
    source: str = Field(alias="from", min_length=1, max_length=256)
    """Dotted JSON path of the device's timestamp."""
    format: Literal["iso", "epoch_s", "epoch_ms"] = "iso"
    """iso: ISO 8601 / RFC 3339, read in the site's zone when it has no offset."""


class SourceSpec(_Spec):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    topic: str
    availability: str | None = None
    """Topic pattern of the source's own availability (Tasmota LWT, Zigbee2MQTT availability)."""
    gateway_availability: str | None = None
    """Topic of the availability of the software or hub the devices speak through (Zigbee2MQTT's last
    will, zigbee2mqtt/bridge/state). Offline makes every device of the source offline (a dead hub leaves
    its devices' own availability as it was); while it is offline, no device of the source is online."""
    payload: Literal["json", "value"] = "json"
    """json: one object per message; value: one value per topic (SolarAssistant), gathered per device."""
    value_key: str | None = None
    """For payload value: the capture naming the value (`metric` in solar_assistant/{unit}/{metric}/state)."""
    gather: bool = False
    """For payload json: gather this source's fields with other gathering sources' of the same device (a
    genset's output meter and its fuel sensor) into one reading per interval_s. Payload value always gathers."""
    interval_s: float = Field(10.0, ge=1, le=3600)
    """For gathering sources: one reading per device this often, from the latest value of each field."""
    site: str = Field(pattern=rf"^{ID_PATTERN}$")
    kind: Kind
    device: str = "{device}"
    labels: dict[str, str] = {}
    fields: dict[str, FieldSpec] = Field(min_length=1)
    ts: TsSpec | None = None
    """Where the device's own timestamp is; absent: the time the bridge received the message."""
    devices: dict[str, DeviceSpec] = {}
    """Per device as the topic names it: its contract id and labels."""
    only_listed_devices: bool = False
    """Refuse devices not in `devices` (as unknown_device), so strangers on the broker create nothing."""

    @model_validator(mode="after")
    def _consistent(self) -> SourceSpec:
        pattern = _pattern(self.topic, "topic")
        names = pattern.names
        if self.gateway_availability is not None and _pattern(self.gateway_availability,
                                                              "gateway_availability").levels.count(None):
            raise ValueError("gateway_availability: the hub's own topic names no device; write it out, without + "
                             "or {captures} (zigbee2mqtt/bridge/state)")
        if self.availability is not None:
            missing = _pattern(self.availability, "availability").names ^ names
            if missing:
                raise ValueError(f"availability must capture the same names as topic (differs in "
                                 f"{', '.join(sorted(missing))})")
        for what, template in (("device", self.device), *((f"labels.{k}", v) for k, v in self.labels.items())):
            for name in _TEMPLATE_PART.findall(template):
                if name not in names:
                    raise ValueError(f"{what}: {{{name}}} is not a capture of topic {self.topic!r} "
                                     f"(captures: {', '.join(sorted(names)) or 'none'})")
        if self.payload == "value":
            if self.value_key not in names:
                raise ValueError(f"payload value needs value_key naming a capture of topic (one of: "
                                 f"{', '.join(sorted(names)) or 'none'}), e.g. {{metric}}")
            if self.ts is not None:
                raise ValueError("a one-value-per-topic source has no timestamp field; remove ts")
        elif self.value_key is not None:
            raise ValueError("value_key is only for payload: value")
        if self.gather and self.ts is not None:
            raise ValueError("a gathering source's readings are stamped when gathered; remove ts")
        self._check_fields()
        self._check_channels()
        return self

    def _check_channels(self) -> None:
        per_channel = [name for name, spec in self.fields.items()
                       if any(p in spec.source for p in CHANNEL_PLACEHOLDERS)]
        for name, spec in self.fields.items():
            unknown = set(_TEMPLATE_PART.findall(spec.source)) - {p.strip("{}") for p in CHANNEL_PLACEHOLDERS}
            if unknown:
                raise ValueError(f"fields.{name}.from: {{{sorted(unknown)[0]}}} is not a placeholder of a path "
                                 "(there are {channel}, counting from 1, and {index}, from 0)")
        for name, spec in self.fields.items():
            if spec.shared and "{index}" not in spec.source.split("."):
                raise ValueError(f"fields.{name}.shared: applies to a from: path with an {{index}} part "
                                 "(ENERGY.Voltage.{index}); add it or remove shared")
        with_channels = [raw for raw, device in self.devices.items() if device.channels is not None]
        if per_channel and self.payload == "value":
            raise ValueError(f"fields.{per_channel[0]}.from: a one-value-per-topic source has no channels")
        if per_channel and (not self.only_listed_devices or len(with_channels) < len(self.devices)):
            raise ValueError(f"fields.{per_channel[0]}.from: {{channel}}/{{index}} are the channels of devices "
                             "listed with channels: [...]; set only_listed_devices: true and give every device of "
                             "this source its channels (a one-channel device goes in a source of its own)")
        if with_channels and not per_channel:
            raise ValueError(f"devices.{with_channels[0]}.channels: no field of this source says where a channel's "
                             "values are; use {channel} or {index} in from:, e.g. relay_on: {from: POWER{channel}}")

    def _check_fields(self) -> None:
        metrics = METRICS_BY_NAME[self.kind]
        labels = {name for name, m in metrics.items() if m.is_tag}
        for name, spec in self.fields.items():
            metric = metrics.get(name)
            if metric is None:
                raise ValueError(f"fields: {name!r} is not a metric of {self.kind.value} "
                                 f"(metrics: {', '.join(sorted(set(metrics) - labels))})")
            if metric.is_tag:
                raise ValueError(f"fields: {name!r} is a label; set it under labels:")
            for unit in (spec.unit,):
                if unit is not None and unit not in units_for(metric):
                    known = ", ".join(units_for(metric)) or "none: it has no unit"
                    raise ValueError(f"fields.{name}.unit: {unit!r} cannot become {metric.unit or 'a unitless value'} "
                                     f"(units: {known})")
            if spec.unit_from is not None and metric.unit not in CONVERSIONS:
                raise ValueError(f"fields.{name}.unit_from: {name} has no unit to convert into")
            if spec.above is not None and metric.type is not MetricType.BOOL and spec.values is None:
                raise ValueError(f"fields.{name}.above: gives true/false; map them to {name}'s values with values:")
            if spec.above is None and metric.type in (MetricType.CHOICE, MetricType.BOOL) and (
                    spec.scale, spec.offset) != (1.0, 0.0):
                raise ValueError(f"fields.{name}: scale/offset apply to numbers, and {name} is not one")
        for name, device in [("", None), *self.devices.items()]:
            for label in (device.labels if device else self.labels):
                if label not in labels:
                    where = f"devices.{name}.labels" if device else "labels"
                    raise ValueError(f"{where}: {label!r} is not a label of {self.kind.value} "
                                     f"(labels: {', '.join(sorted(labels)) or 'none'})")
            for value in (device.labels if device else {}).values():
                if not 1 <= len(value) <= MAX_LABEL_CHARS:
                    raise ValueError(f"devices.{name}.labels: {value!r} must be 1 to {MAX_LABEL_CHARS} characters")
        missing_labels = labels - set(self.labels) - {k for d in self.devices.values() for k in d.labels}
        if missing_labels:
            raise ValueError(f"labels: {self.kind.value} readings need {', '.join(sorted(missing_labels))}; "
                             f"set them, e.g. labels: {{{sorted(missing_labels)[0]}: \"{{device}}\"}}")


class MappingSpec(_Spec):
    time_zone: str | None = None
    """IANA zone of offset-less device timestamps, for sites no site file describes."""
    max_clock_skew_s: float = Field(900.0, gt=0, le=30 * 86_400)
    """A device timestamp this far from the bridge's clock is refused as clock_off (nothing is stored)."""
    sources: list[SourceSpec] = Field(min_length=1)
    ignore: list[str] = Field([], max_length=64)
    """Topic patterns the sources' subscriptions bring in that no source takes and that are expected (a
    Tasmota PIR's own STATE when a plug source reads tele/{device}/STATE): counted as ignored, not as drops."""

    @field_validator("ignore")
    @classmethod
    def _ignore_patterns(cls, patterns: list[str]) -> list[str]:
        for index, text in enumerate(patterns):
            _pattern(text, f"ignore[{index}]")
        return patterns

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{value!r} is not an IANA time zone (e.g. Asia/Karachi, Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> MappingSpec:
        names = [s.name for s in self.sources]
        doubles = sorted({n for n in names if names.count(n) > 1})
        if doubles:
            raise ValueError(f"source names must be unique ({', '.join(doubles)} appears twice)")
        return self


def _pattern(text: str, what: str) -> TopicPattern:
    try:
        return TopicPattern.parse(text)
    except PatternError as err:
        raise ValueError(f"{what}: {err}") from None


# --- the validated, ready-to-use form ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceRule:
    device: str | None
    labels: Mapping[str, str]
    channels: tuple[str, ...] = ()
    """The contract ids of a multi-channel device's channels, channel 1 first; () for a one-channel device."""


@dataclass(frozen=True, slots=True)
class SourceRule:
    """One source of the mapping, compiled."""

    name: str
    topic: TopicPattern
    availability: TopicPattern | None
    gateway_availability: str | None
    """The hub's availability topic (literal); None: the source has none."""
    one_value_per_topic: bool
    gathers: bool
    """Its fields go into a per-device window (one-value-per-topic sources, and json ones with gather:)."""
    value_key: str | None
    interval_s: float
    site: str
    kind: Kind
    device_template: str
    labels: Mapping[str, str]
    fields: tuple[FieldRule, ...]
    fields_by_key: Mapping[str, tuple[FieldRule, ...]]
    """For one-value-per-topic sources: the value's key → the fields made from it."""
    ts: TsRule | None
    """Where the device's own time is; None: the reading is stamped when the bridge received it."""
    devices: Mapping[str, DeviceRule]
    only_listed_devices: bool
    zone: ZoneInfo | None
    max_clock_skew_s: float

    def contract_ids(self, raw: str) -> tuple[str, ...]:
        """The contract ids of the device its topic names `raw`: its `devices:` entry's (one per channel of a
        multi-channel device), else the name lower-cased (not yet checked against the contract's ids)."""
        listed = self.devices.get(raw)
        if listed is not None and listed.channels:
            return listed.channels
        return (listed.device if listed is not None and listed.device else raw.lower(),)


@dataclass(frozen=True, slots=True)
class BridgeMapping:
    sources: tuple[SourceRule, ...]
    ignore: tuple[TopicPattern, ...] = ()
    """Topics no source takes that are expected: not forwarded and not counted as drops."""

    def ignores(self, parts: Sequence[str]) -> bool:
        return any(pattern.match(parts) is not None for pattern in self.ignore)

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """Every topic filter the bridge subscribes to, once each, in file order."""
        seen: dict[str, None] = {}
        for source in self.sources:
            seen[source.topic.subscription] = None
            if source.availability is not None:
                seen[source.availability.subscription] = None
            if source.gateway_availability is not None:
                seen[source.gateway_availability] = None
        return tuple(seen)


def compile_mapping(spec: MappingSpec, site_zones: Mapping[str, str]) -> BridgeMapping:
    """The usable mapping; `site_zones` are the site files' time zones by site id, which win over
    the mapping's `time_zone`. Raises ValueError naming a source whose zone is nowhere given."""
    rules = []
    for source in spec.sources:
        zone_name = site_zones.get(source.site, spec.time_zone)
        if source.ts is not None and source.ts.format == "iso" and zone_name is None:
            raise ValueError(f"source {source.name!r} reads device timestamps but no time zone is known for site "
                             f"{source.site!r}: set time_zone: in the mapping, or describe the site in sites.files")
        metrics = METRICS_BY_NAME[source.kind]
        fields = tuple(FieldRule(metrics[name], tuple(f.source.split(".")), f.unit,
                                 tuple(f.unit_from.split(".")) if f.unit_from else None, f.scale, f.offset, f.values,
                                 f.above, f.shared)
                       for name, f in source.fields.items())
        by_key: dict[str, tuple[FieldRule, ...]] = {}
        for spec_field, rule in zip(source.fields.values(), fields, strict=True):
            by_key[spec_field.source] = (*by_key.get(spec_field.source, ()), rule)
        rules.append(SourceRule(
            source.name, TopicPattern.parse(source.topic),
            TopicPattern.parse(source.availability) if source.availability else None,
            source.gateway_availability, source.payload == "value", source.payload == "value" or source.gather,
            source.value_key,
            source.interval_s, source.site, source.kind,
            source.device, dict(source.labels), fields, by_key,
            TsRule(tuple(source.ts.source.split(".")), source.ts.format, ZoneInfo(zone_name) if zone_name else None,
                   spec.max_clock_skew_s) if source.ts else None,
            {raw: DeviceRule(d.device, dict(d.labels), d.channels or ()) for raw, d in source.devices.items()},
            source.only_listed_devices, ZoneInfo(zone_name) if zone_name else None, spec.max_clock_skew_s))
    return BridgeMapping(tuple(rules), tuple(TopicPattern.parse(text) for text in spec.ignore))


def load_mapping(path: Path, site_zones: Mapping[str, str] | None = None) -> BridgeMapping:
    """Read, validate and compile a mapping file. Raises MappingError with `file:line: key: problem` lines."""
    try:
        data, lines = read_yaml_with_lines(path, "bridge mapping")
    except SiteFileError as err:
        raise MappingError(str(err)) from None
    if not isinstance(data, dict):
        raise MappingError(f"{path}:1: a bridge mapping is a mapping (time_zone:, sources:), not a "
                           f"{type(data).__name__}")
    try:
        spec = MappingSpec.model_validate(data)
    except ValidationError as err:
        raise MappingError(describe_validation_error(err, path, lines)) from None
    try:
        return compile_mapping(spec, site_zones or {})
    except ValueError as err:
        index = next((i for i, s in enumerate(spec.sources) if repr(s.name) in str(err)), None)
        line = line_of(lines, ("sources", index)) if index is not None else None
        raise MappingError(f"{path}:{line or '?'}: {err}") from None


def load_mappings(paths: Sequence[Path], site_zones: Mapping[str, str] | None = None) -> BridgeMapping:
    """Several mapping files as one (sources in the order given). Raises MappingError, also for a
    source name used in two files."""
    if not paths:
        raise MappingError("no mapping file: list one in bridge.mappings (bridge/mappings/ has examples)")
    sources: list[SourceRule] = []
    ignore: list[TopicPattern] = []
    for path in paths:
        mapping = load_mapping(path, site_zones)
        for source in mapping.sources:
            if any(s.name == source.name for s in sources):
                raise MappingError(f"{path}: source {source.name!r} is also in an earlier mapping file; rename one")
            sources.append(source)
        ignore.extend(mapping.ignore)
    return BridgeMapping(tuple(sources), tuple(ignore))
