"""One foreign MQTT message → what the bridge publishes (`Forward`) and what it refuses (`Dropped`,
with a reason). Pure: the receive time and the seq counter are given.

Every reading is encoded with `core.contract.encode_reading` and then judged by `core.decode`, the
collector's own front door, before it is forwarded: a reading that maps but breaks the contract (a
battery at 140 %, a mode the contract does not know) is dropped here with the collector's reason,
counted by the bridge, and never stored wrongly. A topic's later readings take its plan
(`bridge.plans`), which forwards the same bytes without decoding them again, or hands the message
back to this general path.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import orjson

from bridge.convert import FieldProblem, FieldRule, is_missing
from bridge.gather import Gatherer
from bridge.mapping import BridgeMapping, SourceRule
from bridge.plans import ReadingPlan, plan_for
from bridge.seq import TooManyDevices
from bridge.topics import render
from core.contract import (
    ID_RE,
    METRICS,
    STATUS_OFFLINE,
    STATUS_ONLINE,
    Channel,
    DeviceKey,
    FieldValue,
    Reading,
    encode_reading,
)
from core.decode import DecodeLimits, Reject, RejectReason, decode_message


class DropReason(enum.StrEnum):
    """Why the bridge did not forward a foreign message (the contract's own reasons come from core.decode)."""

    UNMAPPED = "unmapped"
    """No source of the mapping matches the topic."""
    PAYLOAD_TOO_LARGE = "payload_too_large"
    BAD_JSON = "bad_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    WRONG_UNIT = "wrong_unit"
    BAD_VALUE = "bad_value"
    NON_FINITE = "non_finite"
    BAD_DEVICE_ID = "bad_device_id"
    UNKNOWN_DEVICE = "unknown_device"
    BAD_TS = "bad_ts"
    CLOCK_OFF = "clock_off"
    BAD_STATUS = "bad_status"
    INCOMPLETE = "incomplete"
    """A one-value-per-topic device's window closed without every required metric."""
    TOO_MANY_DEVICES = "too_many_devices"
    """A new device beyond the bridge's limit of devices it numbers (bridge.seq.MAX_DEVICES)."""
    UNKNOWN_VALUE = "unknown_value"
    """A one-value-per-topic message whose key the mapping does not use (counted, not logged)."""


@dataclass(frozen=True, slots=True)
class Forward:
    """A contract message to publish (QoS 1)."""

    topic: str
    payload: bytes
    retain: bool
    device: DeviceKey
    channel: Channel


@dataclass(frozen=True, slots=True)
class Dropped:
    reason: str
    detail: str
    topic: str
    payload: bytes
    source: str | None = None


Outcome = Forward | Dropped
_DEVICES_CACHED = 65_536
_PLANS_KEPT = 65_536


def with_seq(encoded: bytes, seq: int) -> bytes:
    """`encoded` (an `encode_reading` payload with seq 0) with `seq` instead: the same bytes as encoding
    the reading with `seq`, without encoding it twice. `encode_reading` writes `{"ts":"…","seq":0`
    first, and no `"seq":0` can come earlier (inside the ts string a quote is escaped)."""
    return encoded.replace(b'"seq":0', b'"seq":%d' % seq, 1)


class _Target(NamedTuple):
    """A contract device a foreign message speaks for, with its labels and how its fields are read."""

    device: DeviceKey
    labels: dict[str, str]
    fields: tuple[FieldRule, ...]
    channel: int | None
    """Its channel (from 1) on a multi-channel device; None for a device of its own."""


class _Refused(Exception):
    def __init__(self, reason: DropReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail


class Translator:
    """Not thread-safe: the service calls `handle` and `tick` from its one thread."""

    def __init__(self, mapping: BridgeMapping, next_seq: Callable[[DeviceKey], int], limits: DecodeLimits,
                 max_foreign_bytes: int = 16_384) -> None:
        """`limits` are the collector's (`collector.decode`), so the bridge judges as it will."""
        self._mapping = mapping
        self._next_seq = next_seq
        self._limits = limits
        self._max_foreign_bytes = max_foreign_bytes
        self._gatherer = Gatherer()
        self._devices: dict[tuple[str, tuple[str, ...]], tuple[_Target, ...]] = {}
        """(source, the topic's captures) → its device(s), labels and field rules: rendered once per device."""
        self._plans: dict[str, ReadingPlan | None] = {}
        """Topic → its readings' plan, once the topic was routed to a reading source (None: it has none)."""
        self._gateways: dict[str, tuple[SourceRule, ...]] = {}
        """A hub's availability topic → the sources whose devices speak through it."""
        for source in mapping.sources:
            if source.gateway_availability is not None:
                self._gateways[source.gateway_availability] = (*self._gateways.get(source.gateway_availability, ()),
                                                               source)
        self._gateway_down: set[str] = set()
        """Sources whose hub said offline last."""
        self._seen: dict[str, dict[DeviceKey, None]] = {}
        """Per source, the devices it has spoken for (bounded): those a hub's last will makes offline."""
        self.planned = 0
        """Messages forwarded by their topic's plan."""
        self.ignored = 0
        """Messages of topics the mapping's `ignore:` expects and no source takes."""

    def handle(self, topic: str, payload: bytes, received_at: float) -> list[Outcome]:
        """What to publish for one message and what was dropped (one Dropped at most, or one per channel of a
        multi-channel device). Never raises on input."""
        plan = self._plans.get(topic)
        if plan is not None:
            encoded = plan.encoded(payload, received_at)
            if encoded is not None:
                self.planned += 1
                return [self._numbered(plan.source, plan.device, plan.reading_topic, encoded, topic, payload)]
        return self._handle_generally(topic, payload, received_at)

    def _handle_generally(self, topic: str, payload: bytes, received_at: float) -> list[Outcome]:
        hubbed = self._gateways.get(topic)
        if hubbed is not None:
            return self._gateway_status(hubbed, topic, payload)
        parts = topic.split("/")
        for source in self._mapping.sources:
            if source.availability is not None and (captures := source.availability.match(parts)) is not None:
                if not self._admits(source, captures):
                    continue
                return self._guarded(source, topic, payload, lambda s=source, c=captures: self._status(s, c, topic,
                                                                                                      payload))
            captures = source.topic.match(parts)
            if captures is None or not self._admits(source, captures):
                continue
            if len(payload) > self._max_foreign_bytes:
                return [Dropped(DropReason.PAYLOAD_TOO_LARGE, f"payload is {len(payload)} bytes, over the limit of "
                                f"{self._max_foreign_bytes} (bridge.max_payload_bytes)", topic, payload, source.name)]
            if source.one_value_per_topic:
                return self._guarded(source, topic, payload,
                                     lambda s=source, c=captures: self._gather(s, c, topic, payload, received_at))
            return self._guarded(source, topic, payload,
                                 lambda s=source, c=captures: self._reading(s, c, topic, payload, received_at))
        if self._mapping.ignores(parts):
            self.ignored += 1
            return []
        listed = [s.name for s in self._mapping.sources if s.only_listed_devices and (
            s.topic.match(parts) is not None
            or (s.availability is not None and s.availability.match(parts) is not None))]
        if listed:
            return [Dropped(DropReason.UNKNOWN_DEVICE, f"the device is not listed under devices: of source "
                            f"{listed[0]!r} (only_listed_devices); add it there", topic, payload, listed[0])]
        return [Dropped(DropReason.UNMAPPED, "no source of the mapping matches this topic", topic, payload)]

    def tick(self, now: float) -> list[Outcome]:
        """Readings of the one-value-per-topic windows closed by `now`."""
        out: list[Outcome] = []
        for gathered in self._gatherer.due(now):
            metrics = dict(gathered.metrics)
            missing = [m.name for m in METRICS[gathered.device.kind] if m.required and m.name not in metrics]
            if missing:
                out.append(Dropped(DropReason.INCOMPLETE, f"{gathered.device}: no {', '.join(missing)} within "
                                   f"{gathered.interval_s:g} s; check that the sources publish them (and the "
                                   "mapping's field names)", gathered.topic, b"", gathered.source))
                continue
            out.append(self._checked(gathered.source, gathered.device, round(gathered.received_at * 1000), metrics,
                                     gathered.topic, b"", gathered.received_at))
        return out

    # --- readings ----------------------------------------------------------------------------------

    def _reading(self, source: SourceRule, captures: dict[str, str], topic: str, payload: bytes,
                 received_at: float) -> list[Outcome]:
        targets = self._targets(source, captures)
        if topic not in self._plans:
            [single, *more] = targets
            self._keep_plan(topic, None if more or single.channel else
                            plan_for(source, single.device, single.labels, self._limits, self._max_foreign_bytes))
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError as err:
            raise _Refused(DropReason.BAD_JSON, f"payload is not JSON: {err}") from None
        if not isinstance(body, dict):
            raise _Refused(DropReason.NOT_AN_OBJECT, f"payload is a JSON {type(body).__name__}, not an object")
        if len(targets) == 1:
            return self._target_reading(source, targets[0], body, topic, payload, received_at)
        outcomes: list[Outcome] = []
        for target in targets:  # a channel that cannot be read does not hold back the others
            try:
                outcomes.extend(self._target_reading(source, target, body, topic, payload, received_at))
            except _Refused as refused:
                outcomes.append(Dropped(refused.reason, f"{target.device} (channel {target.channel}): "
                                        f"{refused.detail}", topic, payload, source.name))
        return outcomes

    def _target_reading(self, source: SourceRule, target: _Target, body: dict[str, object], topic: str,
                        payload: bytes, received_at: float) -> list[Outcome]:
        metrics: dict[str, FieldValue] = dict(target.labels)
        for rule in target.fields:
            raw = rule.find(body)
            if is_missing(raw):
                if rule.metric.required and not source.gathers:  # another source may bring it
                    raise _Refused(DropReason.MISSING_FIELD, f"no {'.'.join(rule.path)!r} in the payload for "
                                                             f"{rule.metric.name}")
                continue
            metrics[rule.metric.name] = self._convert(rule, raw, body)
        if source.gathers:
            self._gatherer.add(source.name, target.device, metrics, topic, received_at, source.interval_s)
            return []
        try:
            ts_ms = round(received_at * 1000) if source.ts is None else source.ts.ms(body, received_at)
        except FieldProblem as problem:
            raise _Refused(DropReason(problem.reason), problem.detail) from None
        return [self._checked(source.name, target.device, ts_ms, metrics, topic, payload, received_at)]

    def _gather(self, source: SourceRule, captures: dict[str, str], topic: str, payload: bytes,
                received_at: float) -> list[Outcome]:
        key = captures[source.value_key]  # type: ignore[index]
        rules = source.fields_by_key.get(key)
        if rules is None:
            return [Dropped(DropReason.UNKNOWN_VALUE, f"{key!r} is not a field of source {source.name!r}", topic,
                            payload, source.name)]
        [target] = self._targets(source, captures)  # one-value-per-topic sources have no channels
        try:
            text: object = payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise _Refused(DropReason.WRONG_TYPE, "the value is not UTF-8 text") from None
        values: dict[str, FieldValue] = dict(target.labels)
        for rule in rules:
            values[rule.metric.name] = self._convert(rule, text, None)
        self._gatherer.add(source.name, target.device, values, topic, received_at, source.interval_s)
        return []

    def _checked(self, source: str, device: DeviceKey, ts_ms: int, metrics: dict[str, FieldValue],
                 topic: str, payload: bytes, received_at: float) -> Outcome:
        """The reading, encoded and judged as the collector will judge it."""
        try:  # judged with seq 0: the verdict does not depend on the seq's value
            encoded = encode_reading(Reading(device, ts_ms, 0, metrics))
        except ValueError as err:
            return Dropped(DropReason.NON_FINITE, str(err), topic, payload, source)
        except orjson.JSONEncodeError:  # a whole number JSON's 64 bits cannot carry, beyond every contract range
            huge = next(name for name, value in metrics.items() if type(value) is int and not -2**63 <= value < 2**64)
            return Dropped(RejectReason.OUT_OF_RANGE.value, f"{device}: {huge}={metrics[huge]:.3g} is outside the "
                           "contract's range", topic, payload, source)
        reading_topic = device.reading_topic()
        verdict = decode_message(reading_topic, encoded, received_at, self._limits)
        if isinstance(verdict, Reject):
            return Dropped(verdict.reason.value, f"{device}: {verdict.detail}", topic, payload, source)
        return self._numbered(source, device, reading_topic, encoded, topic, payload)

    def _numbered(self, source: str, device: DeviceKey, reading_topic: str, encoded: bytes, topic: str,
                  payload: bytes) -> Outcome:
        """The judged reading `encoded` (with seq 0) forwarded with the device's next seq. The seq is taken
        only for a reading that goes out, so refused ones leave no gaps."""
        try:
            seq = self._next_seq(device)
        except TooManyDevices as err:
            return Dropped(DropReason.TOO_MANY_DEVICES, str(err), topic, payload, source)
        return Forward(reading_topic, with_seq(encoded, seq), False, device, Channel.READING)

    def _keep_plan(self, topic: str, plan: ReadingPlan | None) -> None:
        if len(self._plans) >= _PLANS_KEPT:
            self._plans.clear()  # bounded: topics with random names must not grow it forever
        self._plans[topic] = plan

    # --- status -----------------------------------------------------------------------------------

    def _status(self, source: SourceRule, captures: dict[str, str], topic: str, payload: bytes) -> list[Outcome]:
        """The device's status; every channel's, for a multi-channel device (they share its connection).
        While the source's hub is offline its devices are too, whatever their last availability says
        (retained, it may arrive after the hub's last will when the bridge subscribes)."""
        state = _availability_state(payload)
        if source.name in self._gateway_down:
            state = STATUS_OFFLINE
        return [Forward(target.device.status_topic(), state.encode(), True, target.device, Channel.STATUS)
                for target in self._targets(source, captures)]

    def _gateway_status(self, sources: tuple[SourceRule, ...], topic: str, payload: bytes) -> list[Outcome]:
        """A hub's availability. Offline: every device of its sources is offline. Online: the devices of a
        source without availability of their own are online; the others say it themselves (a hub that
        starts republishes its devices' availability)."""
        try:
            state = _availability_state(payload)
        except _Refused as refused:
            return [Dropped(refused.reason, refused.detail, topic, payload, sources[0].name)]
        outcomes: list[Outcome] = []
        for source in sources:
            if state == STATUS_OFFLINE:
                self._gateway_down.add(source.name)
            else:
                self._gateway_down.discard(source.name)
            if state == STATUS_OFFLINE or source.availability is None:
                outcomes.extend(Forward(device.status_topic(), state.encode(), True, device, Channel.STATUS)
                                for device in self._devices_of(source))
        return outcomes

    def _devices_of(self, source: SourceRule) -> list[DeviceKey]:
        listed = (DeviceKey(source.site, source.kind, device_id) for raw in source.devices
                  for device_id in source.contract_ids(raw) if ID_RE.match(device_id))
        return list(dict.fromkeys([*listed, *self._seen.get(source.name, {})]))

    # --- parts -------------------------------------------------------------------------------------

    @staticmethod
    def _raw_name(source: SourceRule, captures: dict[str, str]) -> str:
        return render(source.device_template, captures)

    def _admits(self, source: SourceRule, captures: dict[str, str]) -> bool:
        """False for a device the source does not list when it takes only listed ones."""
        return not source.only_listed_devices or self._raw_name(source, captures) in source.devices

    def _targets(self, source: SourceRule, captures: dict[str, str]) -> tuple[_Target, ...]:
        """The contract device(s) the message is about: one, or one per channel (callers copy the labels,
        never change them)."""
        key = (source.name, tuple(captures.values()))
        known = self._devices.get(key)
        if known is None:
            known = self._render_targets(source, captures)
            if len(self._devices) >= _DEVICES_CACHED:
                self._devices.clear()  # bounded: topics with random names must not grow it forever
            self._devices[key] = known
            seen = self._seen.setdefault(source.name, {})
            if len(seen) < _DEVICES_CACHED:
                seen.update(dict.fromkeys(target.device for target in known))
        return known

    def _render_targets(self, source: SourceRule, captures: dict[str, str]) -> tuple[_Target, ...]:
        raw = self._raw_name(source, captures)
        listed = source.devices.get(raw)
        labels = {name: render(template, captures) for name, template in source.labels.items()}
        if listed is not None:
            labels.update(listed.labels)
        ids = source.contract_ids(raw)
        if listed is not None and listed.channels:
            return tuple(_Target(DeviceKey(source.site, source.kind, device_id), labels,
                                 tuple(rule.at_channel(channel) for rule in source.fields), channel)
                         for channel, device_id in enumerate(ids, start=1))
        [device_id] = ids
        if not ID_RE.match(device_id):
            raise _Refused(DropReason.BAD_DEVICE_ID, f"device {raw[:64]!r} gives no valid contract id "
                                                     f"(a-z, 0-9, _ and -, 64 at most); name it under devices: "
                                                     f"{raw[:64]}: {{device: my-id}}")
        return (_Target(DeviceKey(source.site, source.kind, device_id), labels, source.fields, None),)

    @staticmethod
    def _convert(rule: FieldRule, raw: object, body: object) -> FieldValue:
        try:
            return rule.convert(raw, body)
        except FieldProblem as problem:
            raise _Refused(DropReason(problem.reason), problem.detail) from None

    # --- isolation of input errors ------------------------------------------------------------------

    @staticmethod
    def _guarded(source: SourceRule, topic: str, payload: bytes, make: Callable[[], list[Outcome]]) -> list[Outcome]:
        try:
            return make()
        except _Refused as refused:
            return [Dropped(refused.reason, refused.detail, topic, payload, source.name)]

    @property
    def open_windows(self) -> int:
        return self._gatherer.open_windows


def _availability_state(payload: bytes) -> str:
    """online/offline from an availability payload: Online/Offline, online/offline or {"state": "online"}.
    Raises _Refused (bad_status) for anything else."""
    text = payload.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            body = orjson.loads(text)
        except orjson.JSONDecodeError:
            body = None
        text = body.get("state", "") if isinstance(body, dict) and isinstance(body.get("state"), str) else ""
    state = text.strip('"').strip().lower()
    if state not in (STATUS_ONLINE, STATUS_OFFLINE):
        raise _Refused(DropReason.BAD_STATUS, f"availability {payload[:40]!r} is not online/offline, "
                                              'Online/Offline or {"state":"online"}')
    return state
