"""`render_query` substitutes what Grafana substitutes, escaped as Grafana escapes it."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboards.queries import (
    InfluxQLTarget,
    TimeRange,
    UnresolvedVariableError,
    format_variable,
    regex_escape,
    render_query,
    variables_used,
)

RANGE = TimeRange(1_700_000_000_000, 1_700_003_600_000, "30s")


def test_macros_and_variables() -> None:
    query = 'SELECT mean("rtt_ms") FROM "uplink" WHERE $timeFilter AND "isp" =~ /^$isp$/ GROUP BY time($__interval)'
    assert render_query(query, RANGE, {"isp": ["Jazz 4G", "PTCL"]}) == (
        'SELECT mean("rtt_ms") FROM "uplink" WHERE time >= 1700000000000ms and time <= 1700003600000ms '
        'AND "isp" =~ /^(Jazz 4G|PTCL)$/ GROUP BY time(30s)')


def test_all_is_a_match_everything_regex_and_braces_work() -> None:
    assert render_query('"site" =~ /^${site}$/', RANGE, {"site": [".*"]}) == '"site" =~ /^.*$/'


def test_unknown_variable_is_an_error() -> None:
    with pytest.raises(UnresolvedVariableError, match=r"\$device"):
        render_query('"device" =~ /^$device$/', RANGE, {})


def test_variables_used_excludes_grafana_macros() -> None:
    assert variables_used("WHERE $timeFilter AND $site GROUP BY time($__interval), [[room]]") == {"site", "room"}


def test_escaping_slashes_and_regex_specials() -> None:
    assert format_variable(["a/b", "c.d"]) == r"(a\/b|c\.d)"
    with pytest.raises(UnresolvedVariableError):
        format_variable([])


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=40))
def test_an_escaped_value_matches_itself_and_nothing_longer(value: str) -> None:
    pattern = "^" + regex_escape(value) + "$"
    assert re.search(pattern, value)
    assert not re.search(pattern, value + "x")
    assert "/" not in pattern.replace("\\/", "")


def test_time_range_validates() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        TimeRange(2, 1)
    with pytest.raises(ValueError, match="InfluxQL duration"):
        TimeRange(1, 2, "1 minute")


def test_target_round_trip_and_rejections() -> None:
    target = InfluxQLTarget("SELECT 1", "B", "table", alias="$tag_isp")
    assert InfluxQLTarget.from_json(target.to_json()).to_json() == target.to_json()
    with pytest.raises(ValueError, match="result_format"):
        InfluxQLTarget("SELECT 1", result_format="graph")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="query is missing"):
        InfluxQLTarget.from_json({"refId": "A", "rawQuery": True, "query": " "})
