"""The monthly reports (docs/reports.md) as JSON: the same figures `facmon report` writes as HTML,
CSV and PDF, computed from InfluxDB on request (a few seconds for a large site's month)."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api.deps import SitesDep, Viewer
from api.problems import ERROR_RESPONSES, NotFound, Unavailable, Unprocessable
from api.routes.history import HistoryDep
from core.contract import ID_PATTERN
from core.influxql import InfluxError, InfluxUnavailable
from reports.build import build_report
from reports.month import BadMonth

log = logging.getLogger("facmon.api")
router = APIRouter(prefix="/reports", tags=["reports"], responses=ERROR_RESPONSES)

SiteQuery = Annotated[str, Query(pattern=f"^{ID_PATTERN}$", max_length=64, description="site id")]
Month = Annotated[str, Query(min_length=7, max_length=7, description="YYYY-MM, in the site's time zone")]


@router.get("/{kind}", summary="A monthly report of a site")
def get_report(kind: Literal["isp", "energy", "battery"], site: SiteQuery, month: Month,
               reader: HistoryDep, sites: SitesDep, _: Viewer) -> dict[str, Any]:
    """`isp`: availability per uplink with fault attribution and outages; `energy`: hours per source,
    load-shedding, energy, fuel and cost; `battery`: capacity, cycles, depth of discharge, sag. The
    answer holds `summary`, `tables`, `charts`, `not_judged` (what the data could not settle) and
    `figures` (the numbers by name). A plain `def`: FastAPI runs it in a worker thread, off the loop."""
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
