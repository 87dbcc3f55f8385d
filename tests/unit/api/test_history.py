"""History: the exact InfluxQL built, the answer's shape, and hostile input refused before any query."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.history import Aggregate, BadHistoryRequest, HistoryRequest, history_query, parse_time
from core.contract import Kind
from core.influxql import Series
from tests.unit.api.harness import ApiHarness

DAY = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}


def test_device_history_builds_one_escaped_query_and_shapes_the_answer(api: ApiHarness) -> None:
    rows = ((1767225600000, 80.5), (1767225660000, 80.0))
    api.influx.series = [Series("inverter", ("time", "battery_soc_pct"), rows)]
    response = api.client.get("/api/v1/history/park/inv-main",
                              params={**DAY, "metrics": "battery_soc_pct", "interval": "1m", "agg": "mean"},
                              headers=api.headers())
    assert response.status_code == 200, response.text
    assert api.influx.queries == [
        'SELECT mean("battery_soc_pct") AS "battery_soc_pct" FROM "inverter" WHERE "site" = \'park\' AND '
        '"device" = \'inv-main\' AND time >= 1767225600000ms AND time < 1767312000000ms '
        'GROUP BY time(60s) fill(none)']
    body = response.json()
    assert body["series"] == [{"device": "inv-main", "times": ["2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"],
                               "values": {"battery_soc_pct": [80.5, 80.0]}}]


def test_group_history_groups_by_device() -> None:
    request = HistoryRequest.build("park", Kind.UPLINK, None, ["rtt_ms"], "2026-01-01T05:00:00+05:00",
                                   "2026-01-01T01:00:00Z", "10s", Aggregate.MAX, 20_000)
    assert request.start_ms == 1767225600000
    assert history_query(request) == (
        'SELECT max("rtt_ms") AS "rtt_ms" FROM "uplink" WHERE "site" = \'park\' AND time >= 1767225600000ms '
        'AND time < 1767229200000ms GROUP BY time(10s), "device" fill(none)')


HOSTILE = ["inv-main' OR 1=1 --", 'inv"; DROP DATABASE facmon', "inv-main/.*/", "x" * 5000, "INV-MAIN",
           "inv main", "inv-main\nSELECT", "inv-main\\", "$param", "時間"]
HOSTILE_TIMES = ["2026-01-01T00:00:00Z' OR time > 0", "now() - 1d", "2026-01-01 00:00:00", "2026-01-01T00:00:00",
                 "1767225600000", "2026-13-01T00:00:00Z", "2026-01-01T00:00:00Z; DROP", "9999-12-31T23:59:59Z",
                 "x" * 5000]


@pytest.mark.parametrize("bad", HOSTILE)
def test_hostile_device_ids_are_422_and_never_reach_influx(api: ApiHarness, bad: str) -> None:
    response = api.client.get(f"/api/v1/history/park/{quote(bad, safe='')}", params=DAY, headers=api.headers())
    assert response.status_code == 422, response.text
    assert api.influx.queries == []


@pytest.mark.parametrize("bad", HOSTILE_TIMES)
def test_hostile_times_are_422_and_never_reach_influx(api: ApiHarness, bad: str) -> None:
    for params in ({**DAY, "start": bad}, {**DAY, "end": bad}):
        response = api.client.get("/api/v1/history/park/inv-main", params=params, headers=api.headers())
        assert response.status_code == 422, (bad, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert api.influx.queries == []


@pytest.mark.parametrize("params", [
    {"metrics": 'grid_v") FROM "x'}, {"metrics": "isp"}, {"metrics": "mode"}, {"interval": "1 m"},
    {"interval": "0s"}, {"interval": "1s"}, {"agg": "sum"}, {"start": "2026-01-02T00:00:00Z"},
])
def test_bad_metrics_intervals_aggregates_and_ranges_are_422(api: ApiHarness, params: dict[str, str]) -> None:
    # interval 1s over a day is 86 400 points: over the default limit of 20 000.
    response = api.client.get("/api/v1/history/park/inv-main", params={**DAY, **params}, headers=api.headers())
    assert response.status_code == 422, (params, response.text)
    assert api.influx.queries == []


def test_group_history_with_hostile_site_or_kind_is_422(api: ApiHarness) -> None:
    for site, kind in (("park'", "inverter"), ("park", "inverter' OR"), ("park", "facmon_alerts")):
        response = api.client.get(f"/api/v1/history/{site}", params={**DAY, "kind": kind}, headers=api.headers())
        assert response.status_code == 422, (site, kind)
    assert api.influx.queries == []


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_parse_time_accepts_only_strict_rfc3339(text: str) -> None:
    try:
        epoch_ms = parse_time("start", text)
    except BadHistoryRequest:
        return
    assert text[10] == "T" and (text.endswith("Z") or text[-6] in "+-")
    assert epoch_ms >= 0


def test_history_without_influx_is_503(api: ApiHarness) -> None:
    api.services.history = None
    response = api.client.get("/api/v1/history/park/inv-main", params=DAY, headers=api.headers())
    assert response.status_code == 503
