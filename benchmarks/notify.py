"""Notification benchmarks (issue 12). Prints figures; not a test.

1. Trip → delivered, per channel: readings that trip a rule are published to a real Mosquitto at
   `--rate` alerts/min (default 100); the rules service (as `facmon rules run` builds it) sends each
   alert through webhook, Telegram, ntfy and SMS-gateway stand-ins (tests/integration/notify_standins.py,
   which answer as the real services document) and a Gammu `dummy` modem. p50/p99/max from publish to
   receipt at each stand-in (target p99 <= 500 ms for the HTTP channels). Reference, same run: a bare
   loopback POST to the webhook stand-in.
2. SMS through Gammu's dummy connection: the outbox drained by the GSM worker, messages/s (target
   >= 10/s), and the webhook's drain time alone and while the modem drains (no channel blocks another).
4. Answers lost after the service took the request (issue 18, item 3): stand-ins that record a
   request and hold their answer past the notifier's timeout, for a seeded random `--held` share of
   requests; `--notifications` notifications through the outbox to webhook, Telegram, ntfy, the SMS
   gateway and e-mail (a real SMTP server, aiosmtpd, holding its answer to DATA). Per channel:
   requests the service took, copies a recipient sees (Telegram: every copy; ntfy: one per sequence
   id, as its apps replace; e-mail: one per Message-ID; webhook and SMS gateway: one per
   Idempotency-Key, for a receiver that honours it), and how many copies were marked as repeats.
3. Watchdog: `facmon watchdog serve`'s Watchdog on loopback, heartbeats over HTTP every second;
   stopped `--runs` times: detection after the last heartbeat (target <= timeout + 10 s every run);
   then `--soak-s` of heartbeats flowing: false pages (target 0 over 600 s).

    .venv/bin/python benchmarks/notify.py [--alerts 100] [--rate 100] [--sms 300] [--runs 5] [--soak-s 60]
                                          [--notifications 100] [--held 0.3] [--only unanswered]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import paho.mqtt.client as mqtt
from aiosmtpd.controller import Controller

from core.clock import SystemClock
from core.contract import DeviceKey, Kind, Reading, encode_reading
from core.heartbeat import SIGNATURE_HEADER, Heartbeat, signature
from core.settings.mqtt import MqttSettings
from core.settings.rules import ReceiverSettings, RouteSettings, RulesSettings
from core.settings.watchdog import WatchdogSettings
from facmon.commands.watchdog import Watchdog
from facmon.servers import Mosquitto, free_port
from rules.notifiers.gsm import GammuModem, GsmNotifier
from rules.notifiers.ntfy import NtfyNotifier
from rules.notifiers.sms_gateway import SmsGatewayNotifier
from rules.notifiers.telegram import TelegramApi, TelegramNotifier
from rules.notify import Delivery, EmailNotifier, WebhookNotifier, load_template, payload_of
from rules.service import RulesService
from rules.store import AlertStore
from rules.workers import DeliveryWorkers
from tests.integration.notify_standins import Hold, NtfyStandIn, SmsAggregatorStandIn, StandIn, TelegramStandIn
from tests.integration.test_notify_channels import incident

CLOCK = SystemClock()
DEVICE = re.compile(r"bench-(\d+)")


class StampingModem(GammuModem):
    """The real Gammu dummy modem, stamping when each message's parts were sent."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        super().__init__(str(folder), connection="none", model="dummy")
        self.sent_at: dict[str, float] = {}

    def send_text(self, number: str, text: str, unicode: bool) -> int:
        parts = super().send_text(number, text, unicode)
        match = DEVICE.search(text)
        if match:
            self.sent_at.setdefault(match.group(0), CLOCK.monotonic())
        return parts


def _metrics() -> dict:
    return {"grid_v": 230.0, "grid_ok": False, "mode": "fault", "battery_soc_pct": 80.0, "battery_v": 52.0,
            "battery_a": 1.0, "pv_w": 0.0, "load_w": 500.0}


