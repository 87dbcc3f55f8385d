"""Alerts (active and past), one alert with its transitions and notifications, acknowledgement."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from api.deps import ApiServices, KeysDep, Operator, ServicesDep, Viewer, get_alerts
from api.events import LiveEvent
from api.history import BadHistoryRequest, parse_time
from api.keys import ApiKey, KeyStore
from api.models import iso
from api.problems import ERROR_RESPONSES, Conflict, NotFound, Unavailable, Unprocessable
from rules.access import AlertAccess, AlertNotFound, StoreError
from rules.alerts import Alert, AlertState

router = APIRouter(prefix="/alerts", tags=["alerts"], responses=ERROR_RESPONSES)

Fingerprint = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="the alert's fingerprint (16 hex digits)")]


async def _store(store: Annotated[AlertAccess | None, Depends(get_alerts)]) -> AlertAccess:
    if store is None:
        raise Unavailable("alerts need the rules store (SQLite), and this API has none configured")
    return store


StoreDep = Annotated[AlertAccess, Depends(_store)]


class AlertOut(BaseModel):
    fingerprint: str
    rule: str
    state: AlertState
    labels: dict[str, str]
    annotations: dict[str, str]
    active_since: datetime | None
    fired_at: datetime | None
    resolved_at: datetime | None
    updated_at: datetime | None
    value: float | None
    muted_by: list[str] = Field(description="why it is not notified now: silence:<id>, inhibited:<fingerprint>")
    acked_by: str | None
    acked_at: datetime | None
    ack_comment: str


class TransitionOut(BaseModel):
    at: datetime
    from_state: AlertState
    to_state: AlertState
    value: float | None


class NotificationOut(BaseModel):
    id: int
    receiver: str
    status: str = Field(description="pending, sent or failed")
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    last_error: str


class AckOut(BaseModel):
    by: str
    comment: str
    at: datetime


class AlertDetailOut(AlertOut):
    transitions: list[TransitionOut]
    notifications: list[NotificationOut]
    acks: list[AckOut]


class AckIn(BaseModel):
    comment: str = Field("", max_length=1000)


def alert_out(alert: Alert) -> AlertOut:
    return AlertOut(fingerprint=alert.fingerprint, rule=alert.rule, state=alert.state, labels=dict(alert.labels),
                    annotations=dict(alert.annotations), active_since=iso(alert.active_since),
                    fired_at=iso(alert.fired_at), resolved_at=iso(alert.resolved_at), updated_at=iso(alert.updated_at),
                    value=alert.value, muted_by=list(alert.muted_by), acked_by=alert.acked_by,
                    acked_at=iso(alert.acked_at), ack_comment=alert.ack_comment)


def _time_param(name: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_time(name, text) / 1000
    except BadHistoryRequest as err:
        raise Unprocessable.param(name, str(err)) from None


def _in_range(alert: Alert, since: float | None, until: float | None) -> bool:
    """The alert was active at some moment of [since, until)."""
    began = alert.active_since if alert.active_since is not None else alert.updated_at
    ended = alert.resolved_at if alert.state is AlertState.RESOLVED else None
    if until is not None and began is not None and began >= until:
        return False
    return not (since is not None and ended is not None and ended < since)


@router.get("", response_model=list[AlertOut], summary="Alerts: active by default, or in a state, filtered")
def list_alerts(_: Viewer, store: StoreDep,
                site: Annotated[str | None, Query(max_length=64)] = None,
                severity: Annotated[str | None, Query(max_length=32)] = None,
                state: Annotated[AlertState | None, Query(description="default: pending and firing")] = None,
                since: Annotated[str | None, Query(max_length=40, description="RFC 3339: active at or after")] = None,
                until: Annotated[str | None, Query(max_length=40, description="RFC 3339: active before")] = None,
                ) -> list[AlertOut]:
    since_s, until_s = _time_param("since", since), _time_param("until", until)
    alerts = store.active_alerts(state=state, site=site, severity=severity)
    return [alert_out(a) for a in alerts if _in_range(a, since_s, until_s)]


@router.get("/{fingerprint}", response_model=AlertDetailOut, summary="One alert with transitions and notifications")
def get_alert(fingerprint: Fingerprint, _: Viewer, store: StoreDep) -> AlertDetailOut:
    detail = store.alert(fingerprint)
    if detail is None:
        raise NotFound(f"no alert {fingerprint}; GET /api/v1/alerts lists them")
    return AlertDetailOut(
        **alert_out(detail.alert).model_dump(),
        transitions=[TransitionOut(at=iso(t.at), from_state=t.from_state, to_state=t.to_state, value=t.value)
                     for t in detail.transitions],
        notifications=[NotificationOut(id=n.id, receiver=n.receiver, status=n.status, attempts=n.attempts,
                                       created_at=iso(n.created_at), sent_at=iso(n.sent_at), last_error=n.last_error)
                       for n in detail.notifications],
        acks=[AckOut(by=a.by, comment=a.comment, at=iso(a.at)) for a in detail.acks])


@router.post("/{fingerprint}/ack", response_model=AlertOut,
             summary="Acknowledge an active alert (stops repeats and escalation of this activation)")
def acknowledge(fingerprint: Fingerprint, body: AckIn, caller: Operator, store: StoreDep, keys: KeysDep,
                services: ServicesDep) -> AlertOut:
    try:
        return acknowledge_one(store, keys, services, caller, fingerprint, body.comment)
    except AlertNotFound:
        raise NotFound(f"no alert {fingerprint}; GET /api/v1/alerts lists them") from None
    except StoreError as err:
        raise Conflict(str(err)) from None


def acknowledge_one(store: AlertAccess, keys: KeyStore, services: ApiServices, caller: ApiKey, fingerprint: str,
                    comment: str) -> AlertOut:
    """Acknowledge one alert for `caller`: in the store, the audit log and the live feed. Raises
    AlertNotFound or StoreError as the store does."""
    alert = store.acknowledge(fingerprint, f"{caller.name} (key {caller.id})", comment)
    keys.record(caller, "alert.ack", fingerprint, comment)
    out = alert_out(alert)
    services.hub.publish(LiveEvent("alert", {"event": "ack", **out.model_dump(mode="json")}))
    return out

