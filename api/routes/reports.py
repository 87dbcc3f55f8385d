"""The monthly reports (docs/reports.md) as JSON: the same figures `facmon report` writes as HTML,
CSV and PDF, computed from InfluxDB on request (a few seconds for a large site's month)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import SitesDep, Viewer
from api.history import HistoryReader
from api.problems import ERROR_RESPONSES, NotFound, Unavailable, Unprocessable
from api.routes.history import HistoryDep
from api.sites import SiteTree
from core.contract import ID_PATTERN
from core.influxql import InfluxError, InfluxUnavailable
from reports.build import build_report
from reports.month import BadMonth

log = logging.getLogger("facmon.api")
router = APIRouter(prefix="/reports", tags=["reports"], responses=ERROR_RESPONSES)

SiteQuery = Annotated[str, Query(pattern=f"^{ID_PATTERN}$", max_length=64, description="site id")]
Month = Annotated[str, Query(min_length=7, max_length=7, description="YYYY-MM, in the site's time zone")]


def _report(kind: str, site: str, month: str, reader: HistoryReader, sites: SiteTree) -> dict[str, Any]:
    described = sites.site(site)
    if described is None:
        raise NotFound(f"no site {site!r} in sites.files")
    try:
        return build_report(kind, reader.client, described, month).as_json()
    except BadMonth as err:
        raise Unprocessable(str(err)) from None
    except InfluxUnavailable as err:
        raise Unavailable(f"InfluxDB cannot be reached: {err}") from None
    except InfluxError as err:
        log.warning("event=report_query_failed kind=%s site=%s error=%r", kind, site, str(err)[:300])
        raise Unavailable("InfluxDB refused the report's queries; see the API's log") from None


# One path per report, not /reports/{kind}: every path id of the API is an id of something stored.
# Plain `def`s: FastAPI runs them in a worker thread, off the event loop, while InfluxDB works.
@router.get("/isp", summary="ISP availability per uplink, with fault attribution and outages")
def isp(site: SiteQuery, month: Month, reader: HistoryDep, sites: SitesDep, _: Viewer) -> dict[str, Any]:
    """Every minute of every uplink classified (up, down_isp, down_power, maintenance, unknown),
    availability against the SLA, the outages with cause and evidence (docs/reports.md). The answer
    holds `summary`, `tables`, `charts`, `not_judged` (what the data could not settle) and `figures`."""
    return _report("isp", site, month, reader, sites)


@router.get("/energy", summary="Hours on each source, load-shedding, energy, fuel and cost")
def energy(site: SiteQuery, month: Month, reader: HistoryDep, sites: SitesDep, _: Viewer) -> dict[str, Any]:
    """Per local day and for the month (docs/reports.md); the same shape as /reports/isp."""
    return _report("energy", site, month, reader, sites)


@router.get("/battery", summary="Battery capacity, cycles, depth of discharge, voltage sag")
def battery(site: SiteQuery, month: Month, reader: HistoryDep, sites: SitesDep, _: Viewer) -> dict[str, Any]:
    """Per inverter's battery (docs/reports.md); the same shape as /reports/isp."""
    return _report("battery", site, month, reader, sites)