def _stats(delays_s: list[float]) -> str:
    if not delays_s:
        return "none arrived"
    ms = np.array(delays_s) * 1000
    return (f"n={len(ms)} p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, "
            f"max {ms.max():.1f} ms")


def _first_seen(requests: list, text_of) -> dict[str, float]:
    seen: dict[str, float] = {}
    for request in list(requests):
        match = DEVICE.search(text_of(request))
        if match:
            seen.setdefault(match.group(0), request.received_at)
    return seen


def trip_to_delivered(tmp: Path, broker: Mosquitto, alerts: int, per_min: float) -> dict[str, list[float]]:
    hook = StandIn(lambda request: (200, {}, {}))
    telegram, ntfy, sms = TelegramStandIn(chats={"111"}), NtfyStandIn(), SmsAggregatorStandIn()
    token = tmp / "telegram.token"
    token.write_text(telegram.token)
    pack = tmp / "trip.yaml"
    pack.write_text("rules:\n  - name: Fault\n    kind: inverter\n    labels: {severity: critical}\n"
                    "    condition: {threshold: {metric: mode, op: '==', value: fault}}\n"
                    "    annotations: {summary: 'fault at {device}'}\n")
    receiver = ReceiverSettings.model_validate({
        "name": "oncall", "webhooks": [hook.url + "/hook"], "feed": False,
        "telegram": [{"chat_ids": ["111"], "bot_token_file": str(token), "api_url": telegram.url}],
        "ntfy": [{"url": ntfy.url, "topic": "bench"}],
        "sms_gateway": [{"url": sms.url + "/send", "numbers": ["+923001234567"]}],
        "gsm": {"device": str(tmp / "modem"), "numbers": ["+923001234567"], "read_replies": False}})
    settings = RulesSettings(rule_files=[pack], store_path=tmp / "trip.db", evaluation_interval_s=0.1,
                             write_influx=False, receivers=[receiver],
                             routes=[RouteSettings(receiver="oncall", group_by=["site", "device"], group_wait_s=0,
                                                   group_interval_s=0, repeat_interval_s=86400)])
    service = RulesService.from_settings(settings, MqttSettings(port=broker.port), CLOCK)
    gsm = next(n for n in service.delivery._targets.values() if isinstance(n, GsmNotifier))
    gsm.modem = StampingModem(tmp / "modem")
    service.start()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-notify")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    published: dict[str, float] = {}
    try:
        deadline = CLOCK.monotonic() + 20
        while not service._subscription.subscribed and CLOCK.monotonic() < deadline:
            CLOCK.sleep(0.01)
        CLOCK.sleep(0.5)
        gap_s = 60.0 / per_min
        start = CLOCK.monotonic()
        for i in range(alerts):
            device = f"bench-{i}"
            key = DeviceKey("park", Kind.INVERTER, device)
            CLOCK.sleep(max(0.0, start + i * gap_s - CLOCK.monotonic()))
            published[device] = CLOCK.monotonic()
            client.publish(key.reading_topic(), encode_reading(Reading(key, int(CLOCK.now() * 1000), 1, _metrics())),
                           qos=1)
        deadline = CLOCK.monotonic() + 15
        while len(gsm.modem.sent_at) < alerts and CLOCK.monotonic() < deadline:  # type: ignore[attr-defined]
            CLOCK.sleep(0.1)
    finally:
        client.disconnect()
        client.loop_stop()
        service.stop()
    received = {
        "webhook": _first_seen(hook.requests, lambda r: r.body.decode()),
        "telegram": _first_seen(telegram.server.requests, lambda r: r.body.decode("utf-8")),
        "ntfy": _first_seen(ntfy.server.requests, lambda r: r.body.decode("utf-8")),
        "sms_gateway": _first_seen(sms.server.requests, lambda r: r.body.decode("utf-8")),
        "gsm (dummy modem)": gsm.modem.sent_at,  # type: ignore[attr-defined]
    }
    for server in (hook, telegram, ntfy, sms):
        server.close()
    return {channel: [seen[d] - at for d, at in published.items() if d in seen] for channel, seen in received.items()}


