"""The reports' figures as InfluxDB points (reports/store.py) and the month so far, without a server:
what is left out, what replaces what, where the points fall in time."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from core.clock import FakeClock
from core.site import load_site
from reports.month import BadMonth, ReportMonth
from reports.schedule import MISFIRE_GRACE_S
from reports.store import (
    MEASUREMENTS,
    MonthStore,
    daily_store_trigger,
    delete_statement,
    month_of_yesterday,
    point,
    schedule_daily_stores,
)
from simulators.scenario import DEFAULT_SITE

KARACHI = ZoneInfo("Asia/Karachi")


def test_a_point_leaves_out_what_was_not_judged_and_writes_numpy_numbers_as_numbers() -> None:
    line = point("report_isp_month", {"site": "park", "uplink": "up-1", "isp": "Jazz 4G"},
                 {"availability_pct": np.float64(99.5), "sla_pct": None, "outages": np.int64(3),
                  "sla_met": np.bool_(True), "allowed_down_min": float("nan"), "cause": 'ISP "fiber"'}, 1_793_473_200)
    assert line == ('report_isp_month,isp=Jazz\\ 4G,site=park,uplink=up-1 availability_pct=99.5,outages=3i,'
                    'sla_met=true,cause="ISP \\"fiber\\"" 1793473200000000000')
    assert point("report_isp_month", {"site": "park"}, {"availability_pct": None}, 0) is None


def test_storing_a_month_deletes_exactly_that_calendar_month() -> None:
    month = ReportMonth.so_far("2026-11", KARACHI, date(2026, 11, 15))
    statements = delete_statement("park", month).split(";")
    assert len(statements) == len(MEASUREMENTS)
    start = int(datetime(2026, 11, 1, tzinfo=KARACHI).timestamp())
    end = int(datetime(2026, 12, 1, tzinfo=KARACHI).timestamp())  # the whole month, not through the 14th
    for statement, measurement in zip(statements, MEASUREMENTS, strict=True):
        assert statement == (f'DELETE FROM "{measurement}" WHERE site = \'park\' AND time >= {start}s AND '
                             f'time < {end}s')


def test_a_month_so_far_ends_with_its_last_full_day() -> None:
    so_far = ReportMonth.so_far("2026-11", KARACHI, date(2026, 11, 15))
    assert so_far.days[-1] == date(2026, 11, 14) and so_far.minutes == 14 * 1440 and not so_far.complete
    assert so_far.per_day(np.ones(so_far.minutes, dtype=bool)).tolist() == [1440] * 14
    assert ReportMonth.so_far("2026-11", KARACHI, date(2026, 12, 1)) == ReportMonth.parse("2026-11", KARACHI)
    assert ReportMonth.so_far("2026-11", KARACHI, date(2027, 3, 1)).complete
    with pytest.raises(BadMonth, match="no complete day"):
        ReportMonth.so_far("2026-11", KARACHI, date(2026, 11, 1))


def test_the_daily_store_takes_the_month_of_yesterday_at_half_past_midnight_site_time() -> None:
    assert month_of_yesterday(datetime(2026, 12, 1, 0, 30, tzinfo=KARACHI).timestamp(), KARACHI) == "2026-11"
    assert month_of_yesterday(datetime(2026, 11, 15, 0, 30, tzinfo=KARACHI).timestamp(), KARACHI) == "2026-11"
    # 2 December 03:00 in Karachi is still 1 December in UTC, whose yesterday would be November's.
    assert month_of_yesterday(datetime(2026, 12, 2, 3, 0, tzinfo=KARACHI).timestamp(), KARACHI) == "2026-12"
    site = load_site(DEFAULT_SITE)
    fired = daily_store_trigger(site).get_next_fire_time(None, datetime(2026, 11, 15, 12, 0, tzinfo=KARACHI))
    assert fired == datetime(2026, 11, 16, 0, 30, tzinfo=KARACHI)


def test_one_store_job_per_site_on_the_scheduler() -> None:
    site = load_site(DEFAULT_SITE)
    scheduler = BackgroundScheduler()
    schedule_daily_stores(scheduler, MonthStore(None, None, FakeClock()), [site])  # type: ignore[arg-type]
    scheduler.start(paused=True)
    try:
        [job] = scheduler.get_jobs()
        assert job.id == "report-store-park" and job.args == (site,)
        assert job.name == "monthly figures of park into InfluxDB"
        assert (job.misfire_grace_time, job.coalesce) == (MISFIRE_GRACE_S, True)
        assert (job.next_run_time.hour, job.next_run_time.minute, str(job.next_run_time.tzinfo)) == (
            0, 30, "Asia/Karachi")
    finally:
        scheduler.shutdown(wait=False)
