"""The monthly reports against known truth: a simulated month of a small site (tests/integration/
reports/month_truth.py) in a real InfluxDB 1.6.7, every report compared minute by minute with what
the simulator knew. The month is written once for the package (conftest.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import numpy as np
import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import Role
from core.clock import FakeClock, SystemClock
from core.influxql import InfluxQLClient
from core.site import load_site
from facmon.cli import main
from facmon.commands.api import wired_services
from facmon.servers import InfluxDB, Mosquitto, free_port
from reports.battery import battery_report
from reports.build import build_report
from reports.energy import energy_report
from reports.isp import MinuteClass, isp_report
from reports.mail import MailError, MonthlyMail, SmtpSender
from reports.month import ReportMonth
from reports.source import ReportSource
from tests.integration.api_stack import make_tokens, stack_config
from tests.integration.reports.month_truth import DAYS, TZ, Truth

pytestmark = pytest.mark.integration


def _source(client: InfluxQLClient, month: str = "2026-11") -> ReportSource:
    return ReportSource(client, "testpark", ReportMonth.parse(month, TZ))


def test_isp_minutes_attributed_exactly(month_db: tuple[InfluxQLClient, Truth, Path]) -> None:
    client, truth, site_path = month_db
    doc = isp_report(_source(client), load_site(site_path))
    for uplink, expected in truth.isp_class.items():
        minutes = doc.figures[uplink]["minutes"]
        want = {c.name.lower(): int((expected == c.name.lower()).sum()) for c in MinuteClass}
        assert minutes == want, uplink
        up, isp = want["up"], want["down_isp"]
        assert doc.figures[uplink]["availability_pct"] == pytest.approx(100 * up / (up + isp), abs=0.01)
    # the injected outages are all there, with the right causes
    causes = [(o["start"][:16], o["cause"], o["duration_min"]) for o in doc.figures["up-isp"]["outages"]]
    assert ("2026-11-03T03:00", "down_isp", 45) in causes
    assert ("2026-11-20T14:07", "down_isp", 90) in causes
    assert ("2026-11-12T02:00", "maintenance", 120) in causes
    assert any(cause == "down_power" for _, cause, _ in causes)
    assert doc.figures["up-isp"]["sla_met"] is (doc.figures["up-isp"]["availability_pct"] >= 99.5)
    notes = " ".join(doc.not_judged)
    assert "up-own (Jazz): the site file gives no sla_pct" in notes
    assert "first reading 2026-11-03 12:00" in notes


def test_energy_hours_per_source_within_a_minute_a_day(month_db: tuple[InfluxQLClient, Truth, Path]) -> None:
    client, truth, site_path = month_db
    source = _source(client)
    doc = energy_report(source, load_site(site_path))
    day = source.month.day_of_minute[: len(truth.mode)]
    stored = np.array(truth.stored)
    modes = np.array(truth.mode)
    for mode, per_day in doc.figures["minutes_by_mode"]["inv-a"].items():
        expected = np.bincount(day[stored & (modes == mode)], minlength=DAYS)
        assert np.abs(np.array(per_day) - expected).max() <= 1, mode
    out = np.array(truth.grid_out) & stored
    scheduled = np.array(truth.scheduled)
    for name, expected in (("load_shedding_scheduled_min", np.bincount(day[out & scheduled], minlength=DAYS)),
                           ("load_shedding_unscheduled_min", np.bincount(day[out & ~scheduled], minlength=DAYS))):
        assert np.abs(np.array(doc.figures[name]) - expected).max() <= 1, name
    assert doc.figures["no_data_min"]["inv-a"][24] == 150
    assert doc.figures["fuel_l"] > 0 and doc.figures["generator_run_h"] > 0
    assert doc.figures["diesel_cost"] == pytest.approx(doc.figures["fuel_l"] * 285)


def test_battery_capacity_within_three_percent(month_db: tuple[InfluxQLClient, Truth, Path]) -> None:
    client, truth, site_path = month_db
    doc = battery_report(_source(client), load_site(site_path))
    figures = doc.figures["inv-a"]
    true_mean = float(np.mean(truth.capacity_ah))
    assert figures["capacity_ah"] == pytest.approx(true_mean, rel=0.03)
    assert figures["rated_ah"] == pytest.approx(10_000 / 48)
    weekly = [w for w in figures["weekly_capacity_ah"] if w is not None]
    assert weekly[0] > weekly[-1]  # it fades
    assert sum(figures["dod_histogram"]) >= 9
    assert figures["weekly_sag_v_at_100a"][0] == pytest.approx(2.0, rel=0.1)  # 0.02 Ω in the simulator


def test_cell_spread_follows_the_simulated_cells(month_db: tuple[InfluxQLClient, Truth, Path]) -> None:
    """The simulated battery's spread grows from 25 mV by 90 mV a month (3 mV a day, 21 mV a week): the
    report's weekly highest and mean of the 15-minute spreads, and its trend, against that truth."""
    client, truth, site_path = month_db
    source = _source(client)
    doc = battery_report(source, load_site(site_path))
    spread = doc.figures["inv-a"]["cell_spread"]
    week = source.month.day_of_minute[: len(truth.cell_spread_mv)] // 7
    stored = np.array(truth.stored)
    true_mv = np.array(truth.cell_spread_mv)
    for index, got in enumerate(spread["weekly"]):
        here = true_mv[(week == index) & stored]
        # A 15-minute bucket's mean lags its last minute by 7 minutes of growth (0.015 mV); readings round to 0.1 mV.
        assert got["max_mv"] == pytest.approx(here.max(), abs=0.1), index
        assert got["mean_mv"] == pytest.approx(here.mean(), abs=0.1), index
    assert spread["max_mv"] == pytest.approx(true_mv[stored].max(), abs=0.1)
    assert spread["trend_mv_per_week"] == pytest.approx(90 * 7 / 30, rel=0.01)
    assert spread["above_alert"] is True  # 25 + 87 mV by the month's end
    [line] = [value for label, value in doc.summary if label == "Cell spread of inv-a"]
    assert "ABOVE 100 mV" in line and not any("cell" in note for note in doc.not_judged)


