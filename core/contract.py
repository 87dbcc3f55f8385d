"""The wire contract, v1: what a device publishes and how facmon names it.

    facmon/v1/{site}/{kind}/{device}/reading   JSON object, QoS 1
    facmon/v1/{site}/{kind}/{device}/status    "online" / "offline", retained; "offline" is the last will

Ids match ``[a-z0-9][a-z0-9_-]{0,63}``. Every reading has ``ts`` (RFC 3339 with a UTC offset, or
integer epoch milliseconds) and ``seq`` (a per-device counter, for gap and duplicate detection),
plus the metrics of its kind below. Units are in the metric names (``_pct``, ``_w``, ``_ms``, …).

Simulators, the collector, the rules engine and the tests all import this module; docs/contract.md
documents it for device integrators. A change here is a change of the wire format: bump
``CONTRACT_VERSION`` and the topic prefix together.
"""

from __future__ import annotations

import enum
import functools
import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

CONTRACT_VERSION = "v1"
TOPIC_ROOT = "facmon"
TOPIC_PREFIX = f"{TOPIC_ROOT}/{CONTRACT_VERSION}"
ID_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
ID_RE = re.compile(rf"\A{ID_PATTERN}\Z")
MAX_LABEL_CHARS = 64
"""Longest value of a free-text label (an uplink's `isp`, a sensor's `room`); any script is welcome."""

STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"


class Kind(enum.StrEnum):
    """The contract names of the kinds; what each kind is (`KINDS`) is declared below, once."""

    INVERTER = "inverter"
    UPLINK = "uplink"
    OCCUPANCY = "occupancy"
    GENERATOR = "generator"
    PLUG = "plug"


class Channel(enum.StrEnum):
    READING = "reading"
    STATUS = "status"


class MetricType(enum.Enum):
    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    TEXT = "text"
    CHOICE = "choice"
    LABEL = "label"
    """A low-cardinality free-text label, stored as an InfluxDB tag."""


@dataclass(frozen=True)
class Metric:
    """One metric of a kind: its name, type, unit and the physically possible range."""

    name: str
    type: MetricType
    unit: str = ""
    description: str = ""
    required: bool = True
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def is_tag(self) -> bool:
        return self.type is MetricType.LABEL


INVERTER_MODES = ("grid", "battery", "solar", "bypass", "fault", "generator")
GENERATOR_STATES = ("off", "cranking", "running", "cooldown", "fail_to_start")

_F, _I, _B, _T, _C, _L = (MetricType.FLOAT, MetricType.INT, MetricType.BOOL, MetricType.TEXT,
                          MetricType.CHOICE, MetricType.LABEL)

@dataclass(frozen=True)
class KindSpec:
    """What a device kind is, for every stage: the contract (decode, line protocol, docs), the site
    file's section listing such devices, the label that names one to people, and how to show it.
    A new kind is a `Kind` member and a `KindSpec` here, a device model in core/site.py and a
    simulator model; every other stage takes its kinds from `KINDS`."""

    kind: Kind
    title: str
    """What people call one ("Inverter"), in the status page and the dashboards."""
    site_section: str
    """The site file's list of such devices (`inverters:`), a field of `core.site.Site`."""
    description: str
    metrics: tuple[Metric, ...]

    @property
    def label(self) -> str | None:
        """The label metric that names such a device to people (an uplink's `isp`), if it has one."""
        return next((m.name for m in self.metrics if m.is_tag), None)


