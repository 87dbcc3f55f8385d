"""Hostile requests on fakes (FakeClock, in-memory keys, recording InfluxDB): YAML bombs posted for
validation, errors that must not leak internals, wrong-key floods in simulated time, event streams
of revoked keys. The same behaviours over a real socket are in tests/integration/test_api_hostile.py."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth_failures import AuthFailures, key_label
from api.deps import NotReady, get_states
from api.events import EventHub, LiveEvent
from api.keys import Role
from core.clock import FakeClock
from core.influxql import InfluxQueryError, InfluxUnavailable, Series
from core.settings.api import ApiSettings
from tests.unit.api.harness import ApiHarness, build_services
from tests.unit.core.test_yaml_limits import alias_bomb

DAY = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}
INTERNALS = ("http://", "10.9.8.7", "8086", "urllib3", "SELECT", "Traceback", "/tmp", ".yaml", "sqlite")


def assert_problem(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    return body


def assert_no_internals(text: str) -> None:
    leaked = [word for word in INTERNALS if word in text]
    assert not leaked, (leaked, text)


# --- item 5: YAML posted for validation ------------------------------------------------------------

BOMBS = {
    "alias bomb (9**9 values)": (alias_bomb(), "expands to more than 1,000,000 values", 7),
    "recursive alias": ("rules: &r\n  - *r\n", "alias *r stands for a node that contains it", 2),
    "5,000-deep list": ("rules: " + "[" * 5000 + "]" * 5000, "nests deeper than 100 levels", 1),
    "5,000-deep block list": ("rules:\n" + "- " * 5000 + "x\n", "nests deeper than 100 levels", 2),
    "1,001 aliases": ("x: &x 1\nrules: [" + ", ".join(["*x"] * 1001) + "]\n", "more than 1000 aliases", 2),
}


@pytest.mark.parametrize("case", BOMBS)
def test_hostile_rule_yaml_is_422_naming_the_limit_and_line(api: ApiHarness, case: str) -> None:
    text, limit_words, line = BOMBS[case]
    response = api.client.post("/api/v1/rules/validate", json={"yaml": text}, headers=api.headers(Role.ADMIN))
    body = assert_problem(response, 422)
    assert body["invalid_params"][0]["name"] == "yaml"
    assert body["detail"].startswith(f"yaml: line {line}: ") and limit_words in body["detail"], body["detail"]


def test_ordinary_yaml_errors_are_still_problems_of_the_file(api: ApiHarness) -> None:
    response = api.client.post("/api/v1/rules/validate", json={"yaml": "rules: [\n"},
                               headers=api.headers(Role.ADMIN))
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False and body["problems"][0].startswith("rules:")


def test_an_unexpected_exception_is_a_500_problem_naming_no_internals(api: ApiHarness,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise RuntimeError("cannot open /tmp/secret.sqlite via http://10.9.8.7:8086 (urllib3 said no)")

    api.app.dependency_overrides[get_states] = broken
    with TestClient(api.app, raise_server_exceptions=False) as client:
        response = client.get("/api/v1/sites/park", headers=api.headers())
    body = assert_problem(response, 500)
    assert_no_internals(response.text)
    assert response.headers["x-frame-options"] == "DENY"
    error_id = body["detail"].split("error id ")[1].split(")")[0]
    logged = [r for r in caplog.records if getattr(r, "error_id", None) == error_id]
    assert len(logged) == 1 and "10.9.8.7" in str(logged[0].exc_info[1])


# --- item 8: errors name what the client did wrong, never internals -----------------------------

@dataclass
class FailingInflux:
    error: Exception
    queries: list[str] = field(default_factory=list)

    def query(self, q: str, epoch: str | None = "ms", params: object = None) -> list[Series]:
        self.queries.append(q)
        raise self.error

    def ping(self) -> bool:
        return False


@pytest.mark.parametrize("error", [
    InfluxUnavailable("cannot reach InfluxDB at http://10.9.8.7:8086: urllib3 MaxRetryError(Connection refused)"),
    InfluxQueryError("error parsing query: found X", query='SELECT mean("x") FROM "inverter"', status=400),
])
def test_history_503_names_no_url_library_text_or_query(api: ApiHarness, error: Exception,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    api.services.history.client = FailingInflux(error)
    response = api.client.get("/api/v1/history/park/inv-main", params=DAY, headers=api.headers())
    body = assert_problem(response, 503)
    assert_no_internals(response.text)
    error_id = body["detail"].rsplit("error id ", 1)[1]
    assert [r.error for r in caplog.records if getattr(r, "error_id", None) == error_id] == [str(error)]


@pytest.mark.parametrize("interval", ["999999d", "367d", "8785h", "999999h"])
def test_an_interval_over_366_days_is_422_naming_the_limit_before_any_query(api: ApiHarness, interval: str) -> None:
    response = api.client.get("/api/v1/history/park/inv-main",
                              params={"start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z",
                                      "interval": interval}, headers=api.headers())
    body = assert_problem(response, 422)
    assert body["detail"] == f"interval: {interval} is longer than the longest interval, 366d"
    assert api.influx.queries == []
    ok = api.client.get("/api/v1/history/park/inv-main", params={"start": "2000-01-01T00:00:00Z",
                                                                 "end": "2100-01-01T00:00:00Z", "interval": "366d"},
                        headers=api.headers())
    assert ok.status_code == 200, ok.text


def test_the_date_limit_in_the_message_is_the_one_enforced(api: ApiHarness) -> None:
    def status(start: str) -> tuple[int, str]:
        response = api.client.get("/api/v1/history/park/inv-main",
                                  params={"start": start, "end": "2116-02-20T23:53:38Z", "interval": "1d"},
                                  headers=api.headers())
        return response.status_code, response.json().get("detail", "")

    assert status("2116-02-20T00:00:00Z")[0] == 200
    code, detail = status("2200-01-01T00:00:00Z")
    assert code == 422
    assert "up to (not including) 2116-02-20T23:53:38Z" in detail and "2262" not in detail
    end = api.client.get("/api/v1/history/park/inv-main", params={"start": "2116-02-20T00:00:00Z",
                                                                  "end": "2116-02-20T23:53:39Z"},
                         headers=api.headers())
    assert assert_problem(end, 422)["detail"].startswith("end: '2116-02-20T23:53:39Z' is outside")


class _DeadInflux:
    name = "influxdb"

    def check(self) -> str:
        raise NotReady("InfluxDB at http://10.9.8.7:8086 does not answer /ping; history is unavailable")


def test_readyz_says_why_only_to_a_valid_key(api: ApiHarness) -> None:
    api.services.readiness = [_DeadInflux()]
    anonymous = api.client.get("/readyz")
    assert anonymous.status_code == 503
    assert anonymous.json()["checks"] == [{"name": "influxdb", "ok": False,
                                           "detail": "not ready; send an API key (any role) to see why"}]
    assert_no_internals(anonymous.text)
    wrong = api.client.get("/readyz", headers={"Authorization": "Bearer fmk_0123456789ab_" + "x" * 43})
    assert "10.9.8.7" not in wrong.text
    keyed = api.client.get("/readyz", headers=api.headers(Role.VIEWER))
    assert "http://10.9.8.7:8086" in keyed.json()["checks"][0]["detail"]


def test_rule_files_that_do_not_load_are_503_without_their_paths(api: ApiHarness, tmp_path: Path) -> None:
    bad = tmp_path / "secret-rules.yaml"
    bad.write_text("rules: [{name: x}]\n")
    api.services.rule_files = [bad]
    response = api.client.get("/api/v1/rules", headers=api.headers())
    assert_problem(response, 503)
    assert_no_internals(response.text)
    assert "facmon rules check" in response.json()["detail"]


# --- item 10: failed authentication, in simulated time -------------------------------------------

def _wrong(n: int) -> dict[str, str]:
    return {"Authorization": f"Bearer fmk_{n:012x}_{'W' * 43}"}


def test_wrong_keys_from_one_address_get_429_with_retry_after_until_the_window_passes(
        api: ApiHarness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="facmon.api.auth")
    statuses = [api.client.get("/api/v1/sites", headers=_wrong(n)).status_code for n in range(1000)]
    assert statuses[:20] == [401] * 20 and statuses[20:] == [429] * 980
    blocked = api.client.get("/api/v1/sites", headers=api.headers())  # a right key from that address waits too
    assert assert_problem(blocked, 429) and blocked.headers["retry-after"] == "60"
    lines = [r for r in caplog.records if r.name == "facmon.api.auth"]
    assert len(lines) == 2  # rate-limited: one "failed" and one "refused" line per 10 s
    assert {r.client for r in lines} == {"testclient"} and lines[0].key_prefix == "fmk_000000000000"
    assert all("W" * 43 not in r.getMessage() + str(r.__dict__) for r in lines)
    api.clock.advance(30)
    assert api.client.get("/api/v1/sites", headers=api.headers()).headers["retry-after"] == "30"
    api.clock.advance(30)
    assert api.client.get("/api/v1/sites", headers=api.headers()).status_code == 200
    assert api.client.get("/api/v1/sites", headers=_wrong(1)).status_code == 401
    api.clock.advance(10)
    api.client.get("/api/v1/sites", headers=_wrong(2))
    assert any(getattr(r, "suppressed", 0) > 900 for r in caplog.records), "the next line counts what was held back"


def test_wrong_secrets_for_one_key_id_from_many_addresses_get_429_but_its_owner_gets_in(api: ApiHarness) -> None:
    owner = api.tokens[Role.OPERATOR]
    key_id = owner.split("_")[1]
    guesses = []
    for n in range(25):
        client = TestClient(api.app, client=(f"10.0.0.{n}", 40000))  # no lifespan needed to check keys
        guesses.append(client.get("/api/v1/sites", headers={"X-API-Key": f"fmk_{key_id}_{n:043d}"}))
    assert [g.status_code for g in guesses] == [401] * 20 + [429] * 5
    assert guesses[-1].headers["retry-after"] == "60"
    assert api.client.get("/api/v1/sites", headers={"X-API-Key": owner}).status_code == 200


def test_missing_keys_are_401_and_not_counted(api: ApiHarness) -> None:
    assert {api.client.get("/api/v1/sites").status_code for _ in range(50)} == {401}
    assert api.client.get("/api/v1/sites", headers=api.headers()).status_code == 200


def test_the_limits_are_settings() -> None:
    clock = FakeClock()
    services = build_services(clock, None, ApiSettings(auth_failure_limit=3, auth_failure_window_s=5))
    with TestClient(create_app(services)) as client:
        assert [client.get("/api/v1/sites", headers=_wrong(n)).status_code for n in range(4)] == [401, 401, 401, 429]
        assert client.get("/api/v1/sites", headers=_wrong(9)).headers["retry-after"] == "5"


def test_the_failure_table_stays_bounded_for_many_addresses() -> None:
    failures = AuthFailures(FakeClock(), limit=5, window_s=60)
    for n in range(30_000):
        failures.failed(f"2001:db8::{n:x}", "nonsense")
    assert len(failures._by_address._times) <= 10_000


def test_logs_name_only_the_key_id_or_malformed() -> None:
    assert key_label("fmk_0123456789ab_" + "s" * 43) == "fmk_0123456789ab"
    assert key_label("hunter2-my-password") == "malformed"


# --- item 7: a revoked key's event streams end -------------------------------------------------

def test_ending_a_keys_streams_sends_revoked_and_closes_only_those() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        hub = EventHub(queue_max=10, keepalive_s=60)
        hub.bind(asyncio.get_running_loop())
        revoked, kept = hub.stream("aaaaaaaaaaaa"), hub.stream("bbbbbbbbbbbb")
        assert await anext(revoked) == await anext(kept) == "retry: 3000\n\n"
        first, second = asyncio.ensure_future(anext(revoked)), asyncio.ensure_future(anext(kept))
        await asyncio.sleep(0)
        assert hub.key_ids() == {"aaaaaaaaaaaa", "bbbbbbbbbbbb"}
        hub.publish(LiveEvent("reading", {"n": 1}))
        got = [await first, await second]
        assert hub.end_streams_of({"aaaaaaaaaaaa"}) == 1
        hub.publish(LiveEvent("reading", {"n": 2}))
        tail_revoked = [chunk async for chunk in revoked]
        got_kept = [await anext(kept)]
        await kept.aclose()
        return got + tail_revoked, got_kept

    revoked_stream, kept_stream = asyncio.run(scenario())
    assert revoked_stream[2].startswith("id: 0\nevent: revoked\n") and len(revoked_stream) == 3
    assert kept_stream == ['id: 2\nevent: reading\ndata: {"n":2}\n\n']
