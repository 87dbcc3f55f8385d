"""The status page's notifications card in headless Chromium: a notification delivered to the feed
(by the FeedNotifier, as the rules engine delivers it) shows up without a reload, newest first."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.keys import Role
from core.clock import SystemClock
from core.influxql import InfluxQLClient
from facmon.servers import Mosquitto
from rules.notifiers.feed import FeedNotifier
from rules.notify import payload_of
from tests.e2e.test_status_page import CHROMIUM, LAUNCH_FLAGS
from tests.integration.api_stack import make_tokens, served, stack_config
from tests.integration.test_notify_channels import ZONES, incident

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed "
                                                                   "(scripts/bootstrap.sh installs it)")


def test_the_feed_card_shows_notifications_as_they_arrive(tmp_path: Path, mosquitto: Mosquitto,
                                                          influx_db: InfluxQLClient) -> None:
    from playwright.sync_api import expect, sync_playwright

    clock = SystemClock()
    with served(stack_config(tmp_path, mosquitto, influx_db)) as (base, services), sync_playwright() as pw:
        token = make_tokens(services)[Role.VIEWER]
        feed = FeedNotifier("oncall:feed0", services.alerts, clock, "en", ZONES)  # type: ignore[arg-type]
        # The key as the login form stores it, so the page opens signed in.
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 412, "height": 915})
            context.add_init_script(f"localStorage.setItem('facmon.key', {token!r});")
            page = context.new_page()
            page.goto(f"{base}/status/")
            card = page.locator("#notifications")
            expect(card).to_contain_text("No notifications yet.", timeout=10_000)
            payload = payload_of(incident(clock), "http://facmon.test")
            payload["facmon"]["notification_id"] = "fmn-1-e2e"
            feed.send(payload)
            expect(card.locator(".feed-entry").first).to_contain_text(
                "[FIRING] park: 1 alert(s) — Grid down at park (inv-main)", timeout=10_000)
            expect(card.locator(".feed-entry.sev-critical")).to_have_count(1)
            resolved = payload_of(incident(clock, status="resolved"), "http://facmon.test")
            resolved["facmon"]["notification_id"] = "fmn-2-e2e"
            feed.send(resolved)
            expect(card.locator(".feed-entry").first).to_contain_text("[RESOLVED]", timeout=10_000)
            expect(card.locator(".feed-entry")).to_have_count(2)
        finally:
            browser.close()
