"""Request and response models of the HTTP API (storage and domain types stay out of the wire)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.device_states import DeviceState, Presence, PresenceReason
from api.feed import FeedState
from api.sites import ConfiguredDevice, battery_runtime_s
from core.contract import KINDS, FieldValue, Kind
from core.site import Inverter, described_labels


def iso(epoch_s: float | None) -> datetime | None:
    return None if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC)


class LatestReading(BaseModel):
    ts: datetime = Field(description="the device's own timestamp of the reading (UTC)")
    seq: int
    metrics: dict[str, FieldValue] = Field(description="metrics by contract name (see docs/contract.md)")


class DeviceOut(BaseModel):
    site: str
    kind: Kind
    id: str
    configured: bool = Field(description="described in the site file (false: seen on MQTT only)")
    label: str | None = Field(None, description="the label that names the device to people (its kind's label "
                                                "metric: an uplink's ISP, a sensor's room), in any script")
    presence: Presence
    reason: PresenceReason
    since: datetime | None = Field(None, description="when the presence last changed")
    last_seen: datetime | None = Field(None, description="when the API received the latest reading")
    latest: LatestReading | None = None
    name: str | None = Field(None, description="the name the site file gives the device (`name:`), if any")
    battery_runtime_s: float | None = Field(
        None, description="inverters: seconds until battery cut-off at the current net load; null unless the "
                          "battery is discharging")


class SiteSummary(BaseModel):
    id: str
    name: str
    timezone: str
    devices: int
    online: int
    in_load_shedding: bool = Field(description="the grid is scheduled to be out now (published schedule)")


class SiteDetail(SiteSummary):
    device_list: list[DeviceOut]


class FeedOut(BaseModel):
    mqtt_connected: bool | None = Field(description="the API's own MQTT subscription is live; false: device "
                                        "states are the last known ones (not offline), null: the API has none")
    since: datetime | None = Field(None, description="when `mqtt_connected` last changed")


def feed_out(state: FeedState | None) -> FeedOut:
    if state is None:
        return FeedOut(mqtt_connected=None)
    return FeedOut(mqtt_connected=state.connected, since=iso(state.since))


class ApiKeyOut(BaseModel):
    id: str
    name: str
    role: Literal["viewer", "operator", "admin"]
    created_at: datetime
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKeyOut):
    token: str = Field(description="the key itself; shown only now, store it safely")


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: Literal["viewer", "operator", "admin"]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class CheckOut(BaseModel):
    name: str
    ok: bool
    detail: str


class Readiness(BaseModel):
    ready: bool
    checks: list[CheckOut]


def discharging(metrics: Mapping[str, FieldValue]) -> bool:
    """The battery is delivering power now: its current is negative (it is positive while charging),
    or, from an inverter that does not report current, the load runs on battery."""
    current = metrics.get("battery_a")
    if isinstance(current, float | int) and not isinstance(current, bool):
        return current < 0
    return metrics.get("mode") == "battery"


def device_out(state: DeviceState, configured: ConfiguredDevice | None) -> DeviceOut:
    latest = state.latest
    label = None
    label_metric = KINDS[state.device.kind].label
    if label_metric is not None:
        raw = latest.metrics.get(label_metric) if latest is not None else None
        if not isinstance(raw, str) and configured is not None:
            raw = described_labels(configured.spec).get(label_metric)
        label = raw if isinstance(raw, str) else None
    runtime = None
    if configured is not None and isinstance(configured.spec, Inverter) and latest is not None:
        m = latest.metrics
        if discharging(m) and all(isinstance(m.get(k), float | int) for k in ("battery_soc_pct", "load_w", "pv_w")):
            runtime = battery_runtime_s(configured.spec, float(m["battery_soc_pct"]),  # type: ignore[arg-type]
                                        float(m["load_w"]), float(m["pv_w"]))  # type: ignore[arg-type]
    return DeviceOut(
        site=state.device.site, kind=state.device.kind, id=state.device.device, configured=configured is not None,
        label=label, name=configured.spec.name if configured is not None else None, presence=state.presence,
        reason=state.reason, since=iso(state.since), last_seen=iso(state.last_seen),
        latest=None if latest is None else LatestReading(ts=latest.ts, seq=latest.seq, metrics=dict(latest.metrics)),
        battery_runtime_s=runtime)