def test_facmon_report_writes_html_csv_and_pdf(month_db: tuple[InfluxQLClient, Truth, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, influxdb: InfluxDB) -> None:
    _, _, site_path = month_db
    monkeypatch.setenv("FACMON_INFLUXDB__URL", influxdb.url)
    monkeypatch.setenv("FACMON_INFLUXDB__DATABASE", "reports_month")
    monkeypatch.setenv("FACMON_SITES__FILES", str(site_path))
    out = tmp_path / "out"
    assert main(["report", "isp", "--site", "testpark", "--month", "2026-11", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["testpark-isp-2026-11-minutes.csv", "testpark-isp-2026-11-outages.csv",
                     "testpark-isp-2026-11.html", "testpark-isp-2026-11.pdf"]
    page = (out / "testpark-isp-2026-11.html").read_text()
    assert "<svg" in page and "What could not be judged" in page and "2026-11-03 03:00" in page
    assert (out / "testpark-isp-2026-11.pdf").read_bytes().startswith(b"%PDF")
    outages = (out / "testpark-isp-2026-11-outages.csv").read_text().splitlines()
    assert outages[0] == "uplink,isp,start,end,duration_min,cause,loss_pct,link_down_min,power_out_min"
    assert "up-isp,PTCL,2026-11-20 14:07,2026-11-20 15:37,90,ISP,100.0,90,0" in outages
    assert main(["report", "energy", "--site", "testpark", "--month", "2026-13", "--out", str(out)]) == 2


def test_a_month_without_data_says_so_instead_of_failing(month_db: tuple[InfluxQLClient, Truth, Path]) -> None:
    client, _, site_path = month_db
    site = load_site(site_path)
    for build in (isp_report, energy_report, battery_report):
        doc = build(_source(client, "2026-09"), site)
        assert doc.not_judged, build.__name__
    isp = isp_report(_source(client, "2026-09"), site)
    assert isp.figures["up-isp"]["availability_pct"] is None
    assert "up-isp (PTCL): no readings at all this month" in isp.not_judged


def test_api_serves_the_same_figures(month_db: tuple[InfluxQLClient, Truth, Path], tmp_path: Path,
                                     mosquitto: Mosquitto) -> None:
    client, _, site_path = month_db
    config = stack_config(tmp_path, mosquitto, client, (site_path,))
    with wired_services(config, SystemClock()) as services, TestClient(create_app(services)) as api:
        headers = {"Authorization": f"Bearer {make_tokens(services)[Role.VIEWER]}"}
        answer = api.get("/api/v1/reports/isp", params={"site": "testpark", "month": "2026-11"}, headers=headers)
        assert answer.status_code == 200, answer.text
        expected = isp_report(_source(client), load_site(site_path)).as_json()
        assert answer.json()["figures"] == expected["figures"]
        assert answer.json()["not_judged"] == list(expected["not_judged"])
        bad = api.get("/api/v1/reports/isp", params={"site": "testpark", "month": "2026-13"}, headers=headers)
        assert bad.status_code == 422 and "YYYY-MM" in bad.text
        missing = api.get("/api/v1/reports/energy", params={"site": "nowhere", "month": "2026-11"}, headers=headers)
        assert missing.status_code == 404
        anonymous = api.get("/api/v1/reports/battery", params={"site": "testpark", "month": "2026-11"})
        assert anonymous.status_code == 401


class _Inbox:
    """aiosmtpd's handler: keeps every message, answers `reply`."""

    def __init__(self, reply: str = "250 OK") -> None:
        self.reply = reply
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append(envelope.content)  # type: ignore[attr-defined]
        return self.reply


@contextlib.contextmanager
def _smtp(inbox: _Inbox) -> Iterator[int]:
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def test_the_monthly_mail_carries_the_three_pdfs(month_db: tuple[InfluxQLClient, Truth, Path], tmp_path: Path) -> None:
    """The cron job as it runs on 1 December at 09:00 in Karachi, through a real SMTP server (aiosmtpd)."""
    client, _, site_path = month_db
    inbox = _Inbox()
    with _smtp(inbox) as port:
        clock = FakeClock(datetime(2026, 12, 1, 9, 0, tzinfo=TZ).timestamp())
        mail = MonthlyMail(lambda kind, site, month: build_report(kind, client, site, month),
                           SmtpSender("127.0.0.1", port), "facmon@park.test", ["manager@park.test"], tmp_path, clock)
        mail.send_previous_month(load_site(site_path))
    [raw] = inbox.messages
    message = message_from_bytes(raw, policy=default_policy)
    assert message["Subject"] == "Test park: monthly reports 2026-11" and message["To"] == "manager@park.test"
    attached = {part.get_filename(): part.get_content() for part in message.iter_attachments()}
    assert sorted(attached) == ["testpark-battery-2026-11.pdf", "testpark-energy-2026-11.pdf",
                                "testpark-isp-2026-11.pdf"]
    assert all(content.startswith(b"%PDF") for content in attached.values())
    text = message.get_body(("plain",)).get_content()
    assert "ISP availability 2026-11" in text and "  PTCL (up-isp): " in text and "Battery of inv-a" in text


def test_a_refused_mail_says_whether_to_retry() -> None:
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = "x", "facmon@park.test", "manager@park.test"
    message.set_content("x")
    for reply, retryable in (("451 4.3.0 try again later", True), ("554 5.7.1 refused", False)):
        with _smtp(_Inbox(reply)) as port, pytest.raises(MailError) as err:
            SmtpSender("127.0.0.1", port)(message)
        assert err.value.retryable is retryable and reply[:3] in str(err.value)
