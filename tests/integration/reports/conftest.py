"""The simulated month, written once for every module of this package (test_reports_month.py,
test_monthly_dashboard.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.influxql import InfluxQLClient
from facmon.servers import InfluxDB
from tests.integration.reports.month_truth import Truth, write_month

MONTH_DB = "reports_month"


@pytest.fixture(scope="package")
def month_db(influxdb: InfluxDB,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InfluxQLClient, Truth, Path]]:
    influxdb.create_database(MONTH_DB)
    tmp = tmp_path_factory.mktemp("reports")
    truth = write_month(tmp, influxdb.url, MONTH_DB)
    client = InfluxQLClient(influxdb.url, MONTH_DB, timeout_s=60)
    yield client, truth, tmp / "testpark.yaml"
    client.close()
    influxdb.drop_database(MONTH_DB)