_KIND_SPECS = (
    KindSpec(Kind.INVERTER, "Inverter", "inverters", "a solar backup inverter with its battery and PV array", (
        Metric("grid_v", _F, "V", "grid voltage at the inverter input (0 when the grid is out)", True, False, 0, 500),
        Metric("grid_hz", _F, "Hz", "grid frequency (0 when the grid is out)", False, False, 0, 70),
        Metric("grid_ok", _B, "", "the inverter accepts the grid as a source"),
        Metric("mode", _C, "", "what powers the load now", choices=INVERTER_MODES),
        Metric("battery_soc_pct", _F, "%", "battery state of charge", True, False, 0, 100),
        Metric("battery_v", _F, "V", "battery voltage", True, False, 0, 1000),
        Metric("battery_a", _F, "A", "battery current, positive while charging", True, False, -2000, 2000),
        Metric("battery_temp_c", _F, "°C", "battery temperature", False, False, -40, 120),
        Metric("pv_w", _F, "W", "solar (PV) power into the inverter", True, False, 0, 1_000_000),
        Metric("load_w", _F, "W", "power delivered to the site's load", True, False, 0, 1_000_000),
        Metric("inverter_temp_c", _F, "°C", "inverter heatsink temperature", False, False, -40, 150),
        Metric("fault_code", _T, "", "vendor fault code, null when there is none", False, True),
        Metric("cell_v_min", _F, "V", "the battery's lowest cell voltage, where the inverter or its BMS reports cells",
               False, False, 0, 5),
        Metric("cell_v_max", _F, "V", "the battery's highest cell voltage, where the inverter or its BMS reports "
               "cells", False, False, 0, 5),
        Metric("cell_v_delta_mv", _F, "mV", "highest minus lowest cell voltage (cell spread), where reported",
               False, False, 0, 5000),
    )),
    KindSpec(Kind.UPLINK, "Uplink", "uplinks", "an internet uplink (one ISP) on the site's router", (
        Metric("isp", _L, "", "the internet service provider's name (tag)"),
        Metric("iface", _T, "", "router interface of this uplink", False),
        Metric("link_up", _B, "", "carrier/link state of the interface"),
        Metric("rtt_ms", _F, "ms", "round-trip time; null when nothing came back", True, True, 0, 60_000),
        Metric("jitter_ms", _F, "ms", "RTT variation; null when nothing came back", True, True, 0, 60_000),
        Metric("loss_pct", _F, "%", "probe loss over the measurement window", True, False, 0, 100),
        Metric("down_mbps", _F, "Mbit/s", "measured download rate", False, False, 0, 100_000),
        Metric("up_mbps", _F, "Mbit/s", "measured upload rate", False, False, 0, 100_000),
    )),
    KindSpec(Kind.OCCUPANCY, "Room", "occupancy_sensors", "a room's occupancy sensor (PIR or people counter)", (
        Metric("room", _L, "", "the room's name (tag)"),
        Metric("occupied", _B, "", "someone is in the room (PIR with hold time, or people > 0)"),
        Metric("people", _I, "", "people counted, where the sensor counts", False, False, 0, 10_000),
        Metric("sensor_battery_pct", _F, "%", "the sensor's own battery", False, False, 0, 100),
        Metric("illuminance_lux", _F, "lx", "light level at the sensor, where it measures one", False, False, 0,
               200_000),
    )),
    KindSpec(Kind.GENERATOR, "Generator", "generators", "a diesel generator (genset) and its controller", (
        Metric("running", _B, "", "the engine runs"),
        Metric("state", _C, "", "the controller's state; fail_to_start: it cranked and gave up",
               choices=GENERATOR_STATES),
        Metric("output_w", _F, "W", "electrical power delivered", True, False, 0, 10_000_000),
        Metric("fuel_pct", _F, "%", "fuel left in the tank", True, False, 0, 100),
        Metric("engine_hours", _F, "h", "engine run-hours counter", True, False, 0, 1_000_000),
        Metric("coolant_temp_c", _F, "°C", "engine coolant temperature", False, False, -40, 150),
        Metric("starter_battery_v", _F, "V", "the starter battery's voltage", False, False, 0, 60),
        Metric("fault_code", _T, "", "controller alarm code, null when there is none", False, True),
    )),
    KindSpec(Kind.PLUG, "Plug", "plugs", "a smart plug or relay switching one load (the router, a pump, an air "
             "conditioner), often metering it", (
        Metric("relay_on", _B, "", "the relay is on: the load has power"),
        Metric("power_w", _F, "W", "power the load draws, where the plug meters", False, False, 0, 100_000),
        Metric("energy_kwh", _F, "kWh", "the plug's energy counter, where it meters", False, False, 0, 10_000_000),
        Metric("voltage_v", _F, "V", "mains voltage at the plug, where it meters", False, False, 0, 500),
        Metric("wifi_signal_dbm", _F, "dBm", "the plug's Wi-Fi signal at its access point; below about -80 dBm "
               "it drops out", False, False, -120, 0),
        Metric("uptime_s", _I, "s", "seconds since the plug last started: a drop means it lost power or "
               "restarted", False, False, 0, 10_000_000_000),
    )),
)
KINDS: Mapping[Kind, KindSpec] = {spec.kind: spec for spec in _KIND_SPECS}
"""Every kind, in the order stages list them (status page, dashboards, site files)."""
if set(KINDS) != set(Kind):
    raise ImportError(f"core.contract: kinds without a KindSpec: {sorted(set(Kind) - set(KINDS))}")
