"""Notifiers and delivery: the outbox (store) is drained by `Delivery`, with retries and backoff.

    Notifier (Protocol)     send(payload) -> None; raises NotifyError(retryable=...)
      WebhookNotifier       POST Alertmanager webhook JSON (version "4") to a URL
      AlertmanagerNotifier  POST the alerts to a real Alertmanager's /api/v2/alerts
      EmailNotifier         SMTP e-mail, text from rules/templates/{language}.yaml
      ChatNotifier          POST {"text": ...} (chat or SMS gateway webhook), same templates

    NotifyError(message, retryable)   retryable: connection refused, timeouts, 5xx, 429; not: other 4xx

`payload_of(notification)` turns a routed `Notification` into the stored payload: the webhook v4 body
plus a `facmon` key (muted alerts, reason, escalation level, language-neutral extras).
`Delivery.deliver_due(now)` sends what is due, one notifier call per outbox row, and records every
attempt in the store (the per-notification log); it never raises for a notifier's failure, so it
cannot block evaluation. It runs on its own thread in the service.

Delivery is at least once (a receiver that took a page but did not answer gets it again), so every
notification carries a stable id, `facmon.notification_id`, the same on every retry and after a
restart: webhooks and chat gateways get it as the `Idempotency-Key` header (the webhook body stays
exactly Alertmanager's v4, whose `groupKey` names the incident), e-mail as its `Message-ID`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from email.message import EmailMessage
from functools import cache
from pathlib import Path
from typing import Protocol

import yaml

from core.smtp import SmtpFailure, send_mail
from rules.alerts import Alert
from rules.evaluate import render
from rules.route import Notification
from rules.store import AlertStore, NotificationRecord

log = logging.getLogger("facmon.rules.notify")
TEMPLATES_DIR = Path(__file__).parent / "templates"
LANGUAGES = ("en", "ur")
_ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's "not set" time


class NotifyError(Exception):
    """A notification could not be delivered. `retryable` says whether trying again may help;
    `retry_after_s`, when the service said how long to wait (HTTP `Retry-After`, Telegram's
    `parameters.retry_after`), is honoured over the outbox's own back-off."""

    def __init__(self, message: str, retryable: bool, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class Notifier(Protocol):
    """Delivers one notification payload (see `payload_of`). `send` is called from the delivery
    thread only, one call at a time; it raises `NotifyError` and nothing else on failure."""

    name: str

    def send(self, payload: Mapping) -> None: ...


def _rfc3339(epoch_s: float | None) -> str:
    if epoch_s is None:
        return _ZERO_TIME
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _alert_json(alert: Alert, external_url: str) -> dict:
    status = "firing" if alert.state.value == "firing" else "resolved"
    return {
        "status": status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": _rfc3339(alert.fired_at or alert.active_since),
        "endsAt": _rfc3339(alert.resolved_at if status == "resolved" else None),
        "generatorURL": f"{external_url}/alerts/{alert.fingerprint}",
        "fingerprint": alert.fingerprint,
    }


def _common(maps: list[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    common = dict(maps[0])
    for other in maps[1:]:
        common = {k: v for k, v in common.items() if other.get(k) == v}
    return common


def payload_of(n: Notification, external_url: str) -> dict:
    """The Alertmanager webhook v4 body for `n`, plus a `facmon` key with what v4 cannot carry."""
    alerts = [_alert_json(a, external_url) for a in n.alerts]
    return {
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": 0,
        "status": n.status,
        "receiver": n.receiver,
        "groupLabels": dict(n.group_labels),
        "commonLabels": _common([a["labels"] for a in alerts]),
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": external_url,
        "alerts": alerts,
        "facmon": {
            "reason": n.reason,
            "escalation_level": n.escalation_level,
            "muted": [{**_alert_json(a, external_url), "muted_by": list(a.muted_by)} for a in n.muted],
            "acked": {a.fingerprint: a.acked_by for a in n.alerts if a.acked_by},
        },
    }


def notification_id(payload: Mapping) -> str:
    """The id `Delivery` gave this notification (`facmon.notification_id`), the same on every retry and
    after a restart; "" for a payload that did not come through `Delivery`."""
    return str(payload.get("facmon", {}).get("notification_id", ""))


def with_notification_id(record: NotificationRecord) -> dict:
    """`record`'s payload with its stable id: the outbox row's number and a digest of what the row was
    made for, so two stores (a reinstall) cannot give two incidents the same id."""
    digest = hashlib.sha256(f"{record.group_key}|{record.receiver}|{record.created_at!r}".encode()).hexdigest()
    extras = {**record.payload.get("facmon", {}), "notification_id": f"fmn-{record.id}-{digest[:16]}"}
    return {**record.payload, "facmon": extras}


def _id_headers(payload: Mapping) -> dict[str, str]:
    # Idempotency-Key (IETF httpapi draft): a receiver that sees it twice has seen a retry, not a new page.
    nid = notification_id(payload)
    return {"Idempotency-Key": nid} if nid else {}


def webhook_body(payload: Mapping) -> dict:
    """Exactly the Alertmanager webhook v4 fields (the `facmon` extras removed)."""
    return {k: v for k, v in payload.items() if k != "facmon"}


def _post_json(url: str, body: object, timeout_s: float, headers: Mapping[str, str] | None = None) -> None:
    data = json.dumps(body, ensure_ascii=False).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as err:
        retryable = err.code >= 500 or err.code in (408, 429)
        detail = err.read()[:300].decode("utf-8", "replace")
        raise NotifyError(f"POST {url} answered {err.code}: {detail}", retryable) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise NotifyError(f"POST {url} failed: {getattr(err, 'reason', err)}", True) from None


class WebhookNotifier:
    def __init__(self, name: str, url: str, timeout_s: float = 10.0) -> None:
        self.name = name
        self.url = url
        self.timeout_s = timeout_s

    def send(self, payload: Mapping) -> None:
        _post_json(self.url, webhook_body(payload), self.timeout_s, _id_headers(payload))


class AlertmanagerNotifier:
    """Pushes the incident's alerts to Alertmanager (`url` is its base, e.g. http://am:9093);
    resolved alerts carry `endsAt`, so Alertmanager resolves them too."""

    def __init__(self, name: str, url: str, timeout_s: float = 10.0) -> None:
        self.name = name
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.timeout_s = timeout_s

    def send(self, payload: Mapping) -> None:
        alerts = []
        for alert in payload.get("alerts", []):
            item = {"labels": alert["labels"], "annotations": alert["annotations"], "startsAt": alert["startsAt"],
                    "generatorURL": alert["generatorURL"]}
            if alert["status"] == "resolved":
                item["endsAt"] = alert["endsAt"]
            alerts.append(item)
        _post_json(self.url, alerts, self.timeout_s)


@cache
def load_template(language: str, form: str = "") -> dict[str, str]:
    """The texts of rules/templates/{form}{language}.yaml (`form` "" for full messages, "sms_" for
    SMS-length ones)."""
    if language not in LANGUAGES:
        raise ValueError(f"no notification template for language {language!r}; have {', '.join(LANGUAGES)}")
    return yaml.safe_load((TEMPLATES_DIR / f"{form}{language}.yaml").read_text(encoding="utf-8"))


Zones = Mapping[str, tzinfo]
"""Site id → the site's time zone: times in a message are the site's local time, labelled."""


def local_time(rfc3339: str, site: str, zones: Zones) -> str:
    """`HH:MM ZONE` of an RFC 3339 UTC time in `site`'s zone (UTC when the site is not described)."""
    try:
        at = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    except ValueError:
        return rfc3339
    zone = zones.get(site, UTC)
    local = at.astimezone(zone)
    return f"{local:%H:%M} {local.tzname() or zone}"


def muted_summary(muted: list[Mapping], named: int = 3) -> list[tuple[str, int, str, str]]:
    """Muted alerts summarised per alert name: (alertname, count, the first `named` devices and how
    many more, why) — one line for thirteen silent devices behind one grid outage, not thirteen."""
    groups: dict[tuple[str, str], list[str]] = {}
    for alert in muted:
        why = ", ".join(sorted({reason.split(":")[0] for reason in alert.get("muted_by", [])})) or "muted"
        labels = alert.get("labels", {})
        groups.setdefault((labels.get("alertname", "?"), why), []).append(labels.get("device", ""))
    summary = []
    for (name, why), devices in sorted(groups.items()):
        shown = ", ".join(d for d in devices[:named] if d)
        more = f" +{len(devices) - named}" if len(devices) > named else ""
        summary.append((name, len(devices), f"{shown}{more}".strip(), why))
    return summary


def ack_code(fingerprint: str) -> str:
    """The short code a person replies with (`ACK <code>`) to acknowledge an alert by SMS."""
    return fingerprint[:6]


def render_text(payload: Mapping, language: str, zones: Zones | None = None) -> tuple[str, str]:
    """(subject, body) of a notification in `language`, from rules/templates/{language}.yaml."""
    return _render(payload, load_template(language), language, zones or {})


def render_sms(payload: Mapping, language: str, zones: Zones | None = None) -> str:
    """The SMS-length text of a notification, from rules/templates/sms_{language}.yaml."""
    subject, body = _render(payload, load_template(language, "sms_"), language, zones or {})
    return f"{subject}\n{body}" if body else subject


def _render(payload: Mapping, texts: Mapping[str, str], language: str, zones: Zones) -> tuple[str, str]:
    alerts = payload.get("alerts", [])
    extras = payload.get("facmon", {})
    group = payload.get("groupLabels", {})
    summary_key = "summary_ur" if language == "ur" else "summary"

    def summary(alert: Mapping) -> str:
        ann = alert.get("annotations", {})
        return ann.get(summary_key) or ann.get("summary") or alert["labels"].get("alertname", "")

    status = payload.get("status", "firing")
    values = {"status": status, "status_upper": status.upper(), "status_ur": "جاری" if status == "firing" else "حل",
              "site": group.get("site") or payload.get("commonLabels", {}).get("site", "-"),
              "count": len(alerts), "reason": extras.get("reason", ""),
              "first_summary": summary(alerts[0]) if alerts else "", "muted_count": len(extras.get("muted", [])),
              "external_url": payload.get("externalURL", ""),
              "status_url": payload.get("externalURL", "").rstrip("/") + "/status/",
              "ack_codes": " ".join(ack_code(a["fingerprint"]) for a in alerts
                                    if a["status"] == "firing" and a.get("fingerprint"))}
    site = str(values["site"])
    lines = [render(texts["header"], values)] if texts.get("header") else []
    for alert in alerts:
        item = {**values, "device": "", **alert["labels"], "summary": summary(alert),
                "since": local_time(alert["startsAt"], alert["labels"].get("site", site), zones),
                "code": ack_code(alert.get("fingerprint", ""))}
        if alert["status"] == "resolved":
            lines.append(render(texts["resolved"], item))
            continue
        lines.append(render(texts["alert"], item))
        acked_by = extras.get("acked", {}).get(alert.get("fingerprint"))
        if acked_by:
            lines.append(render(texts["acked"], {"acked_by": acked_by}))
    if extras.get("muted"):
        lines.append(render(texts["muted_header"], values))
        for name, count, devices, why in muted_summary(extras["muted"]):
            lines.append(render(texts["muted"], {"alertname": name, "count": count, "devices": devices, "why": why}))
    if values["ack_codes"] and texts.get("ack_hint"):
        lines.append(render(texts["ack_hint"], values))
    lines.append(render(texts["footer"], values))
    return render(texts["subject"], values), "\n".join(line for line in lines if line)


class ChatNotifier:
    """Chat or SMS gateway webhook: POST {"<field>": text} with the rendered message."""

    def __init__(self, name: str, url: str, language: str = "en", field: str = "text", timeout_s: float = 10.0) -> None:
        load_template(language)
        self.name = name
        self.url = url
        self.language = language
        self.field = field
        self.timeout_s = timeout_s

    def send(self, payload: Mapping) -> None:
        subject, body = render_text(payload, self.language)
        _post_json(self.url, {self.field: f"{subject}\n{body}"}, self.timeout_s, _id_headers(payload))


class EmailNotifier:
    def __init__(self, name: str, host: str, port: int, from_addr: str, to: tuple[str, ...], language: str = "en",
                 starttls: bool = False, username: str | None = None, password: str | None = None,
                 timeout_s: float = 10.0) -> None:
        load_template(language)
        self.name = name
        self.host, self.port = host, port
        self.from_addr, self.to = from_addr, to
        self.language = language
        self.starttls = starttls
        self.username, self.password = username, password
        self.timeout_s = timeout_s

    def send(self, payload: Mapping) -> None:
        subject, body = render_text(payload, self.language)
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self.from_addr
        message["To"] = ", ".join(self.to)
        message["X-Facmon-Group"] = str(payload.get("groupKey", ""))[:200]
        nid = notification_id(payload)
        if nid:  # the same Message-ID on a retry: mail clients and archives keep one copy
            message["Message-ID"] = f"<{nid}@facmon>"
        message.set_content(body)
        try:
            send_mail(message, self.host, self.port, self.timeout_s, starttls=self.starttls,
                      username=self.username, password=self.password)
        except SmtpFailure as err:
            raise NotifyError(str(err), err.retryable) from None


@dataclass(frozen=True, slots=True)
class Failover:
    """Where a target's notifications go when it keeps failing: `targets` (SMS, no internet needed),
    for notifications whose highest severity is in `severities`, after `after_s` of failing — or at
    the first failure while the site is judged offline."""

    targets: tuple[str, ...]
    after_s: float
    severities: frozenset[str] = frozenset({"critical"})


@dataclass
class DeliveryCounts:
    """Per target: notifications delivered, attempts failed, and when the last success and the first
    failure since it were (for the engine's /metrics and the all-channels-down alert)."""

    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    last_sent_at: dict[str, float] = field(default_factory=dict)
    failing_since: dict[str, float] = field(default_factory=dict)


def highest_severity(payload: Mapping) -> str:
    order = ("critical", "warning", "info")
    found = {a.get("labels", {}).get("severity", "") for a in payload.get("alerts", []) if a.get("status") == "firing"}
    return next((s for s in order if s in found), next(iter(sorted(found)), ""))


class Delivery:
    """Drains the store's outbox through the notifiers. `targets` maps an outbox row's receiver
    (`<receiver>:<integration>`) to its notifier. Backoff: `min_s * 2**attempt`, capped at `max_s`
    (a service's own `retry_after_s` wins when longer); after `max_attempts` the row is marked failed
    (and logged). `failover` maps a target to where its critical rows go when it keeps failing
    (`site_offline()` true: at once). Each target may be drained by its own thread
    (`deliver_due(now, only=[target])`), so a slow modem holds up no other channel."""

    def __init__(self, store: AlertStore, targets: Mapping[str, Notifier], min_s: float = 1.0, max_s: float = 300.0,
                 max_attempts: int = 10, on_sent: Callable[[int], None] | None = None,
                 failover: Mapping[str, Failover] | None = None,
                 site_offline: Callable[[], bool] | None = None) -> None:
        self._store = store
        self._targets = dict(targets)
        self._min_s, self._max_s, self._max_attempts = min_s, max_s, max_attempts
        self._on_sent = on_sent
        self._failover = dict(failover or {})
        self._site_offline = site_offline or (lambda: False)
        self._counts_lock = threading.Lock()
        self.counts = DeliveryCounts()

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self._targets)

    def deliver_due(self, now: float, only: Sequence[str] | None = None) -> int:
        """Try every due notification (of the targets in `only`, if given) once; returns how many
        were sent. Rows for a target no notifier exists for are marked failed with the reason."""
        sent = 0
        for record in self._store.due_notifications(now, receivers=only):
            notifier = self._targets.get(record.receiver)
            if notifier is None:
                self._store.mark_attempt_failed(record.id, f"no integration named {record.receiver!r} is "
                                                           "configured (rules.receivers)", None)
                continue
            sent += self._deliver(notifier, record, now)
        return sent

    def fail_unknown_targets(self, now: float) -> int:
        """Mark failed the due rows of targets no notifier exists for (a receiver removed from the
        configuration since they were enqueued); returns how many."""
        orphans = [r for r in self._store.due_notifications(now, limit=1000) if r.receiver not in self._targets]
        for record in orphans:
            self._store.mark_attempt_failed(record.id, f"no integration named {record.receiver!r} is configured "
                                                       "(rules.receivers)", None)
        return len(orphans)

    def _deliver(self, notifier: Notifier, record: NotificationRecord, now: float) -> int:
        try:
            notifier.send(with_notification_id(record))
        except NotifyError as err:
            self._failed(record, err, now)
            return 0
        self._store.mark_sent(record.id, now)
        self._store.record_delivery(record.id, record.receiver, now,
                                    record.payload.get("facmon", {}).get("failover_of"))
        with self._counts_lock:
            self.counts.sent[record.receiver] = self.counts.sent.get(record.receiver, 0) + 1
            self.counts.last_sent_at[record.receiver] = now
            self.counts.failing_since.pop(record.receiver, None)
        if self._on_sent is not None:
            self._on_sent(record.id)
        return 1

    def _failed(self, record: NotificationRecord, err: NotifyError, now: float) -> None:
        with self._counts_lock:
            self.counts.failed[record.receiver] = self.counts.failed.get(record.receiver, 0) + 1
            self.counts.failing_since.setdefault(record.receiver, now)
        attempt = record.attempts + 1
        if self._fail_over(record, err, now):
            return
        give_up = not err.retryable or attempt >= self._max_attempts
        backoff = min(self._min_s * 2 ** (attempt - 1), self._max_s)
        next_at = None if give_up else now + max(backoff, err.retry_after_s or 0.0)
        failover = self._failover.get(record.receiver)
        if next_at is not None and failover is not None and highest_severity(record.payload) in failover.severities:
            # Try again no later than the failover is due, so a long back-off cannot delay the SMS.
            next_at = min(next_at, max(now, record.created_at + failover.after_s))
        self._store.mark_attempt_failed(record.id, str(err), next_at)
        log.warning("notification failed", extra={"id": record.id, "receiver": record.receiver,
                                                  "attempt": attempt, "retry_at": next_at, "error": str(err)})

    def _fail_over(self, record: NotificationRecord, err: NotifyError, now: float) -> bool:
        failover = self._failover.get(record.receiver)
        if failover is None or highest_severity(record.payload) not in failover.severities:
            return False
        offline = self._site_offline()
        if not offline and now - record.created_at < failover.after_s and err.retryable:
            return False
        why = (f"failed over to {', '.join(failover.targets)} "
               f"({'the site is offline' if offline else 'still failing'}): {err}")
        ids = self._store.fail_over(record, failover.targets, now, why)
        log.warning("notification failed over", extra={"id": record.id, "receiver": record.receiver,
                                                       "to": list(failover.targets), "new_ids": ids,
                                                       "error": str(err)})
        return True


def receivers_all_down(by_receiver: Mapping[str, Sequence[str]], failing_since: Mapping[str, float], now: float,
                       after_s: float) -> set[str]:
    """Receivers every one of whose integrations (the feed aside) has been failing for `after_s`."""
    down = set()
    for receiver, targets in by_receiver.items():
        watched = [t for t in targets if not t.split(":", 1)[-1].startswith("feed")]
        if watched and all(t in failing_since and now - failing_since[t] >= after_s for t in watched):
            down.add(receiver)
    return down
