"""core.influxql against a real influxd 1.6: quoting keeps any text a value (never query structure),
bound parameters work, errors map to the documented exceptions."""

from __future__ import annotations

import itertools

import pytest
import urllib3
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.influxql import (
    InfluxQLClient,
    InfluxQueryError,
    InfluxUnavailable,
    quote_ident,
    quote_regex,
    quote_string,
    regex_any_of,
    time_literal,
)
from core.line_protocol import escape_string_field, escape_tag
from facmon.servers import InfluxDB, free_port

pytestmark = pytest.mark.integration
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), min_size=1, max_size=30)
# Tag values line protocol can carry to influxd 1.6.7: it rejects a tag value ending in a backslash
# ("invalid tag format"), and core.line_protocol.escape_tag turns control whitespace into an
# unescaped space, which breaks the line (reported to its owner). The quoting itself is tested on
# whatever influxd stored.
TAG_TEXT = TEXT.filter(lambda v: not v.endswith("\\") and not any(c in v for c in "\n\t\x0b\x0c"))
NASTY = ["' OR 1=1 --", '"; DROP DATABASE x; --', "a\\b", "\\'x", "/.*/", "x' ; SELECT * FROM \"m\" --", "$v"]
BASE_MS = 1_767_225_600_000
_point_numbers = itertools.count()


def _write(influxdb: InfluxDB, database: str, lines: list[str]) -> None:
    response = urllib3.request("POST", f"{influxdb.url}/write?db={database}&precision=ms",
                               body="\n".join(lines).encode())
    assert response.status == 204, response.data


def _stored_values(client: InfluxQLClient) -> dict[str, set[int]]:
    """Every stored tag value `k` → the `n` of its points, read without any quoting of values."""
    found: dict[str, set[int]] = {}
    for series in client.query('SELECT "n" FROM "m" GROUP BY "k"'):
        found[series.tags["k"]] = {row[1] for row in series.values}
    return found


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(TAG_TEXT, min_size=1, max_size=3))
@example(NASTY)
def test_quoted_tag_values_select_exactly_their_points(influxdb: InfluxDB, influx_db: InfluxQLClient,
                                                        values: list[str]) -> None:
    numbers = [next(_point_numbers) for _ in values]  # unique across examples sharing the database
    lines = [f"m,k={escape_tag(v)} n={n}i,s={escape_string_field(v)} {BASE_MS + n}" for n, v in zip(numbers, values,
                                                                                                strict=True)]
    _write(influxdb, influx_db.database, lines)
    stored = {v: ns for v, ns in _stored_values(influx_db).items() if ns & set(numbers)}
    assert set().union(*stored.values()) >= set(numbers)
    for value, numbers_with_value in stored.items():
        by_literal = influx_db.query(f'SELECT "n" FROM "m" WHERE "k" = {quote_string(value)}')
        assert {row[1] for s in by_literal for row in s.values} == numbers_with_value
        by_param = influx_db.query('SELECT "n" FROM "m" WHERE "k" = $v', params={"v": value})
        assert {row[1] for s in by_param for row in s.values} == numbers_with_value
        by_regex = influx_db.query(f'SELECT "n" FROM "m" WHERE "k" =~ {regex_any_of([value])}')
        assert {row[1] for s in by_regex for row in s.values} == numbers_with_value
        contains = influx_db.query(f'SELECT "n" FROM "m" WHERE "k" =~ {quote_regex(value)}')
        assert numbers_with_value <= {row[1] for s in contains for row in s.values}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(TAG_TEXT)
@example('"; DROP DATABASE x; --')
def test_quoted_field_keys_and_string_values_round_trip(influxdb: InfluxDB, influx_db: InfluxQLClient,
                                                        text: str) -> None:
    _write(influxdb, influx_db.database, [f"f {escape_tag(text)}={escape_string_field(text)} {BASE_MS}"])
    keys = {row[0] for s in influx_db.query('SHOW FIELD KEYS FROM "f"') for row in s.values}
    for key in keys:
        [series] = influx_db.query(f'SELECT {quote_ident(key)} FROM "f"')
        stored_value = series.values[0][1]
        [match] = influx_db.query(f'SELECT {quote_ident(key)} FROM "f" WHERE {quote_ident(key)} = '
                                  f'{quote_string(stored_value)}')
        assert match.values == ((BASE_MS, stored_value),)


def test_time_literal_bounds_a_range(influxdb: InfluxDB, influx_db: InfluxQLClient) -> None:
    _write(influxdb, influx_db.database, [f"m v={i} {BASE_MS + i}" for i in range(5)])
    [series] = influx_db.query(f'SELECT "v" FROM "m" WHERE time >= {time_literal(BASE_MS + 1)} '
                               f'AND time < {time_literal(BASE_MS + 3)}')
    assert series.values == ((BASE_MS + 1, 1.0), (BASE_MS + 2, 2.0))


def test_epoch_none_returns_rfc3339(influxdb: InfluxDB, influx_db: InfluxQLClient) -> None:
    _write(influxdb, influx_db.database, [f"m v=1 {BASE_MS + 5}"])
    [series] = influx_db.query('SELECT "v" FROM "m"', epoch=None)
    assert series.values == (("2026-01-01T00:00:00.005Z", 1.0),)


def test_errors_carry_influx_messages(influx_db: InfluxQLClient, influxdb: InfluxDB) -> None:
    with pytest.raises(InfluxQueryError, match="error parsing query") as caught:
        influx_db.query("SELEC 1")
    assert caught.value.status == 400
    with InfluxQLClient(influxdb.url, "no_such_db") as missing, \
            pytest.raises(InfluxQueryError, match="database not found: no_such_db"):
        missing.query('SELECT * FROM "m"')


def test_execute_creates_and_drops(influxdb: InfluxDB, influx_db: InfluxQLClient) -> None:
    name = f"{influx_db.database}_extra"
    influx_db.execute(f"CREATE DATABASE {quote_ident(name)}")
    listed = {row[0] for s in influx_db.query("SHOW DATABASES") for row in s.values}
    assert name in listed
    influx_db.execute(f"DROP DATABASE {quote_ident(name)}")
    assert name not in {row[0] for s in influx_db.query("SHOW DATABASES") for row in s.values}


def test_unreachable_server_is_unavailable() -> None:
    with InfluxQLClient(f"http://127.0.0.1:{free_port()}", "x", timeout_s=2) as client:
        assert not client.ping()
        with pytest.raises(InfluxUnavailable, match="cannot reach InfluxDB"):
            client.query("SHOW DATABASES")

