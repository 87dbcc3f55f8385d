"""History of one device, or of every device of a kind at a site, downsampled (InfluxQL)."""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from api.deps import ServicesDep, SitesDep, StatesDep, Viewer, get_history
from api.history import Aggregate, BadHistoryRequest, DeviceSeries, HistoryReader, HistoryRequest
from api.problems import ERROR_RESPONSES, NotFound, Unavailable, Unprocessable
from api.routes.params import DeviceId, SiteId
from core.contract import Kind
from core.influxql import InfluxError, InfluxUnavailable

log = logging.getLogger("facmon.api")
router = APIRouter(prefix="/history", tags=["history"], responses=ERROR_RESPONSES)

Start = Annotated[str, Query(max_length=40, description="RFC 3339 with offset, e.g. 2026-01-01T00:00:00Z")]
End = Annotated[str, Query(max_length=40, description="RFC 3339 with offset (exclusive)")]
Interval = Annotated[str, Query(max_length=8, description="bucket size: 10s, 1m, 1h, 1d")]
Agg = Annotated[Aggregate, Query(description="how each bucket is summarised")]
Metrics = Annotated[list[str], Query(max_length=20, description="metric names of the kind; default: all numeric")]


async def _reader(reader: Annotated[HistoryReader | None, Depends(get_history)]) -> HistoryReader:
    if reader is None:
        raise Unavailable("history needs InfluxDB, and this API has none configured (influxdb.url)")
    return reader


HistoryDep = Annotated[HistoryReader, Depends(_reader)]


class SeriesOut(BaseModel):
    device: str
    times: list[datetime] = Field(description="bucket start times (UTC)")
    values: dict[str, list[float | int | bool | str | None]] = Field(description="per metric, one value per time")


class HistoryOut(BaseModel):
    site: str
    kind: Kind
    device: str | None
    aggregate: Aggregate
    interval_s: int
    start: datetime
    end: datetime
    series: list[SeriesOut]


def _run(reader: HistoryReader, build: HistoryRequest) -> Response:
    """Query and serialise here, in the handler's worker thread: a day at 1 min is thousands of
    values, and encoding them on the event loop (FastAPI's response_model path) would hold it up for
    every latest-state request meanwhile. `response_model=HistoryOut` still documents the shape."""
    try:
        result = reader.read(build)
    except InfluxUnavailable as err:
        raise Unavailable(f"InfluxDB cannot be reached, so history is unavailable for now; "
                          f"{_logged(err)}") from None
    except InfluxError as err:  # refused or truncated: the query is ours, so its text is for the log only
        raise Unavailable(f"InfluxDB did not answer this history query; try a shorter range or a longer "
                          f"interval; {_logged(err)}") from None
    out = HistoryOut(site=build.site, kind=build.kind, device=build.device, aggregate=build.aggregate,
                     interval_s=build.interval_s, start=_dt(build.start_ms), end=_dt(build.end_ms),
                     series=[_series(s) for s in result])
    return Response(out.model_dump_json(), media_type="application/json")


def _logged(err: InfluxError) -> str:
    """Log `err` (its text names InfluxDB's URL and the query) under a new id; the words for the client."""
    error_id = secrets.token_hex(6)
    log.warning("history query failed", extra={"error_id": error_id, "error": str(err)})
    return f"the API log has the details under error id {error_id}"


def _series(s: DeviceSeries) -> SeriesOut:
    return SeriesOut(device=s.device, times=[_dt(t) for t in s.times_ms], values=s.values)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _build(services: ServicesDep, site: str, kind: Kind, device: str | None, metrics: list[str], start: str,
           end: str, interval: str, agg: Aggregate) -> HistoryRequest:
    try:
        return HistoryRequest.build(site, kind, device, metrics, start, end, interval, agg,
                                    services.settings.history_max_points)
    except BadHistoryRequest as err:
        raise Unprocessable.param(err.param, str(err)) from None


@router.get("/{site}/{device}", response_model=HistoryOut, summary="History of one device")
def device_history(site: SiteId, device: DeviceId, start: Start, end: End, _: Viewer, reader: HistoryDep,
                   services: ServicesDep, sites: SitesDep, states: StatesDep, metrics: Metrics = [],  # noqa: B006
                   interval: Interval = "1m", agg: Agg = Aggregate.MEAN) -> Response:
    configured = sites.device(site, device)
    kind = configured.key.kind if configured else next(
        (s.device.kind for s in states.of_site(site) if s.device.device == device), None)
    if kind is None:
        raise NotFound(f"site {site!r} has no device {device!r} (not described and never reported)")
    return _run(reader, _build(services, site, kind, device, metrics, start, end, interval, agg))


@router.get("/{site}", response_model=HistoryOut, summary="History of every device of one kind at a site")
def site_history(site: SiteId, kind: Kind, start: Start, end: End, _: Viewer, reader: HistoryDep,
                 services: ServicesDep, metrics: Metrics = [],  # noqa: B006
                 interval: Interval = "1m", agg: Agg = Aggregate.MEAN) -> Response:
    return _run(reader, _build(services, site, kind, None, metrics, start, end, interval, agg))
