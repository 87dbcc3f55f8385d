"""Incidents: active alerts grouped by cause (api/incidents.py), and one acknowledgement for each."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import KeysDep, Operator, ServicesDep, Viewer
from api.incidents import Incident, group_incidents
from api.models import iso
from api.problems import ERROR_RESPONSES, NotFound
from api.routes.alerts import AckIn, AlertOut, Fingerprint, StoreDep, acknowledge_one, alert_out
from rules.access import AlertNotFound, StoreError

router = APIRouter(prefix="/incidents", tags=["alerts"], responses=ERROR_RESPONSES)


class IncidentOut(BaseModel):
    fingerprint: str = Field(description="the cause's fingerprint: the incident's id")
    site: str
    severity: str = Field(description="the cause's severity")
    started_at: datetime | None = Field(description="when the cause became active")
    acked_by: str | None = Field(description="who acknowledged the cause (null: nobody yet)")
    acked_at: datetime | None
    cause: AlertOut
    muted: list[AlertOut] = Field(description="the alerts the cause inhibits (directly or through another of "
                                              "these), earliest first; none of them is notified")


def incident_out(incident: Incident) -> IncidentOut:
    cause = incident.cause
    return IncidentOut(fingerprint=cause.fingerprint, site=cause.site, severity=cause.severity,
                       started_at=iso(cause.active_since), acked_by=cause.acked_by, acked_at=iso(cause.acked_at),
                       cause=alert_out(cause), muted=[alert_out(a) for a in incident.muted])


@router.get("", response_model=list[IncidentOut], summary="Active alerts grouped by cause, most urgent first")
def list_incidents(_: Viewer, store: StoreDep,
                   site: Annotated[str | None, Query(max_length=64)] = None) -> list[IncidentOut]:
    return [incident_out(i) for i in group_incidents(store.active_alerts(site=site))]


@router.post("/{fingerprint}/ack", response_model=IncidentOut,
             summary="Acknowledge an incident: its cause and every alert it mutes that nobody acknowledged yet")
def acknowledge_incident(fingerprint: Fingerprint, body: AckIn, caller: Operator, store: StoreDep, keys: KeysDep,
                         services: ServicesDep) -> IncidentOut:
    incident = next((i for i in group_incidents(store.active_alerts()) if i.cause.fingerprint == fingerprint), None)
    if incident is None:
        raise NotFound(f"no active incident caused by alert {fingerprint} (resolved, or muted by another "
                       "alert); GET /api/v1/incidents lists them")
    for alert in incident.alerts:
        if alert.acked_by is not None:
            continue
        try:
            acknowledge_one(store, keys, services, caller, alert.fingerprint, body.comment)
        except (AlertNotFound, StoreError):  # resolved since it was read: nothing left to acknowledge
            continue
    current = group_incidents(store.active_alerts())
    return incident_out(next((i for i in current if i.cause.fingerprint == fingerprint), incident))
