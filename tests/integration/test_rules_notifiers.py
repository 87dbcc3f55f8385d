"""Notifiers against real counterparts: a real Alertmanager (Debian's prometheus-alertmanager)
receives our pushed alerts and, configured with a webhook to a capture server, shows the webhook v4
format we must match; a real SMTP server (aiosmtpd) receives the Urdu e-mail; retries with backoff."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from core.clock import FakeClock
from facmon.servers import free_port
from rules.alerts import Alert, AlertState, fingerprint
from rules.notify import AlertmanagerNotifier, Delivery, EmailNotifier, NotifyError, WebhookNotifier, payload_of
from rules.route import Notification
from rules.store import AlertStore
from tests.support import poll_until


class CaptureServer:
    """An HTTP server that records every POSTed JSON body; `fail_next` answers that many with 503."""

    def __init__(self) -> None:
        self.bodies: list[object] = []
        self.idempotency_keys: list[str | None] = []
        """The Idempotency-Key header of every POST, answered or failed, in order."""
        self.fail_next = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.idempotency_keys.append(self.headers.get("Idempotency-Key"))
                if outer.fail_next > 0:
                    outer.fail_next -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                outer.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    server = CaptureServer()
    yield server
    server.close()


def _incident(clock: FakeClock, state: AlertState = AlertState.FIRING) -> Notification:
    identity = {"alertname": "GridOutage", "site": "park", "device": "inv-main"}
    alert = Alert(fingerprint(identity), "GridOutage", {**identity, "severity": "critical", "outage": "unscheduled"},
                  {"summary": "Grid down at park (inv-main)", "summary_ur": "park پر بجلی بند (inv-main)"}, state,
                  active_since=clock.now() - 10, fired_at=clock.now(),
                  resolved_at=clock.now() + 60 if state is AlertState.RESOLVED else None)
    muted_identity = {"alertname": "UplinkDown", "site": "park", "device": "uplink-ptcl"}
    muted = Alert(fingerprint(muted_identity), "UplinkDown", {**muted_identity, "severity": "warning"}, {},
                  AlertState.FIRING, fired_at=clock.now(), muted_by=(f"inhibited:{alert.fingerprint}",))
    return Notification("oncall", 'oncall/{"site":"park"}', {"site": "park"}, state.value, (alert,), (muted,), "new")


def _shape(value: object) -> object:
    """The JSON structure of `value`: key names and value types, recursively (lists by first item)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def test_alertmanager_receives_our_alerts_and_its_webhook_has_our_shape(alertmanager, capture):
    am_config = {"route": {"receiver": "hook", "group_by": ["site"], "group_wait": "0s", "group_interval": "1s"},
                 "receivers": [{"name": "hook", "webhook_configs": [{"url": capture.url, "send_resolved": True}]}]}
    am = alertmanager(am_config)
    clock = FakeClock()
    ours = payload_of(_incident(clock), "http://facmon.test")
    AlertmanagerNotifier("am", am.url).send(ours)
    theirs = poll_until(lambda: capture.bodies, timeout_s=15, what="Alertmanager's webhook")[0]
    # Alertmanager received the alert with our labels...
    assert theirs["alerts"][0]["labels"] == ours["alerts"][0]["labels"]
    assert theirs["alerts"][0]["annotations"] == ours["alerts"][0]["annotations"]
    # ...and the webhook v4 body we send ourselves has exactly the structure Alertmanager sends.
    WebhookNotifier("hook", capture.url).send(ours)
    ours_sent = poll_until(lambda: capture.bodies[1:], timeout_s=5, what="our webhook")[0]
    assert "facmon" not in ours_sent
    assert _shape(ours_sent) == _shape(theirs)
    assert ours_sent["version"] == theirs["version"] == "4"
    assert ours_sent["status"] == "firing" and ours_sent["groupLabels"] == {"site": "park"}


