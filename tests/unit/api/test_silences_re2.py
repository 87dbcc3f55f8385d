"""POST /silences refuses a regex RE2 cannot run with 422 and a message saying what to write (issue 17, item 4)."""

from __future__ import annotations

import pytest

from api.keys import Role
from rules.store import AlertStore
from tests.unit.api.harness import ApiHarness
from tests.unit.api.test_alerts import alerts_api  # noqa: F401 (the fixture)

BODY = {"ends_at": "2026-01-01T02:00:00Z", "comment": "maintenance"}


@pytest.mark.parametrize("matcher", ["alertname=~(a+)\\1", "alertname=~(?=Grid).*", "alertname=~.*(?<!Outage)",
                                     "device=~.{1000}", "device=~" + "a" * 257])
def test_a_regex_re2_refuses_is_422_and_names_the_fix(alerts_api: tuple[ApiHarness, AlertStore],  # noqa: F811
                                                      matcher: str) -> None:
    api, store = alerts_api
    response = api.client.post("/api/v1/silences", json={"matchers": ["site=park", matcher], **BODY},
                               headers=api.headers(Role.OPERATOR))
    assert response.status_code == 422, response.text
    text = response.text
    assert "RE2" in text or "at most" in text, text
    assert store.list_silences() == []


def test_the_issue_pattern_is_accepted_and_stored(alerts_api: tuple[ApiHarness, AlertStore]) -> None:  # noqa: F811
    api, store = alerts_api
    response = api.client.post("/api/v1/silences", json={"matchers": ["alertname=~(.*){22}X"], **BODY},
                               headers=api.headers(Role.OPERATOR))
    assert response.status_code == 201, response.text
    [silence] = store.list_silences()
    assert not silence.mutes({"alertname": "GridOutage"}, api.clock.now())
    assert silence.mutes({"alertname": "GridOutageX"}, api.clock.now())


def test_a_silence_whose_regexes_together_pass_the_budget_is_422(
        alerts_api: tuple[ApiHarness, AlertStore]) -> None:  # noqa: F811
    """Each regex within its own limit, but two of `(.*){22}` (201 instructions each), or four small
    regexes, would cost the engine's next tick more than a silence may."""
    api, store = alerts_api
    matchers = [f"{label}=~(.*){{22}}" for label in ("alertname", "device")]
    response = api.client.post("/api/v1/silences", json={"matchers": matchers, **BODY},
                               headers=api.headers(Role.OPERATOR))
    assert response.status_code == 422, response.text
    assert "402 RE2 instructions together" in response.text and "at most 300" in response.text
    small = [f"{label}=~inv-(a|b)" for label in ("alertname", "device", "site", "team")]
    response = api.client.post("/api/v1/silences", json={"matchers": small, **BODY},
                               headers=api.headers(Role.OPERATOR))
    assert response.status_code == 422, response.text
    assert "4 regex matchers; at most 3" in response.text
    assert store.list_silences() == []
    allowed = [matchers[0], *small[1:3], *(f"room!=r{n}" for n in range(17))]  # 3 regexes, 20 matchers
    response = api.client.post("/api/v1/silences", json={"matchers": allowed, **BODY},
                               headers=api.headers(Role.OPERATOR))
    assert response.status_code == 201, response.text