def bare_post(count: int) -> list[float]:
    hook = StandIn(lambda request: (200, {}, {}))
    delays = []
    try:
        for _ in range(count):
            start = CLOCK.monotonic()
            request = urllib.request.Request(hook.url + "/hook", data=b"{}", method="POST",
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=5) as answer:
                answer.read()
            delays.append(CLOCK.monotonic() - start)
    finally:
        hook.close()
    return delays


def sms_rate(tmp: Path, count: int) -> tuple[float, float, float]:
    """(SMS/s through the dummy modem, webhook drain s alone, webhook drain s while the modem drains)."""
    hook = StandIn(lambda request: (200, {}, {}))
    payload = payload_of(incident(SystemClock()), "http://facmon.test")

    def drain(targets: dict, rows: dict[str, int], path: str) -> dict[str, float]:
        store = AlertStore(tmp / path, CLOCK)
        for target, n in rows.items():
            for _ in range(n):
                store.enqueue_notification("g", target, [], payload, CLOCK.now())
        workers = DeliveryWorkers(Delivery(store, targets), CLOCK, interval_s=0.01)
        start = CLOCK.monotonic()
        done: dict[str, float] = {}
        workers.start()
        workers.wake()
        deadline = start + 120
        while len(done) < len(rows) and CLOCK.monotonic() < deadline:
            sent = {}
            for record in store.notifications(limit=100_000):
                if record.status == "sent":
                    sent[record.receiver] = sent.get(record.receiver, 0) + 1
            for target, n in rows.items():
                if target not in done and sent.get(target, 0) >= n:
                    done[target] = CLOCK.monotonic() - start
            CLOCK.sleep(0.01)
        workers.stop()
        store.close()
        return done

    webhook = {"w:webhook0": WebhookNotifier("w:webhook0", hook.url + "/hook")}
    modem = GammuModem(str(tmp / "sms-modem"), connection="none", model="dummy")
    (tmp / "sms-modem").mkdir(exist_ok=True)
    alone = drain(webhook, {"w:webhook0": count}, "alone.db")
    both = drain({**webhook, "w:gsm1": GsmNotifier("w:gsm1", modem, ("+923001234567",), 3)},
                 {"w:webhook0": count, "w:gsm1": count}, "both.db")
    hook.close()
    return count / both["w:gsm1"], alone["w:webhook0"], both["w:webhook0"]


UNANSWERED_TIMEOUT_S = 0.5
HELD_S = 1.5
"""Longer than the notifiers' timeout: a held answer arrives after the sender gave up."""


def _held_at_random(share: float, seed: int) -> Hold:
    chance = random.Random(seed)
    return lambda _request: HELD_S if chance.random() < share else 0.0


class _SmtpHolding:
    """aiosmtpd's handler: keeps every message, and answers DATA late for a `share` of them."""

    def __init__(self, share: float, seed: int) -> None:
        self.message_ids: list[str] = []
        self._chance = random.Random(seed)
        self._share = share

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content = envelope.content.decode("utf-8", "replace")  # type: ignore[attr-defined]
        found = re.search(r"^Message-ID: (.+)$", content, re.M | re.I)
        self.message_ids.append(found.group(1).strip() if found else "")
        if self._chance.random() < self._share:
            await asyncio.sleep(HELD_S)
        return "250 OK"


