"""A lost feed (the API's own MQTT subscription down) is not devices offline: the sweep freezes
device state while the feed is down and for the stale limit after it is back, and says so."""

from __future__ import annotations

from api.app import sweep_once
from api.events import LiveEvent
from api.feed import FeedWatch, LiveFeed
from api.keys import Role
from tests.unit.api.harness import ApiHarness
from tests.unit.api.test_app import inverter_reading

URL = "/api/v1/sites/park/devices/inv-main"


def test_feed_watch_judges_silence_only_a_stale_limit_after_the_feed_is_back() -> None:
    watch = FeedWatch(grace_s=60)
    assert not watch.may_judge_silence(0)
    assert watch.update(True, 10).since == 10
    assert watch.update(True, 11) is None
    assert not watch.may_judge_silence(69.9)
    assert watch.may_judge_silence(70)
    lost = watch.update(False, 100)
    assert (lost.connected, lost.since) == (False, 100)
    assert not watch.may_judge_silence(10_000)


def test_a_lost_feed_keeps_devices_online_and_is_reported(api: ApiHarness) -> None:
    connected = [True]
    api.services.feed = LiveFeed(lambda: connected[0], FeedWatch(api.services.settings.stale_after_s))
    published: list[LiveEvent] = []
    api.services.hub.publish = published.append  # type: ignore[method-assign]
    assert api.client.get("/api/v1/feed", headers=api.headers(Role.VIEWER)).json() == {
        "mqtt_connected": False, "since": None}
    sweep_once(api.services)
    api.services.states.observe(inverter_reading(int(api.clock.now() * 1000), 1), api.clock.now())
    assert api.client.get(URL, headers=api.headers()).json()["presence"] == "online"

    connected[0] = False
    api.clock.advance(5)
    sweep_once(api.services)
    feed = api.client.get("/api/v1/feed", headers=api.headers()).json()
    assert feed["mqtt_connected"] is False and feed["since"] is not None
    assert [(e.type, e.data["mqtt_connected"]) for e in published] == [("feed", True), ("feed", False)]
    api.clock.advance(600)  # ten times the stale limit without a word from anyone
    sweep_once(api.services)
    assert api.client.get(URL, headers=api.headers()).json()["presence"] == "online"

    connected[0] = True
    api.clock.advance(1)
    sweep_once(api.services)
    assert api.client.get(URL, headers=api.headers()).json()["presence"] == "online"
    api.clock.advance(api.services.settings.stale_after_s)  # a stale limit after the feed is back, still silent
    sweep_once(api.services)
    body = api.client.get(URL, headers=api.headers()).json()
    assert (body["presence"], body["reason"]) == ("offline", "stale")


def test_without_a_subscription_the_feed_is_unknown_and_silence_is_judged(api: ApiHarness) -> None:
    assert api.client.get("/api/v1/feed", headers=api.headers()).json()["mqtt_connected"] is None
    api.services.states.observe(inverter_reading(int(api.clock.now() * 1000), 1), api.clock.now())
    api.clock.advance(api.services.settings.stale_after_s + 1)
    sweep_once(api.services)
    assert api.client.get(URL, headers=api.headers()).json()["reason"] == "stale"
