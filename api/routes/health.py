"""Liveness, readiness and Prometheus metrics, at the root (where probes and scrapers expect them).

These three answer without a key: they reveal no site data, and probes rarely carry credentials.
Why a dependency is not ready names servers, files and URLs, so /readyz says it only to a caller
with a valid key (any role); without one, a failing check says just that it fails.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from api.deps import NotReady, ServicesDep, caller_if_any
from api.device_states import Presence
from api.keys import ApiKey
from api.models import CheckOut, Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health()


@router.get("/readyz", response_model=Readiness, summary="Broker, InfluxDB, rules store reachable; spool bounded",
            responses={503: {"model": Readiness, "description": "a dependency is not ready"}})
async def readyz(services: ServicesDep, caller: Annotated[ApiKey | None, Depends(caller_if_any)]) -> JSONResponse:
    checks = []
    for check in services.readiness:
        try:
            detail = await run_in_threadpool(check.check)
            checks.append(CheckOut(name=check.name, ok=True, detail=detail))
        except NotReady as err:
            checks.append(CheckOut(name=check.name, ok=False, detail=str(err) if caller is not None else
                                   "not ready; send an API key (any role) to see why"))
    body = Readiness(ready=all(c.ok for c in checks), checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics (text format 0.0.4)")
async def metrics(services: ServicesDep) -> PlainTextResponse:
    parts = [services.metrics.render(), _device_gauges(services), _event_gauges(services)]
    for extra in services.extra_metrics:
        parts.append(await run_in_threadpool(extra))
    return PlainTextResponse("".join(parts), media_type="text/plain; version=0.0.4; charset=utf-8")


def _device_gauges(services: ServicesDep) -> str:
    counts = {p.value: 0 for p in Presence}
    for state in services.states.all():
        counts[state.presence.value] += 1
    lines = ["# HELP facmon_api_devices Devices the API knows, by presence",
             "# TYPE facmon_api_devices gauge"]
    lines += [f'facmon_api_devices{{presence="{p}"}} {n}' for p, n in counts.items()]
    return "\n".join(lines) + "\n"


def _event_gauges(services: ServicesDep) -> str:
    hub = services.hub
    return ("# HELP facmon_api_event_subscribers Live-event (SSE) clients connected\n"
            "# TYPE facmon_api_event_subscribers gauge\n"
            f"facmon_api_event_subscribers {hub.subscriber_count}\n"
            "# HELP facmon_api_events_published_total Live events published\n"
            "# TYPE facmon_api_events_published_total counter\n"
            f"facmon_api_events_published_total {hub.published}\n")