def unanswered(tmp: Path, notifications: int, share: float) -> list[str]:
    """Rows of the per-channel table (see the module docstring, 4.)."""
    hook = StandIn(lambda request: (200, {}, {}), _held_at_random(share, 1))
    telegram = TelegramStandIn(chats={"111"}, hold=_held_at_random(share, 2))
    ntfy, sms = NtfyStandIn(hold=_held_at_random(share, 3)), SmsAggregatorStandIn(hold=_held_at_random(share, 4))
    smtp = _SmtpHolding(share, 5)
    controller = Controller(smtp, hostname="127.0.0.1", port=free_port())
    controller.start()
    timeout = UNANSWERED_TIMEOUT_S
    targets = {
        "oncall:webhook0": WebhookNotifier("oncall:webhook0", hook.url + "/hook", timeout),
        "oncall:telegram1": TelegramNotifier("oncall:telegram1", TelegramApi(telegram.url, telegram.token, timeout),
                                             ("111",)),
        "oncall:ntfy2": NtfyNotifier("oncall:ntfy2", ntfy.url, "bench", timeout_s=timeout),
        "oncall:sms_gateway3": SmsGatewayNotifier("oncall:sms_gateway3", sms.url + "/send", ("+923001234567",),
                                                  body='{{"to": "{to}", "message": "{text}", "ref": "{id}"}}',
                                                  timeout_s=timeout),
        "oncall:email4": EmailNotifier("oncall:email4", "127.0.0.1", controller.port, "facmon@park.test",
                                       ("oncall@park.test",), timeout_s=timeout),
    }
    store = AlertStore(tmp / "unanswered.db", CLOCK)
    payload = payload_of(incident(SystemClock()), "http://facmon.test")
    for _ in range(notifications):
        for target in targets:
            store.enqueue_notification("g", target, [], payload, CLOCK.now())
    delivery = Delivery(store, targets, min_s=0.05, max_s=0.5)
    workers = DeliveryWorkers(delivery, CLOCK, interval_s=0.05)
    workers.start()
    workers.wake()
    deadline = CLOCK.monotonic() + 300
    while CLOCK.monotonic() < deadline and any(r.status != "sent" for r in store.notifications(limit=100_000)):
        CLOCK.sleep(0.1)
    workers.stop()
    rows = store.notifications(limit=100_000)
    store.close()
    controller.stop()
    for server in (hook, telegram, ntfy, sms):
        server.close()
    marker = load_template("en")["repeat"].split("{", 1)[0]
    keys = {name: [r.headers.get("Idempotency-Key", "") for r in server.requests]
            for name, server in (("webhook", hook), ("sms", sms.server))}
    channels = [
        ("webhook", len(hook.requests), len(set(keys["webhook"])), 0,
         "one per Idempotency-Key (a receiver that honours it)"),
        ("Telegram", len(telegram.sent), len(telegram.sent), sum(m["text"].startswith(marker) for m in telegram.sent),
         "every copy (no idempotency key in the Bot API)"),
        ("ntfy", len(ntfy.published), len(ntfy.shown()), 0, "one per sequence_id (ntfy 2.16+ apps replace)"),
        ("SMS gateway", len(sms.received), len(set(keys["sms"])), 0,
         "one per Idempotency-Key / {id} (if the gateway honours it)"),
        ("e-mail", len(smtp.message_ids), len(set(smtp.message_ids)), 0, "one per Message-ID (clients and archives)"),
    ]
    sent = sum(r.status == "sent" for r in rows)
    lines = [f"{sent} of {len(rows)} outbox rows sent; {notifications} notifications per channel, {share:.0%} of "
             f"answers held {HELD_S:g} s past a {timeout:g} s timeout"]
    for name, taken, seen, marked, how in channels:
        lines.append(f"  {name:<12} taken {taken:>4} (extra copies {taken - notifications:>3}), "
                     f"recipient sees {seen:>4} (duplicates {seen - notifications:>3}), marked repeat {marked:>3}: "
                     f"{how}")
    return lines


