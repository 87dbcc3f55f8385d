"""The reports' figures as InfluxDB points (reports/store.py) and the month so far, without a server:
what is left out, what replaces what, where the points fall in time."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from reports.month import BadMonth, ReportMonth
from reports.store import MEASUREMENTS, delete_statement, point

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