METRICS: Mapping[Kind, tuple[Metric, ...]] = {kind: spec.metrics for kind, spec in KINDS.items()}
LABELS: tuple[str, ...] = tuple(dict.fromkeys(m.name for spec in KINDS.values() for m in spec.metrics if m.is_tag))
"""Every label metric of every kind (an uplink's `isp`, a sensor's `room`): what rules select and group by."""
METRICS_BY_NAME: Mapping[Kind, Mapping[str, Metric]] = {
    kind: {m.name: m for m in metrics} for kind, metrics in METRICS.items()
}
RESERVED_KEYS = ("ts", "seq")
SEQ_MAX = 2**63 - 1


class TopicError(ValueError):
    """A topic that is not `facmon/v1/{site}/{kind}/{device}/{reading|status}` with valid ids."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DeviceKey:
    site: str
    kind: Kind
    device: str

    def reading_topic(self) -> str:
        return f"{TOPIC_PREFIX}/{self.site}/{self.kind.value}/{self.device}/{Channel.READING.value}"

    def status_topic(self) -> str:
        return f"{TOPIC_PREFIX}/{self.site}/{self.kind.value}/{self.device}/{Channel.STATUS.value}"

    def __str__(self) -> str:
        return f"{self.site}/{self.kind.value}/{self.device}"


@dataclass(frozen=True, slots=True)
class Topic:
    device: DeviceKey
    channel: Channel


_KINDS = {k.value: k for k in Kind}
_CHANNELS = {c.value: c for c in Channel}


def parse_topic(topic: str) -> Topic:
    """Split a contract topic into its device and channel. Raises `TopicError` with a reason code."""
    parts = topic.split("/")
    if len(parts) != 6 or parts[0] != TOPIC_ROOT:
        raise TopicError("bad_topic", f"topic {topic[:200]!r} is not {TOPIC_PREFIX}/<site>/<kind>/<device>/<channel>")
    if parts[1] != CONTRACT_VERSION:
        raise TopicError("bad_topic", f"topic {topic[:200]!r}: contract version {parts[1]!r} is not "
                         f"{CONTRACT_VERSION!r}")
    _, _, site, kind_name, device, channel_name = parts
    kind = _KINDS.get(kind_name)
    if kind is None:
        raise TopicError("unknown_kind", f"kind {kind_name[:80]!r} is not one of {', '.join(_KINDS)}")
    channel = _CHANNELS.get(channel_name)
    if channel is None:
        raise TopicError("bad_topic", f"channel {channel_name[:80]!r} is not 'reading' or 'status'")
    for what, value in (("site", site), ("device", device)):
        if not ID_RE.match(value):
            raise TopicError("bad_id", f"{what} id {value[:80]!r} does not match {ID_PATTERN}")
    return Topic(DeviceKey(site, kind, device), channel)


def reading_subscription(site: str = "+") -> str:
    return f"{TOPIC_PREFIX}/{site}/+/+/{Channel.READING.value}"


def status_subscription(site: str = "+") -> str:
    return f"{TOPIC_PREFIX}/{site}/+/+/{Channel.STATUS.value}"


FieldValue = float | int | bool | str | None


@dataclass(frozen=True, slots=True)
class Reading:
    """One valid reading: which device, when (device time, epoch milliseconds UTC), its sequence
    number, and the metrics it carried (labels such as `isp`/`room` included), by contract name."""

    device: DeviceKey
    ts_ms: int
    seq: int
    metrics: Mapping[str, FieldValue]

    @property
    def ts(self) -> datetime:
        return datetime.fromtimestamp(self.ts_ms / 1000, UTC)


def format_ts(ts_ms: int) -> str:
    """RFC 3339 in UTC with millisecond precision, the form facmon's own devices publish."""
    second, millis = divmod(ts_ms, 1000)
    cached_second, prefix = _last_ts_prefix
    if second != cached_second:
        prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _last_ts_prefix[:] = [second, prefix]
    return f"{prefix}{millis:03d}Z"


