"""The three reports by name: what `facmon report` and the API call."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from core.influxql import InfluxQLClient
from core.site import Site
from reports.battery import battery_report
from reports.document import ReportDocument
from reports.energy import energy_report
from reports.isp import isp_report
from reports.month import ReportMonth
from reports.source import ReportSource

REPORTS: Mapping[str, Callable[[ReportSource, Site], ReportDocument]] = {
    "isp": isp_report, "energy": energy_report, "battery": battery_report}


def build_report(kind: str, client: InfluxQLClient, site: Site, month: str) -> ReportDocument:
    """Report `kind` of `site` for `month` ('YYYY-MM', in the site's zone). Raises KeyError for an
    unknown kind, BadMonth, and core.influxql's InfluxError."""
    return REPORTS[kind](ReportSource(client, site.id, ReportMonth.parse(month, site.tz)), site)
