"""The Monthly dashboard against the reports: the simulated month (conftest.py) is stored by
reports/store.py into the real InfluxDB 1.6.7, every panel query of the dashboard runs there as
Grafana would send it (the month as the time range), and its numbers must equal the reports'
figures, panel by panel. A re-store replaces the month, a month so far stops at its last full day."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from core.clock import FakeClock
from core.influx_write import V1LineWriter
from core.influxql import InfluxQLClient, Series
from core.settings.influxdb import InfluxSettings
from core.site import Site, load_site
from dashboards import monthly
from dashboards.build import DashboardOptions, build_dashboards, dashboard_json
from dashboards.queries import ALL_VALUE, TimeRange, render_query
from facmon.cli import main
from facmon.servers import InfluxDB
from reports.battery import battery_report
from reports.document import ReportDocument
from reports.energy import energy_report
from reports.isp import isp_report
from reports.month import ReportMonth
from reports.source import ReportSource
from reports.store import MonthStore, store_month
from tests.integration.reports.conftest import MONTH_DB
from tests.integration.reports.month_truth import TZ, Truth

pytestmark = pytest.mark.integration
MONTH = ReportMonth.parse("2026-11", TZ)
RANGE = TimeRange(MONTH.start_s * 1000, MONTH.end_s * 1000 - 1, "1d")
"""Grafana's "last month" in the site's zone."""
ALL = {"site": ["testpark"], "uplink": [ALL_VALUE], "battery": [ALL_VALUE]}
DAY_MS = [int(datetime.combine(d, datetime.min.time(), TZ).timestamp() * 1000) for d in MONTH.days]


def _writer(influxdb: InfluxDB) -> V1LineWriter:
    return V1LineWriter(InfluxSettings(url=influxdb.url, database=MONTH_DB))


@pytest.fixture(scope="module")
def reports(month_db: tuple[InfluxQLClient, Truth, Path], influxdb: InfluxDB) -> dict[str, ReportDocument]:
    client, _, site_path = month_db
    site = load_site(site_path)
    writer = _writer(influxdb)
    store_month(client, writer, site, MONTH)
    writer.close()
    source = ReportSource(client, site.id, MONTH)
    return {"isp": isp_report(source, site), "energy": energy_report(source, site),
            "battery": battery_report(source, site)}


def _run(client: InfluxQLClient, query: str, variables: dict[str, list[str]] = ALL) -> list[Series]:
    return client.query(render_query(query, RANGE, variables), epoch="ms")


def _by(series: list[Series], tag: str) -> dict[str, Series]:
    return {s.tags[tag]: s for s in series}


def _one_row(series: Series) -> dict[str, Any]:
    [row] = series.rows()
    return row


def check_availability(client: InfluxQLClient, docs: dict[str, ReportDocument]) -> None:
    got = {u: s.values[0][1] for u, s in _by(_run(client, monthly.AVAILABILITY), "uplink").items()}
    assert got == pytest.approx({u: f["availability_pct"] for u, f in docs["isp"].figures.items()}, abs=1e-9)


def check_sla_table(client: InfluxQLClient, docs: dict[str, ReportDocument]) -> None:
    rows = {u: _one_row(s) for u, s in _by(_run(client, monthly.SLA_TABLE), "uplink").items()}
    for uplink, figures in docs["isp"].figures.items():
        row = rows[uplink]
        assert row["time"] == MONTH.start_s * 1000
        assert row["availability_pct"] == pytest.approx(figures["availability_pct"], abs=1e-9)
        assert (row["sla_pct"], row["sla_met"]) == (figures["sla_pct"], figures["sla_met"])
        assert row["down_isp_min"] == figures["minutes"]["down_isp"]
        assert row["outages"] == len(figures["outages"])
    assert rows["up-isp"]["allowed_down_min"] == pytest.approx(
        (docs["isp"].figures["up-isp"]["minutes"]["up"] + docs["isp"].figures["up-isp"]["minutes"]["down_isp"]) * 0.005)
    assert rows["up-own"]["allowed_down_min"] is None  # no SLA in the site file: nothing stored


def check_minutes_by_class(client: InfluxQLClient, docs: dict[str, ReportDocument]) -> None:
    got = {u: {k: v for k, v in _one_row(s).items() if k != "time"}
           for u, s in _by(_run(client, monthly.MINUTES_BY_CLASS), "uplink").items()}
    assert got == {u: f["minutes"] for u, f in docs["isp"].figures.items()}
    assert sum(got["up-isp"].values()) == MONTH.minutes


def check_down_per_day(client: InfluxQLClient, docs: dict[str, ReportDocument]) -> None:
    for uplink, series in _by(_run(client, monthly.DOWN_PER_DAY), "uplink").items():
        per_day = docs["isp"].figures[uplink]["minutes_per_day"]
        assert [row[0] for row in series.values] == DAY_MS
        assert [list(row[1:]) for row in series.values] == [
            [per_day[c][i] for c in ("down_isp", "down_power", "maintenance", "unknown")] for i in range(len(DAY_MS))]


def check_outages(client: InfluxQLClient, docs: dict[str, ReportDocument]) -> None:
    got = {u: s.rows() for u, s in _by(_run(client, monthly.OUTAGES), "uplink").items()}
    for uplink, figures in docs["isp"].figures.items():
        expected = [{"time": int(datetime.fromisoformat(o["start"]).timestamp() * 1000),
                     "end": o["end"][:16].replace("T", " "), "duration_min": o["duration_min"], "cause": o["cause"],
                     "loss_pct": pytest.approx(o["loss_pct"]), "link_down_min": o["link_down_min"],
                     "power_out_min": o["power_out_min"]} for o in figures["outages"]]
        assert got.get(uplink, []) == expected, uplink
    assert {"down_isp", "down_power", "maintenance"} <= {row["cause"] for row in got["up-isp"]}


def _daily(docs: dict[str, ReportDocument]) -> dict[str, list[float]]:
    return docs["energy"].figures["daily"]


def check_sources_per_day(client: InfluxQLClient, docs: dict[str, ReportDocument]) -> None:
    [series] = _run(client, monthly.SOURCES_PER_DAY)
    assert [row[0] for row in series.values] == DAY_MS
    for column, source in zip(series.columns[1:], monthly.SOURCES, strict=True):
        got = [row[series.columns.index(column)] for row in series.values]
        assert got == pytest.approx([m / 60 for m in _daily(docs)[f"{source}_min"]], abs=1e-9), source
    hours = [sum(row[1:]) for row in series.values]
    assert hours == pytest.approx([m / 60 for m in MONTH.minutes_per_day()], abs=1e-6)  # every minute has a source


def check_shedding_per_day(client: InfluxQLClient, docs: dict[str, ReportDocument]) -> None:
    [series] = _run(client, monthly.SHEDDING_PER_DAY)
    rows = series.rows()
    assert [r["scheduled"] for r in rows] == pytest.approx([m / 60 for m in _daily(docs)["shedding_scheduled_min"]])
    assert [r["unscheduled"] for r in rows] == pytest.approx(
        [m / 60 for m in _daily(docs)["shedding_unscheduled_min"]])


def check_shedding_total(client: InfluxQLClient, docs: dict[str, ReportDocument]) -> None:
    [series] = _run(client, monthly.SHEDDING_TOTAL)
    row = _one_row(series)
    figures = docs["energy"].figures
    assert row["scheduled"] == pytest.approx(figures["load_shedding_scheduled_h"], abs=0.005)  # the figure: 0.01 h
    assert row["unscheduled"] == pytest.approx(figures["load_shedding_unscheduled_h"], abs=0.005)
    assert row["scheduled"] > 0 and row["unscheduled"] > 0


def check_energy_per_day(client: InfluxQLClient, docs: dict[str, ReportDocument]) -> None:
    [series] = _run(client, monthly.ENERGY_PER_DAY)
    rows = series.rows()
    for column, name in (("PV", "pv_kwh"), ("battery in", "battery_in_kwh"), ("battery out", "battery_out_kwh"),
                         ("generator", "generator_kwh")):
        assert [r[column] for r in rows] == pytest.approx(_daily(docs)[name], abs=1e-9), name


def check_energy_total(client: InfluxQLClient, docs: dict[str, ReportDocument]) -> None:
    row = _one_row(_run(client, monthly.ENERGY_TOTAL)[0])
    figures = docs["energy"].figures
    assert (row["PV"], row["battery out"], row["generator"], row["fuel (l)"]) == pytest.approx(
        (figures["pv_kwh"], figures["battery_out_kwh"], figures["generator_kwh"], figures["fuel_l"]))


def check_cost(client: InfluxQLClient, docs: dict[str, ReportDocument]) -> None:
    row = _one_row(_run(client, monthly.COST)[0])
    figures = docs["energy"].figures
    assert (row["saved by solar"], row["grid it replaced"], row["diesel it replaced"], row["diesel burnt"]) == (
        pytest.approx((figures["grid_saved"] + figures["diesel_saved"], figures["grid_saved"],
                       figures["diesel_saved"], figures["diesel_cost"])))


def check_cost_table(client: InfluxQLClient, docs: dict[str, ReportDocument]) -> None:
    row = _one_row(_run(client, monthly.COST_TABLE)[0])
    figures = docs["energy"].figures
    assert row["currency"] == "PKR" and row["time"] == MONTH.start_s * 1000
    assert row["diesel_l_per_kwh"] == pytest.approx(figures["diesel_l_per_kwh"])
    assert row["saved"] == pytest.approx(figures["saved"])


def _battery(docs: dict[str, ReportDocument]) -> dict[str, Any]:
    return docs["battery"].figures["inv-a"]


def check_capacity_trend(client: InfluxQLClient, docs: dict[str, ReportDocument]) -> None:
    [series] = _run(client, monthly.CAPACITY_TREND)
    weekly = _battery(docs)["weekly_capacity_ah"]
    expected = [((MONTH.start_s + week * 7 * 86400) * 1000, pytest.approx(ah)) for week, ah in enumerate(weekly)
                if ah is not None]
    assert [tuple(row) for row in series.values] == expected
    assert len(expected) >= 3


def check_battery_table(client: InfluxQLClient, docs: dict[str, ReportDocument]) -> None:
    row = _one_row(_run(client, monthly.BATTERY_TABLE)[0])
    figures = _battery(docs)
    assert (row["capacity_ah"], row["rated_ah"], row["capacity_pct"], row["cycles"]) == pytest.approx(
        (figures["capacity_ah"], figures["rated_ah"], figures["capacity_pct"], figures["cycles"]))
    assert row["below_alert"] is figures["below_alert"]
    spread = figures["cell_spread"]
    assert (row["cell_delta_max_mv"], row["cell_delta_mean_mv"]) == pytest.approx((spread["max_mv"],
                                                                                    spread["mean_mv"]))


def check_cycles(client: InfluxQLClient, docs: dict[str, ReportDocument]) -> None:
    [series] = _run(client, monthly.CYCLES)
    assert series.values[0][1] == pytest.approx(_battery(docs)["cycles"]) and series.tags["battery"] == "inv-a"


def check_dod(client: InfluxQLClient, docs: dict[str, ReportDocument]) -> None:
    [series] = _run(client, monthly.DOD)
    assert list(series.values[0][1:]) == _battery(docs)["dod_histogram"]
    assert sum(series.values[0][1:]) >= 9


def check_cell_spread(client: InfluxQLClient, docs: dict[str, ReportDocument]) -> None:
    [series] = _run(client, monthly.CELL_SPREAD)
    weekly = _battery(docs)["cell_spread"]["weekly"]
    assert [tuple(row) for row in series.values] == [
        ((MONTH.start_s + week * 7 * 86400) * 1000, pytest.approx(w["max_mv"]), pytest.approx(w["mean_mv"]))
        for week, w in enumerate(weekly) if w["max_mv"] is not None]


CHECKS: dict[str, Callable[[InfluxQLClient, dict[str, ReportDocument]], None]] = {
    monthly.AVAILABILITY: check_availability, monthly.SLA_TABLE: check_sla_table,
    monthly.MINUTES_BY_CLASS: check_minutes_by_class, monthly.DOWN_PER_DAY: check_down_per_day,
    monthly.OUTAGES: check_outages, monthly.SOURCES_PER_DAY: check_sources_per_day,
    monthly.SHEDDING_PER_DAY: check_shedding_per_day, monthly.SHEDDING_TOTAL: check_shedding_total,
    monthly.ENERGY_PER_DAY: check_energy_per_day, monthly.ENERGY_TOTAL: check_energy_total, monthly.COST: check_cost,
    monthly.COST_TABLE: check_cost_table, monthly.CAPACITY_TREND: check_capacity_trend,
    monthly.BATTERY_TABLE: check_battery_table, monthly.CYCLES: check_cycles, monthly.DOD: check_dod,
    monthly.CELL_SPREAD: check_cell_spread,
}


def _monthly_targets() -> list[tuple[str, str]]:
    [built] = [b for b in build_dashboards(DashboardOptions()) if b.uid == monthly.UID]
    return [(panel["title"], t["query"]) for panel in dashboard_json(built)["panels"] for t in panel["targets"]]


TARGETS = _monthly_targets()


@pytest.mark.parametrize(("title", "query"), TARGETS, ids=[title[:40] for title, _ in TARGETS])
def test_every_monthly_panel_shows_the_reports_figures(month_db: tuple[InfluxQLClient, Truth, Path],
                                                       reports: dict[str, ReportDocument], title: str,
                                                       query: str) -> None:
    assert query in CHECKS, f"panel {title!r} has no check against the reports"
    CHECKS[query](month_db[0], reports)


def test_the_variables_narrow_and_the_wrong_site_shows_nothing(month_db: tuple[InfluxQLClient, Truth, Path],
                                                                reports: dict[str, ReportDocument]) -> None:
    client = month_db[0]
    assert [s.tags["uplink"] for s in _run(client, monthly.MINUTES_BY_CLASS, {**ALL, "uplink": ["up-own"]})] == [
        "up-own"]
    assert _run(client, monthly.CYCLES, {**ALL, "site": ["elsewhere"]}) == []


COUNTED = (("report_isp_day", "up_min"), ("report_energy_day", "pv_kwh"), ("report_isp_outage", "cause"),
           ("report_battery_week", "sag_v_at_100a"))


def _count(client: InfluxQLClient, measurement: str, field: str) -> int:
    series = client.query(f'SELECT count("{field}") FROM "{measurement}" WHERE site = \'testpark\'')
    return series[0].values[0][1] if series else 0


def test_storing_again_replaces_the_month(month_db: tuple[InfluxQLClient, Truth, Path], influxdb: InfluxDB,
                                          reports: dict[str, ReportDocument], monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The daily job on 15 November stores the month through the 14th; a stray outage point (a run
    that found an outage later data disproved) is gone after the next store; `facmon report store`
    stores the whole month again, the same points as the first time."""
    client, _, site_path = month_db
    site: Site = load_site(site_path)
    whole = {m: _count(client, m, f) for m, f in COUNTED}
    assert whole["report_isp_day"] == 2 * 30 and whole["report_energy_day"] == 30
    stray = (MONTH.start_s + 5 * 86400 + 3600) * 1_000_000_000
    writer = _writer(influxdb)
    writer.write([f'report_isp_outage,isp=PTCL,site=testpark,uplink=up-isp cause="down_isp",duration_min=5i {stray}'])
    clock = FakeClock(datetime(2026, 11, 15, 0, 30, tzinfo=TZ).timestamp())
    MonthStore(client, writer, clock).store_month_of_yesterday(site)
    writer.close()
    assert _count(client, "report_isp_day", "up_min") == 2 * 14 and _count(client, "report_energy_day", "pv_kwh") == 14
    [month_point] = client.query("SELECT * FROM report_isp_month WHERE uplink = 'up-isp'")[0].rows()
    assert sum(month_point[f"{c}_min"] for c in monthly.CLASSES) == 14 * 1440
    assert not client.query(f"SELECT * FROM report_isp_outage WHERE time = {stray}")

    monkeypatch.setenv("FACMON_INFLUXDB__URL", influxdb.url)
    monkeypatch.setenv("FACMON_INFLUXDB__DATABASE", MONTH_DB)
    monkeypatch.setenv("FACMON_SITES__FILES", str(site_path))
    assert main(["report", "store", "--site", "testpark", "--month", "2026-11"]) == 0
    assert "testpark 2026-11: " in capsys.readouterr().out
    assert {m: _count(client, m, f) for m, f in COUNTED} == whole
    check_minutes_by_class(client, reports)
    assert main(["report", "store", "--site", "testpark", "--month", "2199-01"]) == 2  # nothing of it is over yet

