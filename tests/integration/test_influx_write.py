"""core.influx_write's v1 writer (on core.http_client) against a real influxd 1.6.7: points stored,
connections kept alive and renewed when the server closed them, InfluxDB's answers mapped to the
documented exceptions, and a guarded server (HTTPS, authentication on) written to and read from
(core.influxql, on the same HTTP client) with the settings a site would use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.influx_write import (
    InfluxDatabaseMissing,
    InfluxNotAuthorized,
    InfluxPointsRefused,
    InfluxUnavailable,
    V1LineWriter,
)
from core.influxql import InfluxQLClient, InfluxQueryError
from core.settings.influxdb import InfluxSettings
from facmon.servers import InfluxDB, free_port
from tests.servers import GuardedInfluxDB

pytestmark = pytest.mark.integration
BASE_NS = 1_767_225_600_000_000_000


def _lines(first: int, count: int) -> list[str]:
    return [f"m,k=v n={n}i {BASE_NS + n * 1_000_000}" for n in range(first, first + count)]


def _stored(influxd: InfluxDB, database: str) -> int:
    [series] = influxd.query('SELECT count("n") FROM "m"', database) or [None]
    return 0 if series is None else int(series.values[0][1])


def test_writes_are_stored_over_one_connection_renewed_after_the_server_restarts(own_influxd: InfluxDB) -> None:
    writer = V1LineWriter(InfluxSettings(url=own_influxd.url, database="w"))
    try:
        writer.ensure_database()
        for batch in range(3):
            writer.write(_lines(batch * 10, 10))
        assert _stored(own_influxd, "w") == 30
        own_influxd.restart(timeout_s=60)
        writer.write(_lines(30, 5))  # the kept-alive connection died with the old server: sent again, once
        assert _stored(own_influxd, "w") == 35
    finally:
        writer.close()


def test_influxdb_answers_map_to_what_the_caller_must_do(influxdb: InfluxDB) -> None:
    missing = V1LineWriter(InfluxSettings(url=influxdb.url, database="never_created_here",
                                          create_database=False))
    with pytest.raises(InfluxDatabaseMissing, match="create the database"):
        missing.write(_lines(0, 1))
    writer = V1LineWriter(InfluxSettings(url=influxdb.url, database="w_refused"))
    writer.ensure_database()
    with pytest.raises(InfluxPointsRefused, match="unable to parse"):
        writer.write(["m,k=v n= 1"])
    writer.write(_lines(0, 2))  # the connection is still good after a refusal
    assert _stored(influxdb, "w_refused") == 2
    closed_port = free_port()
    gone = V1LineWriter(InfluxSettings(url=f"http://127.0.0.1:{closed_port}", database="w", timeout_s=2))
    with pytest.raises(InfluxUnavailable, match=f"127.0.0.1:{closed_port}.*Connection ?Refused"):
        gone.write(_lines(0, 1))
    for each in (missing, writer, gone):
        each.close()


@pytest.fixture(scope="module")
def guarded_influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuardedInfluxDB]:
    server = GuardedInfluxDB(tmp_path_factory.mktemp("guarded-influxd"))
    server.start()
    try:
        server.wait_ready(60)
        server.create_admin()
        yield server
    finally:
        server.stop()


def _guarded_settings(server: GuardedInfluxDB, tmp_path: Path, password: str, **overrides: object) -> InfluxSettings:
    password_file = tmp_path / "influx-password"
    password_file.write_text(password)
    return InfluxSettings(url=server.url, database="guarded", username="admin", password_file=password_file,
                          **overrides)


def test_a_guarded_server_takes_writes_with_its_credentials_over_tls(guarded_influxd: GuardedInfluxDB,
                                                                   tmp_path: Path) -> None:
    writer = V1LineWriter(_guarded_settings(guarded_influxd, tmp_path, guarded_influxd.admin_password,
                                            verify_tls=False))
    try:
        writer.ensure_database()
        writer.write(_lines(0, 3))
        writer.write(_lines(3, 3))
    finally:
        writer.close()
    with InfluxQLClient(guarded_influxd.url, "guarded", "admin", guarded_influxd.admin_password,
                        verify_tls=False) as reader:
        assert reader.query('SELECT count("n") FROM "m"')[0].values[0][1] == 6
    with InfluxQLClient(guarded_influxd.url, "guarded", "admin", "not the password", verify_tls=False) as reader, \
            pytest.raises(InfluxQueryError, match="authorization failed"):
        reader.query('SELECT count("n") FROM "m"')
    wrong = V1LineWriter(_guarded_settings(guarded_influxd, tmp_path, "not the password", verify_tls=False))
    with pytest.raises(InfluxNotAuthorized, match="check the InfluxDB user/password"):
        wrong.write(_lines(6, 1))
    wrong.close()


def test_an_untrusted_certificate_is_refused_saying_what_to_do(guarded_influxd: GuardedInfluxDB,
                                                              tmp_path: Path) -> None:
    writer = V1LineWriter(_guarded_settings(guarded_influxd, tmp_path, guarded_influxd.admin_password))
    with pytest.raises(InfluxUnavailable, match=r"certificate not trusted.*verify_tls false"):
        writer.write(_lines(0, 1))
    writer.close()