def watchdog_detection(tmp: Path, runs: int, soak_s: float, timeout_s: float) -> tuple[list[float], int]:
    hook = StandIn(lambda request: (200, {}, {}))
    secret = tmp / "heartbeat.secret"
    secret.write_text("bench secret")
    port = free_port()
    settings = WatchdogSettings.model_validate({
        "listen": f"127.0.0.1:{port}", "secret_file": str(secret), "timeout_s": timeout_s,
        "store_path": str(tmp / "watchdog.db"), "receivers": [{"name": "oncall", "webhooks": [hook.url + "/page"],
                                                               "feed": False}]})
    watchdog = Watchdog(settings, CLOCK)
    watchdog.start()

    def beat() -> float:
        body = Heartbeat("park", CLOCK.now(), "Asia/Karachi", "bench").body()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/heartbeat", data=body, method="POST",
                                         headers={SIGNATURE_HEADER: signature(b"bench secret", body)})
        with urllib.request.urlopen(request, timeout=5) as answer:
            answer.read()
        return CLOCK.monotonic()

    def pages() -> list:
        return [r for r in hook.requests if b'"status": "firing"' in r.body or b'"status":"firing"' in r.body]

    detections = []
    try:
        for _ in range(runs):
            for _ in range(3):
                last = beat()
                CLOCK.sleep(1.0)
            before = len(pages())
            deadline = last + timeout_s + 30
            while len(pages()) == before and CLOCK.monotonic() < deadline:
                CLOCK.sleep(0.05)
            if len(pages()) > before:
                detections.append(pages()[-1].received_at - last)
        settled = len(pages())
        end = CLOCK.monotonic() + soak_s
        while CLOCK.monotonic() < end:
            beat()
            CLOCK.sleep(1.0)
        false_pages = len(pages()) - settled
    finally:
        watchdog.stop()
        hook.close()
    return detections, false_pages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=100)
    parser.add_argument("--rate", type=float, default=100.0, help="alerts per minute")
    parser.add_argument("--sms", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--soak-s", type=float, default=60.0)
    parser.add_argument("--watchdog-timeout-s", type=float, default=5.0)
    parser.add_argument("--notifications", type=int, default=100)
    parser.add_argument("--held", type=float, default=0.3, help="share of answers held past the timeout")
    parser.add_argument("--only", choices=["unanswered"], default=None, help="run only this part")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for line in unanswered(tmp, args.notifications, args.held):
            print(line, flush=True)
        if args.only:
            return 0
        broker = Mosquitto(tmp / "mosquitto", free_port())
        broker.start()
        broker.wait_ready(20)
        try:
            reference = bare_post(args.alerts)
            print(f"reference: bare loopback POST to the webhook stand-in: {_stats(reference)}")
            ref_p99 = float(np.percentile(reference, 99))
            for channel, delays in trip_to_delivered(tmp, broker, args.alerts, args.rate).items():
                ratio = float(np.percentile(delays, 99)) / ref_p99 if delays else float("nan")
                print(f"trip → delivered, {channel:<18} {_stats(delays)} (missed {args.alerts - len(delays)}); "
                      f"p99 / reference p99 = {ratio:.1f}×")
        finally:
            broker.stop()
        rate, alone_s, both_s = sms_rate(tmp, args.sms)
        print(f"SMS through the dummy modem: {rate:.1f} messages/s ({args.sms} messages, 3 parts max); "
              f"webhook drain of {args.sms}: {alone_s:.2f} s alone, {both_s:.2f} s while the modem drains "
              f"({both_s / alone_s:.2f}×)")
        detections, false_pages = watchdog_detection(tmp, args.runs, args.soak_s, args.watchdog_timeout_s)
        shown = ", ".join(f"{d:.2f}" for d in detections)
        print(f"watchdog (timeout {args.watchdog_timeout_s:g} s): detection after the last heartbeat [{shown}] s "
              f"over {args.runs} runs (max {max(detections, default=float('nan')):.2f} s, target ≤ "
              f"{args.watchdog_timeout_s + 10:g} s); false pages over {args.soak_s:g} s of heartbeats: {false_pages}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
