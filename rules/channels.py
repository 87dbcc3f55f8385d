"""Which notifier serves which outbox target: `build_notifiers` turns the receivers' settings into
notifiers named `<receiver>:<kind><n>` (webhook0, telegram1, gsm2, feed3...), says which of them the
engine enqueues each receiver's notifications on (failover-only SMS excluded), and which SMS targets
each failing target fails over to, in the order `failover.to` names them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from core.clock import Clock
from core.settings.base import read_secret
from core.settings.rules import FailoverSettings, GsmModemSettings, ReceiverSettings
from rules.alerts import Alert, AlertState, fingerprint
from rules.notifiers.feed import FeedNotifier
from rules.notifiers.gsm import GammuModem, GsmNotifier, Modem
from rules.notifiers.ntfy import NtfyNotifier
from rules.notifiers.sms_gateway import SmsGatewayNotifier
from rules.notifiers.telegram import TelegramApi, TelegramNotifier
from rules.notify import (
    AlertmanagerNotifier,
    ChatNotifier,
    EmailNotifier,
    Failover,
    Notifier,
    WebhookNotifier,
    Zones,
    payload_of,
)
from rules.route import Notification
from rules.store import AlertStore


@dataclass(frozen=True)
class Channels:
    """What `build_notifiers` builds: every notifier by outbox target (`<receiver>:<kind><n>`), the
    targets the engine enqueues each receiver's notifications on (failover-only SMS excluded), and
    where a failing target's critical notifications fail over to."""

    targets: dict[str, Notifier]
    by_receiver: dict[str, list[str]]
    failover: dict[str, Failover]
    offline_rules: dict[str, str]


def build_notifiers(receivers: Sequence[ReceiverSettings], store: AlertStore | None = None,
                    clock: Clock | None = None, zones: Zones | None = None,
                    modem_factory: Callable[[GsmModemSettings], Modem] | None = None) -> Channels:
    """The notifiers `receivers` describe. The feed needs `store` and `clock` (without them it is left
    out); `zones` puts the sites' local times in messages. Raises ValueError when a secret file
    cannot be read."""
    channels = Channels({}, {}, {}, {})
    for receiver in receivers:
        kinds = _receiver_notifiers(receiver, store, clock, zones or {}, modem_factory or _gammu_modem)
        failover_kinds = tuple(receiver.failover.to) if receiver.failover else ()
        by_kind: dict[str, list[str]] = {}
        for kind, make in kinds:
            target = f"{receiver.name}:{kind}{sum(len(v) for v in by_kind.values())}"
            channels.targets[target] = make(target)
            by_kind.setdefault(kind, []).append(target)
        channels.by_receiver[receiver.name] = [t for kind, ts in by_kind.items() if kind not in failover_kinds
                                               for t in ts]
        if receiver.failover is not None:
            _chain(channels, receiver.failover, by_kind)
    return channels


def _chain(channels: Channels, failover: FailoverSettings, by_kind: Mapping[str, list[str]]) -> None:
    """Primary targets (not the feed) fail over to the first SMS kind; each SMS kind to the next."""
    steps = [tuple(by_kind[kind]) for kind in failover.to if by_kind.get(kind)]
    primaries = [t for kind, ts in by_kind.items() if kind not in failover.to and kind != "feed" for t in ts]
    for sources, dest in zip([primaries, *steps[:-1]], steps, strict=False):
        for target in sources:
            channels.failover[target] = Failover(dest, failover.after_s, frozenset(failover.severities))
            channels.offline_rules[target] = failover.offline_rule


def _gammu_modem(settings: GsmModemSettings) -> Modem:
    return GammuModem(settings.device, settings.connection, settings.model)


def _receiver_notifiers(receiver: ReceiverSettings, store: AlertStore | None, clock: Clock | None, zones: Zones,
                        modem_factory: Callable[[GsmModemSettings], Modem]
                        ) -> list[tuple[str, Callable[[str], Notifier]]]:
    """(kind, factory of the notifier given its target name), in the order targets are numbered."""
    where = f"rules.receivers.{receiver.name}"
    kinds: list[tuple[str, Callable[[str], Notifier]]] = []
    for url in receiver.webhooks:
        kinds.append(("webhook", lambda t, url=url: WebhookNotifier(t, url)))
    for url in receiver.alertmanager_urls:
        kinds.append(("alertmanager", lambda t, url=url: AlertmanagerNotifier(t, url)))
    for chat in receiver.chat:
        kinds.append(("chat", lambda t, chat=chat: ChatNotifier(t, chat.url, chat.language, chat.field)))
    if receiver.email is not None:
        mail = receiver.email
        password = read_secret(mail.password, mail.password_file, f"{where}.email.password")
        kinds.append(("email", lambda t, m=mail, p=password: EmailNotifier(t, m.host, m.port, m.from_addr, tuple(m.to),
                                                                           m.language, m.starttls, m.username, p)))
    for tg in receiver.telegram:
        token = read_secret(tg.bot_token, tg.bot_token_file, f"{where}.telegram.bot_token")
        if not token:
            raise ValueError(f"{where}.telegram: no bot token; set bot_token_file to a file holding the token "
                             "BotFather gave (or the bot_token environment override)")
        api = TelegramApi(tg.api_url, token, tg.timeout_s)
        kinds.append(("telegram", lambda t, tg=tg, api=api: TelegramNotifier(t, api, tg.chat_ids, tg.language, zones,
                                                                             tg.acknowledge_button)))
    for nt in receiver.ntfy:
        token = read_secret(nt.token, nt.token_file, f"{where}.ntfy.token")
        kinds.append(("ntfy", lambda t, nt=nt, token=token: NtfyNotifier(t, nt.url, nt.topic, token, nt.language,
                                                                         zones, nt.timeout_s)))
    for gw in receiver.sms_gateway:
        key = read_secret(gw.api_key, gw.api_key_file, f"{where}.sms_gateway.api_key")
        kinds.append(("sms_gateway", lambda t, gw=gw, key=key: SmsGatewayNotifier(
            t, gw.url, gw.numbers, gw.body, gw.body_format, gw.method, gw.headers, key, gw.language, zones,
            gw.timeout_s)))
    if receiver.gsm is not None:
        gsm = receiver.gsm
        kinds.append(("gsm", lambda t, g=gsm: GsmNotifier(t, modem_factory(g), g.numbers, g.max_parts, g.language,
                                                          zones, g.read_replies)))
    if receiver.feed and store is not None and clock is not None:
        kinds.append(("feed", lambda t: FeedNotifier(t, store, clock, "en", zones)))
    return kinds


def channels_down_payload(receiver: str, targets: Sequence[str], after_s: float, now: float,
                          external_url: str) -> dict:
    """The notification that a receiver's integrations have all been failing (an alert about alerting)."""
    labels = {"alertname": "NotificationChannelsDown", "receiver": receiver, "severity": "critical"}
    alert = Alert(fingerprint(labels), "NotificationChannelsDown", labels,
                  {"summary": f"every integration of receiver {receiver} has failed for {after_s / 60:g} min: "
                              f"{', '.join(targets)}; check the uplink, tokens and `facmon notify test`"},
                  AlertState.FIRING, now, now, None, now)
    return payload_of(Notification(receiver, f"{receiver}/channels-down", {"receiver": receiver}, "firing",
                                   (alert,), (), "new"), external_url)
