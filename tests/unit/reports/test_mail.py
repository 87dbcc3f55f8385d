"""The monthly e-mail's pure parts: which month, when, and what the message holds."""

from __future__ import annotations

from datetime import datetime
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler

from core.clock import FakeClock
from core.site import load_site
from reports.document import ReportDocument
from reports.mail import MonthlyMail, monthly_message, monthly_trigger, previous_month, schedule_monthly
from reports.schedule import MISFIRE_GRACE_S
from simulators.scenario import DEFAULT_SITE

KARACHI = ZoneInfo("Asia/Karachi")


def test_the_previous_month_is_the_site_s_local_one() -> None:
    # 2026-12-01 03:00 in Karachi is still 30 November in UTC: the report is November's either way.
    assert previous_month(datetime(2026, 12, 1, 3, 0, tzinfo=KARACHI).timestamp(), KARACHI) == "2026-11"
    assert previous_month(datetime(2027, 1, 1, 0, 0, tzinfo=KARACHI).timestamp(), KARACHI) == "2026-12"
    assert previous_month(datetime(2026, 11, 30, 23, 59, tzinfo=KARACHI).timestamp(), KARACHI) == "2026-10"


def test_the_trigger_fires_on_the_first_at_nine_site_time() -> None:
    site = load_site(DEFAULT_SITE)
    fired = monthly_trigger(site, 9).get_next_fire_time(None, datetime(2026, 11, 15, 12, 0, tzinfo=KARACHI))
    assert fired == datetime(2026, 12, 1, 9, 0, tzinfo=KARACHI)
    assert fired.utcoffset().total_seconds() == 5 * 3600


def test_one_job_per_site_on_the_scheduler() -> None:
    site = load_site(DEFAULT_SITE)
    scheduler = BackgroundScheduler()
    mail = MonthlyMail(lambda *_: None, lambda _: None, "f@x.test", ["m@x.test"], Path("."), FakeClock())  # type: ignore[arg-type,return-value]
    schedule_monthly(scheduler, mail, [site], 9)
    scheduler.start(paused=True)
    try:
        [job] = scheduler.get_jobs()
        assert job.id == "monthly-mail-park" and job.args == (site,) and job.name == "monthly reports of park"
        assert (job.misfire_grace_time, job.coalesce) == (MISFIRE_GRACE_S, True)
        assert (job.next_run_time.day, job.next_run_time.hour, job.next_run_time.minute) == (1, 9, 0)
        assert str(job.next_run_time.tzinfo) == "Asia/Karachi"
    finally:
        scheduler.shutdown(wait=False)


def test_the_message_holds_every_summary_note_and_pdf(tmp_path: Path) -> None:
    site = load_site(DEFAULT_SITE)
    docs = [ReportDocument(kind, f"{kind} 2026-11", "park", site.name, "2026-11", site.timezone,
                           (("Figure", f"{kind} value"),), not_judged=(f"{kind} gap",)) for kind in ("isp", "energy")]
    pdfs = []
    for kind in ("isp", "energy"):
        pdfs.append(tmp_path / f"park-{kind}-2026-11.pdf")
        pdfs[-1].write_bytes(b"%PDF-1.4 " + kind.encode())
    raw = monthly_message(site, "2026-11", docs, pdfs, "facmon@park.test", ["manager@park.test"]).as_bytes()
    message = message_from_bytes(raw, policy=default_policy)
    assert message["Subject"] == f"{site.name}: monthly reports 2026-11"
    assert message["Message-ID"] == "<monthly-park-2026-11@facmon>"
    text = message.get_body(("plain",)).get_content()
    assert "  Figure: isp value" in text and "  not judged: energy gap" in text
    attached = {part.get_filename(): part.get_content() for part in message.iter_attachments()}
    assert attached == {"park-isp-2026-11.pdf": b"%PDF-1.4 isp", "park-energy-2026-11.pdf": b"%PDF-1.4 energy"}