def test_email_in_urdu_through_a_real_smtp_server():
    received: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope.content)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock = FakeClock()
        payload = payload_of(_incident(clock), "http://facmon.test")
        EmailNotifier("mail", "127.0.0.1", port, "facmon@park.test", ("oncall@park.test",), language="ur").send(payload)
        poll_until(lambda: received, timeout_s=5, what="the e-mail")
    finally:
        controller.stop()
    message = message_from_bytes(received[0], policy=default_policy)
    body = message.get_body().get_content()
    assert message["To"] == "oncall@park.test"
    assert "park پر بجلی بند (inv-main)" in message["Subject"]
    assert "[critical] GridOutage: park پر بجلی بند (inv-main)" in body
    assert "اس واقعے کے دوران خاموش کیے گئے (1):" in body  # the inhibited uplink alert is listed
    assert "UplinkDown uplink-ptcl" in body


def test_delivery_retries_with_backoff_and_logs_each_attempt(tmp_path, capture):
    clock = FakeClock()
    store = AlertStore(tmp_path / "alerts.db", clock)
    payload = payload_of(_incident(clock), "http://facmon.test")
    nid = store.enqueue_notification("g", "oncall:webhook0", ["x"], payload, clock.now())
    delivery = Delivery(store, {"oncall:webhook0": WebhookNotifier("oncall:webhook0", capture.url)}, min_s=2, max_s=60)
    capture.fail_next = 2
    assert delivery.deliver_due(clock.now()) == 0
    [record] = store.notifications()
    assert (record.status, record.attempts, record.next_attempt_at - clock.now()) == ("pending", 1, 2.0)
    assert "503" in record.last_error
    clock.advance(2)
    assert delivery.deliver_due(clock.now()) == 0
    assert store.notifications()[0].next_attempt_at - clock.now() == 4.0  # doubled
    clock.advance(3.9)
    assert delivery.deliver_due(clock.now()) == 0  # not due yet: nothing tried
    assert store.notifications()[0].attempts == 2
    clock.advance(0.1)
    assert delivery.deliver_due(clock.now()) == 1
    assert store.notifications()[0].status == "sent" and len(capture.bodies) == 1
    assert store.alert("x") is None and nid == record.id
    # Three attempts of one notification, one id: a receiver can tell the retries from a new page.
    [key] = set(capture.idempotency_keys)
    assert len(capture.idempotency_keys) == 3 and key.startswith(f"fmn-{nid}-")
    other = store.enqueue_notification("g", "oncall:webhook0", ["y"], payload, clock.now())
    assert delivery.deliver_due(clock.now()) == 1
    assert capture.idempotency_keys[-1].startswith(f"fmn-{other}-") and capture.idempotency_keys[-1] != key


def test_non_retryable_failure_is_given_up(tmp_path):
    clock = FakeClock()
    store = AlertStore(tmp_path / "alerts.db", clock)

    class Refusing:
        name = "t"

        def send(self, payload: object) -> None:
            raise NotifyError("400 bad request: unknown channel", retryable=False)

    store.enqueue_notification("g", "t", [], {}, clock.now())
    Delivery(store, {"t": Refusing()}).deliver_due(clock.now())
    [record] = store.notifications()
    assert (record.status, record.attempts, record.last_error) == ("failed", 1, "400 bad request: unknown channel")


def test_an_email_retried_after_a_temporary_refusal_keeps_its_message_id(tmp_path):
    """A real SMTP server (aiosmtpd) refuses the first DATA with 451: the retry carries the same
    Message-ID, so the mailbox (or the receiver's archive) can drop a second copy."""
    seen: list[str] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            seen.append(message_from_bytes(envelope.content, policy=default_policy)["Message-ID"])
            return "451 4.3.0 try again later" if len(seen) == 1 else "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock = FakeClock()
        store = AlertStore(tmp_path / "alerts.db", clock)
        nid = store.enqueue_notification("g", "oncall:email0", ["x"], payload_of(_incident(clock), "http://f.test"),
                                         clock.now())
        mail = EmailNotifier("oncall:email0", "127.0.0.1", port, "facmon@park.test", ("oncall@park.test",))
        delivery = Delivery(store, {"oncall:email0": mail}, min_s=1, max_s=60)
        assert delivery.deliver_due(clock.now()) == 0  # 451: retryable
        clock.advance(1)
        assert delivery.deliver_due(clock.now()) == 1
    finally:
        controller.stop()
    assert len(seen) == 2 and seen[0] == seen[1] and seen[0].startswith(f"<fmn-{nid}-")