# Readings come in bursts within the same second; formatting the date part once per second
# was a quarter of a simulated reading's cost.
_last_ts_prefix: list = [None, ""]


def encode_reading(reading: Reading) -> bytes:
    """The JSON payload a device publishes for `reading` (compact, keys in contract order,
    `ts` as RFC 3339 UTC). Raises ValueError for NaN or infinite values, which JSON cannot carry."""
    return encode_payload(reading.device.kind, format_ts(reading.ts_ms), reading.seq, reading.metrics)


def encode_payload(kind: Kind, ts: str, seq: int, metrics: Mapping[str, FieldValue]) -> bytes:
    """`encode_reading` from its parts, for a caller that formats one `ts` (`format_ts`) for many
    readings: the simulators, which encode tens of thousands a second. Same output, same errors."""
    # Fast path, byte-identical to the general one: metrics already in contract order (what every
    # facmon device builds) are dumped as they are and spliced after ts and seq. orjson writes NaN and
    # infinity as null, so a payload with more nulls than there are None values takes the general
    # path, which raises.
    if _in_contract_order(kind, tuple(metrics)):
        body = orjson.dumps(metrics)
        if b"null" not in body or body.count(b"null") == list(metrics.values()).count(None):
            return b'{"ts":%b,"seq":%d,%b' % (orjson.dumps(ts), seq, body[1:])
    payload: dict[str, FieldValue] = {"ts": ts, "seq": seq}
    for metric in METRICS[kind]:
        name = metric.name
        if name in metrics:
            value = metrics[name]
            if type(value) is float and not math.isfinite(value):
                raise ValueError(f"{name}={value!r}: JSON has no NaN or infinity; omit the metric or send null")
            payload[name] = value
    # orjson writes the same compact UTF-8 JSON as json.dumps(separators=(",", ":"), ensure_ascii=False),
    # about ten times faster, but would turn NaN into null silently: hence the check above.
    return orjson.dumps(payload)


@functools.lru_cache(maxsize=4096)
def _in_contract_order(kind: Kind, keys: tuple[str, ...]) -> bool:
    """Are `keys` metrics of `kind`, each at most once, in the contract's order? Remembered per shape
    (a device sends the same keys over and over): a set of every ordered selection would hold 2^n - 1
    of them, 32,767 for an inverter."""
    position = _CONTRACT_POSITION[kind]
    at = [position.get(key, -1) for key in keys]
    return bool(at) and -1 not in at and all(a < b for a, b in itertools.pairwise(at))


_CONTRACT_POSITION: Mapping[Kind, Mapping[str, int]] = {
    kind: {m.name: index for index, m in enumerate(metrics)} for kind, metrics in METRICS.items()
}
