"""The status page in headless Chromium (Debian's, driven by Playwright): it loads, shows a grid
outage arriving through the broker and the alert for it, and an operator acknowledges it.

The alert is written into the rules store the way the rules engine writes it (save_alert with its
transition); the page learns of it through the API's live event stream like any other."""

from __future__ import annotations

import shutil
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from api.keys import Role
from core.clock import SystemClock
from core.contract import DeviceKey, Kind, Reading, encode_reading
from core.influxql import InfluxQLClient
from facmon.servers import Mosquitto
from rules.alerts import Alert, AlertState, Transition, fingerprint
from tests.integration.api_stack import make_tokens, served, stack_config
from tests.support import poll_until

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
INV = DeviceKey("park", Kind.INVERTER, "inv-main")
GEN = DeviceKey("park", Kind.GENERATOR, "gen-main")
LAUNCH_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed "
                                                                   "(scripts/bootstrap.sh installs it)")


def reading(seq: int, grid_ok: bool) -> bytes:
    now_ms = int(SystemClock().now() * 1000)
    return encode_reading(Reading(INV, now_ms, seq, {
        "grid_v": 230.0 if grid_ok else 0.0, "grid_ok": grid_ok, "mode": "grid" if grid_ok else "battery",
        "battery_soc_pct": 64.0, "battery_v": 51.0, "battery_a": -20.0, "pv_w": 300.0, "load_w": 1800.0}))


def generator_reading(seq: int, state: str) -> bytes:
    now_ms = int(SystemClock().now() * 1000)
    return encode_reading(Reading(GEN, now_ms, seq, {
        "running": state == "running", "state": state, "output_w": 4200.0 if state == "running" else 0.0,
        "fuel_pct": 63.0, "engine_hours": 1201.5, "coolant_temp_c": 31.0,
        "fault_code": "fail_to_start" if state == "fail_to_start" else None}))


def test_grid_outage_appears_live_and_an_operator_acknowledges_it(
        tmp_path: Path, mosquitto: Mosquitto, influx_db: InfluxQLClient) -> None:
    from playwright.sync_api import expect, sync_playwright

    device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="inv-main")
    device.connect("127.0.0.1", mosquitto.port)
    device.loop_start()
    with served(stack_config(tmp_path, mosquitto, influx_db)) as (base, services), sync_playwright() as pw:
        token = make_tokens(services)[Role.OPERATOR]
        poll_until(lambda: services.background[0].subscribed, 10, what="API subscribed")
        device.publish(INV.status_topic(), "online", qos=1, retain=True).wait_for_publish(5)
        device.publish(INV.reading_topic(), reading(1, grid_ok=True), qos=1).wait_for_publish(5)
        # A fresh user-data-dir (Playwright passes it as --user-data-dir) and a phone-sized viewport.
        browser = pw.chromium.launch_persistent_context(str(tmp_path / "chromium"), executable_path=CHROMIUM,
                                                        headless=True, args=LAUNCH_FLAGS,
                                                        viewport={"width": 412, "height": 915})
        try:
            page = browser.new_page()
            page.goto(f"{base}/status/")
            page.fill("#key", token)
            page.click("#login button[type=submit]")
            expect(page.locator("section.site h2")).to_have_text("سافٹ ویئر ٹیکنالوجی پارک", timeout=10_000)
            card = page.locator('.card[data-device="inv-main"]')
            expect(card).to_contain_text("on", timeout=10_000)
            expect(page.locator("#conn")).to_have_text("live", timeout=10_000)

            # The grid goes out: the reading arrives over MQTT and the card changes without a reload.
            device.publish(INV.reading_topic(), reading(2, grid_ok=False), qos=1).wait_for_publish(5)
            expect(card).to_contain_text("OUT", timeout=10_000)
            expect(card).to_contain_text("battery", timeout=10_000)

            # The generator (a kind the page takes from GET /api/v1/kinds) cranks and fails to start.
            generators = page.locator('[data-kind="generator"]')
            expect(generators.locator("h4")).to_have_text("Generators", timeout=10_000)
            gen_card = page.locator('.card[data-device="gen-main"]')
            device.publish(GEN.reading_topic(), generator_reading(1, "running"), qos=1).wait_for_publish(5)
            expect(gen_card).to_contain_text("4200 W", timeout=10_000)
            expect(gen_card).to_contain_text("63 %", timeout=10_000)
            device.publish(GEN.reading_topic(), generator_reading(2, "fail_to_start"), qos=1).wait_for_publish(5)
            expect(gen_card).to_contain_text("FAILED TO START", timeout=10_000)
            expect(gen_card).to_have_class("card kind-generator gen-failed", timeout=10_000)

            # The rules engine fires GridOutage; the page lists it through the live stream.
            labels = {"alertname": "GridOutage", "site": "park", "device": "inv-main", "severity": "critical"}
            fp = fingerprint({k: v for k, v in labels.items() if k != "severity"})
            now = SystemClock().now()
            services.alerts.save_alert(
                Alert(fp, "GridOutage", labels, {"summary": "Grid down at park (inv-main)"}, AlertState.FIRING,
                      active_since=now, fired_at=now, updated_at=now, value=0.0),
                Transition(fp, "GridOutage", now, AlertState.PENDING, AlertState.FIRING, labels))
            incident = page.locator(f'.incidents li[data-fingerprint="{fp}"]')
            expect(incident).to_contain_text("GridOutage", timeout=10_000)
            incident.locator("button.ack").click()
            expect(incident).to_contain_text("acknowledged by test operator", timeout=10_000)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "status-page-grid-outage.png"), full_page=True)
        finally:
            browser.close()
        detail = services.alerts.alert(fp)
        assert detail.alert.acked_by.startswith("test operator (key ")
        assert [a.comment for a in detail.acks] == ["from status page"]
    device.loop_stop()
    device.disconnect()
    shutil.rmtree(tmp_path / "chromium", ignore_errors=True)
