"""The status page in headless Chromium (Debian's, driven by Playwright), against the API wired as
`facmon api` wires it, on real Mosquitto and InfluxDB.

- signed in by the link `facmon up` prints (`#key=…`, then gone from the address bar), a grid outage
  arrives through the broker and shows in the power flow; an incident with its muted dependents shows
  as one, with its start on the site's clock, and one Acknowledge covers it; screenshots at 1280 and
  390 px;
- the charts draw the last day from data the test wrote into InfluxDB; the Urdu UI lays out right to
  left and the shipped Nastaliq font is loaded;
- when the API loses the broker, a banner says the feed is lost and no device is shown offline.

Alerts are written into the rules store the way the rules engine writes them (save_alert with its
transition, `muted_by` as its inhibition rules set it); the page learns of them through the API's
live event stream like any other. Screenshots go to test-artifacts/ (ignored by git)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest

from api.events import LiveEvent
from api.keys import Role
from core.clock import SystemClock
from core.contract import DeviceKey, Kind, Reading, encode_reading
from core.influxql import InfluxQLClient
from facmon.servers import Mosquitto
from rules.alerts import Alert, AlertState, Transition, fingerprint
from rules.store import AlertStore
from tests.integration.api_stack import make_tokens, served, stack_config, write_readings
from tests.support import poll_until

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
INV = DeviceKey("park", Kind.INVERTER, "inv-main")
GEN = DeviceKey("park", Kind.GENERATOR, "gen-main")
UPLINK = DeviceKey("park", Kind.UPLINK, "uplink-ptcl")
ROOM = DeviceKey("park", Kind.OCCUPANCY, "occ-room-1")
PLUG = DeviceKey("park", Kind.PLUG, "plug-router")
LAUNCH_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PARK_TZ = ZoneInfo("Asia/Karachi")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed "
                                                                   "(scripts/bootstrap.sh installs it)")


def inverter_reading(seq: int, grid_ok: bool, battery_a: float) -> bytes:
    now_ms = int(SystemClock().now() * 1000)
    return encode_reading(Reading(INV, now_ms, seq, {
        "grid_v": 230.0 if grid_ok else 0.0, "grid_ok": grid_ok, "mode": "grid" if grid_ok else "battery",
        "battery_soc_pct": 64.0, "battery_v": 50.0, "battery_a": battery_a, "pv_w": 300.0, "load_w": 1800.0}))


def generator_reading(seq: int, state: str) -> bytes:
    now_ms = int(SystemClock().now() * 1000)
    return encode_reading(Reading(GEN, now_ms, seq, {
        "running": state == "running", "state": state, "output_w": 4200.0 if state == "running" else 0.0,
        "fuel_pct": 63.0, "engine_hours": 1201.5, "coolant_temp_c": 31.0,
        "fault_code": "fail_to_start" if state == "fail_to_start" else None}))


def fire(store: AlertStore, name: str, severity: str, since: float, muted_by: tuple[str, ...] = (),
         device: str = "") -> str:
    labels = {"alertname": name, "site": "park", "severity": severity, **({"device": device} if device else {})}
    fp = fingerprint({k: v for k, v in labels.items() if k != "severity"})
    now = SystemClock().now()  # it fires now (the live feed publishes new transitions), active since `since`
    store.save_alert(Alert(fp, name, labels, {"summary": f"{name} at park", "summary_ur": f"پارک میں {name}"},
                           AlertState.FIRING, active_since=since, fired_at=now, updated_at=now, value=0.0,
                           muted_by=muted_by),
                     Transition(fp, name, now, AlertState.PENDING, AlertState.FIRING, labels))
    return fp


@pytest.fixture
def device(mosquitto: Mosquitto) -> Iterator[mqtt.Client]:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="page-test-devices")
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    yield client
    client.loop_stop()
    client.disconnect()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


def open_page(browser: Any, url: str, token: str | None = None) -> tuple[Any, list[str]]:
    """A fresh browser context at desktop size; `token` stored as the login form stores it. Returns the
    page and the list its script errors and console errors (a CSP refusal among them) collect into."""
    context = browser.new_context(viewport=DESKTOP)
    if token is not None:
        # on every new document, so only if the page has not stored a key of its own since
        context.add_init_script(f"localStorage.getItem('facmon.key') || localStorage.setItem('facmon.key', {token!r});")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(url)
    return page, errors


def screenshots(page: Any, name: str) -> list[Path]:
    """Full-page screenshots at 1280 and 390 px; at 390 nothing may be wider than the screen."""
    ARTIFACTS.mkdir(exist_ok=True)
    paths = []
    for size in (DESKTOP, PHONE):
        page.set_viewport_size(size)
        page.wait_for_function("() => document.fonts.status === 'loaded'")
        # charts follow the width (a resize redraws them)
        page.wait_for_function("w => [...document.querySelectorAll('.uplot')].every(u => u.offsetWidth <= w)",
                               arg=size["width"])
        if size is PHONE:
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        path = ARTIFACTS / f"{name}-{size['width']}.png"
        page.screenshot(path=str(path), full_page=True)
        paths.append(path)
    print(f"status page screenshots: {', '.join(map(str, paths))}")
    return paths


def test_signed_in_by_link_a_grid_outage_and_its_incident_acknowledged_once(
        tmp_path: Path, mosquitto: Mosquitto, influx_db: InfluxQLClient, device: mqtt.Client, browser: Any) -> None:
    from playwright.sync_api import expect

    with served(stack_config(tmp_path, mosquitto, influx_db)) as (base, services):
        token = make_tokens(services)[Role.OPERATOR]
        poll_until(lambda: services.background[0].subscribed, 10, what="API subscribed")
        device.publish(INV.status_topic(), "online", qos=1, retain=True).wait_for_publish(5)
        device.publish(INV.reading_topic(), inverter_reading(1, grid_ok=True, battery_a=10.0),
                       qos=1).wait_for_publish(5)
        page, errors = open_page(browser, f"{base}/status/#key={token}")

        # The sign-in link: signed in, the key stored, and gone from the address bar.
        expect(page.locator("section.site h2")).to_have_text("سافٹ ویئر ٹیکنالوجی پارک", timeout=10_000)
        assert page.url == f"{base}/status/"
        assert page.evaluate("localStorage.getItem('facmon.key')") == token
        expect(page.locator("#conn")).to_have_text("live", timeout=10_000)
        expect(page.locator("#updated")).to_have_text(re.compile(r"^updated \d\d:\d\d:\d\d$"))

        # The power flow, by the site file's name: charging from the grid, so no runtime.
        card = page.locator('.card[data-device="inv-main"]')
        expect(card.locator(".name")).to_have_text("Admin block")
        expect(card.locator('[data-flow="battery"]')).to_have_attribute("data-dir", "out", timeout=10_000)
        expect(card.locator('[data-flow="battery"]')).to_contain_text("charging 500 W")
        expect(card.locator('[data-flow="grid"]')).to_have_attribute("data-w", "2000")  # 1800 load + 500 - 300 PV
        expect(card.locator(".runtime")).to_have_count(0)
        # A device never heard from says so in words, not as the API's enum.
        expect(page.locator('.card[data-device="inv-lab"] .presence')).to_have_text("offline · not heard from yet")

        # The grid goes out: the reading arrives over MQTT, the battery feeds the load, a runtime shows.
        device.publish(INV.reading_topic(), inverter_reading(2, grid_ok=False, battery_a=-30.0),
                       qos=1).wait_for_publish(5)
        expect(card.locator('[data-flow="grid"]')).to_have_attribute("data-dir", "out-of-service", timeout=10_000)
        expect(card.locator('[data-flow="battery"]')).to_have_attribute("data-dir", "in")
        expect(card.locator('[data-flow="battery"]')).to_contain_text("discharging 1.5 kW")
        expect(card.locator(".runtime")).to_contain_text("left")

        # A kind the page takes from GET /api/v1/kinds: the generator fails to start.
        gen_card = page.locator('.card[data-device="gen-main"]')
        device.publish(GEN.reading_topic(), generator_reading(1, "fail_to_start"), qos=1).wait_for_publish(5)
        expect(gen_card).to_contain_text("FAILED TO START", timeout=10_000)
        expect(gen_card).to_have_class("card kind-generator gen-failed")

        # The router's plug, as the bridge forwards a Tasmota plug: relay, load, Wi-Fi and uptime; then
        # someone switches it off.
        plug_card = page.locator('.card[data-device="plug-router"]')
        expect(plug_card.locator(".name")).to_have_text("Router plug")
        for seq, relay_on in ((1, True), (2, False)):
            plug = {"relay_on": relay_on, "power_w": 17.6 if relay_on else 0.0, "energy_kwh": 412.37,
                    "voltage_v": 228.4, "wifi_signal_dbm": -61.0, "uptime_s": 3 * 86_400 + 7200}
            device.publish(PLUG.reading_topic(), encode_reading(Reading(PLUG, int(SystemClock().now() * 1000), seq,
                                                                        plug)), qos=1).wait_for_publish(5)
            if relay_on:
                expect(plug_card.locator("dd").first).to_have_text("on", timeout=10_000)
                expect(plug_card).to_contain_text("-61 dBm")
                expect(plug_card).to_contain_text("18 W")
                expect(plug_card).to_contain_text("74 h 0 min")
                expect(plug_card).not_to_have_class(re.compile("plug-off"))
        expect(plug_card.locator("dd").first).to_have_text("off", timeout=10_000)
        expect(plug_card).to_have_class("card kind-plug plug-off")

        # The site loses power: one cause, three alerts it mutes (one through another), one apart.
        store = services.alerts
        now = SystemClock().now()
        began = now - 3690  # 1 h 1 min 30 s ago
        cause = fire(store, "SitePowerLoss", "critical", began)
        offline = fire(store, "SiteOffline", "critical", began + 30, (f"inhibited:{cause}",))
        muted = [fire(store, "GridOutage", "critical", began + 5, (f"inhibited:{cause}",), "inv-main"), offline,
                 fire(store, "DeviceSilent", "warning", began + 60, (f"inhibited:{offline}",), "occ-lab")]
        apart = fire(store, "UplinkDegraded", "warning", now - 60, device="uplink-jazz")
        incidents = page.locator(".incident")
        expect(incidents).to_have_count(2, timeout=10_000)
        incident = page.locator(f'.incident[data-fingerprint="{cause}"]')
        expect(incident.locator(".muted-alert")).to_have_count(3)
        assert incident.locator(".muted-alert").evaluate_all(
            "items => items.map(i => i.dataset.fingerprint)") == muted
        expect(incident.locator("details.muted summary")).to_have_text("3 more alerts caused by this (muted)")
        started = datetime.fromtimestamp(began, UTC).astimezone(PARK_TZ)
        expect(incident.locator(".incident-meta .started")).to_have_text(
            f"since {started:%H:%M}" if started.date() == datetime.now(PARK_TZ).date()
            else f"since {started.day} {started:%b}, {started:%H:%M}")
        expect(incident.locator(".duration")).to_have_text("for 1 h 1 min")
        expect(page.locator("button.ack")).to_have_count(2)  # one per incident, none per muted alert

        incident.locator("button.ack").click()
        expect(incident.locator(".acked")).to_contain_text("acknowledged by test operator at", timeout=10_000)
        for fp in (cause, *muted):
            detail = store.alert(fp)
            assert detail.alert.acked_by.startswith("test operator (key "), fp
            assert [a.comment for a in detail.acks] == ["from status page"]
        assert store.alert(apart).alert.acked_by is None
        incident.locator("details.muted summary").click()  # unfold, for the screenshots
        expect(incident.locator(".muted-alert").first).to_be_visible()
        screenshots(page, "status-page-outage")
        assert errors == []


def test_charts_draw_the_last_day_from_history_in_the_urdu_ui(
        tmp_path: Path, mosquitto: Mosquitto, influx_db: InfluxQLClient, browser: Any) -> None:
    from playwright.sync_api import expect

    # Six 5-minute buckets, an hour ago, one reading in each: a mean of one value is that value.
    bucket0 = (int(SystemClock().now()) // 300 - 12) * 300
    buckets = [bucket0 + 300 * i for i in range(6)]
    soc = [90.0, 80.0, 70.0, 60.0, 65.0, 70.0]
    grid_v = [230.0, 230.0, 0.0, 0.0, 230.0, 230.0]
    rtt = [38.0, 40.0, 120.0, 41.0, 39.0, 38.5]
    people = [3, 5, 8, 8, 2, 0]
    readings = []
    for i, t in enumerate(buckets):
        ms = (t + 10) * 1000
        readings += [
            Reading(INV, ms, i, {"battery_soc_pct": soc[i], "grid_v": grid_v[i], "grid_ok": grid_v[i] > 0}),
            Reading(UPLINK, ms, i, {"isp": "PTCL", "rtt_ms": rtt[i], "loss_pct": 1.0 * i, "link_up": True}),
            Reading(ROOM, ms, i, {"room": "کمرہ 1", "occupied": people[i] > 0, "people": people[i]})]
    # Then a bucket in which every probe was lost: a loss and no round-trip time.
    lost = buckets[-1] + 300
    readings.append(Reading(UPLINK, (lost + 10) * 1000, 6, {"isp": "PTCL", "rtt_ms": None, "loss_pct": 100.0,
                                                            "link_up": True}))
    write_readings(influx_db, readings)

    with served(stack_config(tmp_path, mosquitto, influx_db)) as (base, services):
        tokens = make_tokens(services)
        page, errors = open_page(browser, f"{base}/status/", tokens[Role.VIEWER])
        page.locator("#lang").click()
        expect(page.locator("html")).to_have_attribute("dir", "rtl")
        expect(page.locator(".incidents h3")).to_have_text("جاری مسائل", timeout=10_000)
        expect(page.locator(".card[data-device='occ-room-1'] .name")).to_have_text("کمرہ 1")
        page.wait_for_function("() => document.querySelector('.charts[data-loaded]')", timeout=15_000)

        drawn = page.evaluate("""() => Object.fromEntries(Object.entries(window.facmonCharts.park).map(
            ([name, c]) => [name, {data: c.data, labels: c.labels, bands: c.bands,
                                   canvas: !!c.box.querySelector('canvas')}]))""")
        assert drawn["soc"]["data"] == [buckets, soc]
        assert drawn["soc"]["labels"] == ["Admin block"]
        assert drawn["soc"]["bands"] == [[buckets[2], buckets[4]]]  # the two buckets with the grid at 0 V
        assert drawn["rtt"]["data"] == [buckets, rtt] and drawn["rtt"]["labels"] == ["PTCL"]  # no gap at `lost`
        assert drawn["loss"]["data"] == [[*buckets, lost], [*(1.0 * i for i in range(6)), 100.0]]
        # latency and loss from one request for both
        uplink_requests = page.evaluate("""() => performance.getEntriesByType('resource').map((e) => e.name)
            .filter((url) => url.includes('/api/v1/history/park?') && url.includes('kind=uplink'))""")
        assert len(uplink_requests) == 1 and "metrics=rtt_ms&metrics=loss_pct" in uplink_requests[0]
        assert drawn["people"]["data"] == [buckets, people] and drawn["people"]["labels"] == ["کمرہ 1"]
        assert all(chart["canvas"] for chart in drawn.values())

        # The Nastaliq font shipped with the page, loaded for the Urdu on it (no missing-glyph boxes).
        page.wait_for_function("() => document.fonts.status === 'loaded'")
        assert page.evaluate("document.fonts.check('16px \"Noto Nastaliq Urdu\"', 'کمرہ')")
        assert page.evaluate("""() => [...document.fonts].filter(
            f => f.family.replaceAll('"', '') === 'Noto Nastaliq Urdu' && f.status === 'loaded').length""") >= 1
        screenshots(page, "status-page-urdu-charts")

        # A sign-in link opened in this tab changes only the fragment: the page still takes the key.
        page.evaluate("window.beforeTheLink = true")
        page.goto(f"{base}/status/#key={tokens[Role.OPERATOR]}")
        page.wait_for_function("k => localStorage.getItem('facmon.key') === k", arg=tokens[Role.OPERATOR])
        page.wait_for_function("() => window.beforeTheLink === undefined")  # reloaded, to start with it
        expect(page).to_have_url(f"{base}/status/")
        expect(page.locator(".incidents h3")).to_have_text("جاری مسائل", timeout=10_000)  # the language kept
        assert errors == []


def test_a_lost_broker_feed_is_a_banner_not_every_device_offline(
        tmp_path: Path, mosquitto: Mosquitto, influx_db: InfluxQLClient, device: mqtt.Client, browser: Any) -> None:
    from playwright.sync_api import expect

    with served(stack_config(tmp_path, mosquitto, influx_db, stale_after_s=5, sse_queue_max=10)) as (base, services):
        poll_until(lambda: services.background[0].subscribed, 10, what="API subscribed")
        device.publish(INV.reading_topic(), inverter_reading(1, grid_ok=True, battery_a=0.0),
                       qos=1).wait_for_publish(5)
        page, errors = open_page(browser, f"{base}/status/", make_tokens(services)[Role.VIEWER])
        presence = page.locator('.card[data-device="inv-main"] .presence')
        expect(presence).to_have_text("online", timeout=10_000)
        expect(page.locator("#banner")).to_be_hidden()

        # A last reading just before the broker goes: the device was heard from a moment ago.
        device.publish(INV.reading_topic(), inverter_reading(2, grid_ok=True, battery_a=0.0),
                       qos=1).wait_for_publish(5)
        poll_until(lambda: services.states.get(INV).latest.seq == 2, 10, what="the last reading in the API")
        mosquitto.stop()
        banner = page.locator("#banner")
        expect(banner).to_contain_text("lost its feed from the devices", timeout=10_000)
        expect(banner).to_have_attribute("data-cause", "api")
        expect(page.locator("#conn")).to_have_text("feed lost")
        expect(presence).to_have_text("last known")
        # Past the stale limit (5 s) since the last reading, the API still holds it online.
        last_seen = services.states.get(INV).last_seen
        poll_until(lambda: SystemClock().now() > last_seen + 7, 15, what="the stale limit passed")
        poll_until(lambda: services.feed is not None and services.feed.watch.state.since is not None
                   and SystemClock().now() > services.feed.watch.state.since + 3, 10,
                   what="sweeps while the feed is lost")
        assert services.states.get(INV).presence == "online"
        expect(page.locator(".card .presence.down")).to_have_count(0)

        mosquitto.start()
        mosquitto.wait_ready()
        expect(banner).to_be_hidden(timeout=15_000)
        expect(page.locator("#conn")).to_have_text("live")
        # Back on the feed, a device that stays silent past the stale limit is offline, in words.
        silent_since = datetime.fromtimestamp(last_seen, UTC).astimezone(PARK_TZ)
        expect(presence).to_have_text(f"offline · silent since {silent_since:%H:%M}", timeout=20_000)

        # The page's own stream breaks (it falls behind and the API cuts it off, while the browser is
        # offline so it cannot reconnect at once): a banner of its own, then live again.
        page.context.set_offline(True)
        for _ in range(200):
            services.hub.publish(LiveEvent("test-filler", {}))
        expect(banner).to_have_attribute("data-cause", "page", timeout=10_000)
        expect(banner).to_contain_text("Live updates stopped at")
        expect(page.locator("#conn")).to_have_text("reconnecting")
        page.context.set_offline(False)
        expect(banner).to_be_hidden(timeout=20_000)
        expect(page.locator("#conn")).to_have_text("live")
        assert [e for e in errors if "ERR_INTERNET_DISCONNECTED" not in e] == []
