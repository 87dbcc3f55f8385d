"""`facmon rules run`: the engine with its edges — MQTT in, APScheduler ticks, notifier delivery on
its own thread, alert transitions to InfluxDB. Built from `RulesSettings`; the clock is injected.

    service = RulesService.from_settings(config.rules, config.mqtt, clock, line_writer.write, sites=config.sites)
    service.start(); ...; service.stop()

Delivery never blocks evaluation: the engine only enqueues in the store; the delivery thread sends
(woken at once on enqueue, otherwise every second for retries). Alert transitions reach InfluxDB
the same way: `rules.annotations.AnnotationWriter` copies them from the store on its own thread.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from core.clock import Clock
from core.known_devices import known_devices_for, load_sites
from core.settings.base import read_secret
from core.settings.mqtt import MqttSettings
from core.settings.rules import FailoverSettings, GsmModemSettings, ReceiverSettings, RulesSettings
from core.settings.sites import SitesSettings
from core.site import Site
from rules.alerts import Alert, AlertState, fingerprint
from rules.annotations import AnnotationWriter
from rules.engine import WATCHDOG, Engine
from rules.heartbeat import HeartbeatSender
from rules.http import EngineHealth, RulesHttp
from rules.matchers import parse_matcher
from rules.model import RulePack, load_rule_files
from rules.mqtt import RulesSubscription
from rules.notifiers.acks import acknowledge_code
from rules.notifiers.feed import FeedNotifier
from rules.notifiers.gsm import GammuModem, GsmNotifier, Modem, read_ack_replies
from rules.notifiers.ntfy import NtfyNotifier
from rules.notifiers.sms_gateway import SmsGatewayNotifier
from rules.notifiers.telegram import TelegramAcks, TelegramApi, TelegramNotifier
from rules.notify import (
    AlertmanagerNotifier,
    ChatNotifier,
    Delivery,
    EmailNotifier,
    Failover,
    Notifier,
    NotifyError,
    WebhookNotifier,
    Zones,
    payload_of,
    receivers_all_down,
)
from rules.route import Escalation, Notification, Route
from rules.store import AlertStore

log = logging.getLogger("facmon.rules")
# APScheduler logs every run of every job at INFO ("Running job ...", "executed successfully"): two
# lines per tick would bury the engine's own log. Its warnings (missed runs) and errors still show.
logging.getLogger("apscheduler").setLevel(logging.WARNING)
NO_SITES = SitesSettings()
DEFAULT_RULE_FILES = (Path(__file__).resolve().parent / "packs" / "park.yaml",)


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


def build_routes(settings: RulesSettings) -> list[Route]:
    routes = []
    if settings.heartbeat.receiver:
        # The Watchdog goes only to the heartbeat receiver, re-sent every interval (like Alertmanager's).
        interval = settings.heartbeat.interval_s
        routes.append(Route(settings.heartbeat.receiver, (parse_matcher(f"alertname={WATCHDOG}"),), (), 0.0,
                            interval, interval))
    for r in settings.routes:
        routes.append(Route(r.receiver, tuple(parse_matcher(m) for m in r.match), tuple(r.group_by), r.group_wait_s,
                            r.group_interval_s, r.repeat_interval_s,
                            tuple(Escalation(e.after_s, e.receiver) for e in r.escalations), r.continue_))
    return routes


class RulesService:
    def __init__(self, engine: Engine, delivery: Delivery, clock: Clock, interval_s: float,
                 subscription_factory: Callable[[Engine], RulesSubscription] | None,
                 annotations: AnnotationWriter | None = None, store: AlertStore | None = None,
                 channels: Channels | None = None, heartbeat: Callable[[RulesService], HeartbeatSender] | None = None,
                 channels_down_after_s: float = 600.0, external_url: str = "") -> None:
        self.engine = engine
        self._external_url = external_url
        self.delivery = delivery
        self.annotations = annotations
        self._clock = clock
        self._interval_s = interval_s
        self._messages = 0
        self._subscription = subscription_factory(self._counting(engine)) if subscription_factory else None
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self._store = store
        self._channels = channels
        self._channels_down_after_s = channels_down_after_s
        self._reported_down: set[str] = set()
        self.workers = DeliveryWorkers(delivery, clock, on_sweep=self._check_channels)
        self.acks = AckListeners(store, channels.targets, clock) if store is not None and channels else None
        self.heartbeat = heartbeat(self) if heartbeat is not None else None
        self.last_tick_at: float | None = None
        self._http: RulesHttp | None = None

    def _counting(self, engine: Engine) -> Engine:
        # The subscription hands messages to engine.handle; count them for /metrics on the way.
        service = self

        class Counting:
            def __getattr__(self, name: str) -> object:
                return getattr(engine, name)

            def handle(self, message: object) -> None:
                service._messages += 1
                engine.handle(message)  # type: ignore[arg-type]
        return Counting()  # type: ignore[return-value]

    def health(self) -> EngineHealth:
        """What /metrics and /readyz report, and what decides whether a heartbeat goes out."""
        now = self._clock.now()
        lag = None if self.last_tick_at is None else now - self.last_tick_at
        connected = self._subscription.connected if self._subscription is not None else True
        subscribed = self._subscription.subscribed if self._subscription is not None else True
        reasons = []
        if lag is None or lag > 3 * self._interval_s + 5:
            reasons.append("not evaluating: no rules tick in the last "
                           f"{3 * self._interval_s + 5:g} s" if lag is not None else "not evaluating yet")
        if not subscribed:
            reasons.append("not subscribed to the MQTT broker (see mqtt.* and the broker's log)")
        counts = self.delivery.counts
        return EngineHealth(lag, connected, subscribed, self._messages,
                            self._store.outbox_depth() if self._store is not None else 0, dict(counts.sent),
                            dict(counts.failed), self.heartbeat.last_sent_at if self.heartbeat else None,
                            tuple(reasons))

    def start_http(self, listen: str) -> int:
        """Serve /metrics, /healthz and /readyz on `listen` (host:port; port 0 picks one); returns the port."""
        self._http = RulesHttp(listen, self.health)
        self._http.start()
        return self._http.port

    def _check_channels(self, now: float) -> None:
        """When every integration of a receiver has failed for `channels_down_after_s`, say so once:
        to the receiver's failover SMS and its feed (both work without the failed channels)."""
        if self._channels is None or self._store is None:
            return
        down = receivers_all_down(self._channels.by_receiver, dict(self.delivery.counts.failing_since), now,
                                  self._channels_down_after_s)
        for receiver in sorted(down - self._reported_down):
            targets = self._channels.by_receiver[receiver]
            sms = sorted({f for t in targets for f in (self._channels.failover.get(t).targets
                                                       if self._channels.failover.get(t) else ())})
            feed = [t for t in self._channels.targets if t.startswith(f"{receiver}:feed")]
            payload = channels_down_payload(receiver, targets, self._channels_down_after_s, now,
                                            self._external_url)
            for target in sms + feed:
                self._store.enqueue_notification(f"{receiver}/channels-down", target, [], payload, now)
            log.error("every integration of a receiver is failing", extra={"receiver": receiver, "targets": targets,
                                                                          "told": sms + feed})
        self._reported_down = down
        if down:
            self.workers.wake()

    @classmethod
    def from_settings(cls, settings: RulesSettings, mqtt: MqttSettings, clock: Clock,
                      write_lines: Callable[[list[str]], None] | None = None,
                      pack: RulePack | None = None, sites: SitesSettings = NO_SITES) -> RulesService:
        """The service as `settings` describe it, watching the sites `sites` describes (none by
        default: no schedules, rooms or uplink roles, and any device may publish)."""
        pack = pack or load_rule_files(settings.rule_files or DEFAULT_RULE_FILES)
        described = load_sites(sites.files)
        known = known_devices_for(sites, described.values())
        store = AlertStore(settings.store_path, clock)
        annotations = AnnotationWriter(store, write_lines) if write_lines and settings.write_influx else None
        zones = {site_id: site.tz for site_id, site in described.items()}
        channels = build_notifiers(settings.receivers, store, clock, zones)
        holder: dict[str, RulesService] = {}
        engine = Engine(pack, described, store, build_routes(settings), clock, channels.by_receiver,
                        reconnect_grace_s=settings.reconnect_grace_s, external_url=settings.external_url,
                        watchdog=settings.heartbeat.receiver is not None,
                        on_transitions=annotations.wake if annotations is not None else None,
                        on_enqueued=lambda: holder["service"].workers.wake() if "service" in holder else None)
        offline_rules = set(channels.offline_rules.values())
        delivery = Delivery(store, channels.targets, settings.retry_min_s, settings.retry_max_s, settings.max_attempts,
                            failover=channels.failover,
                            site_offline=lambda: any(store.active_alerts(state="firing", rule=rule)
                                                     for rule in offline_rules))

        def subscription(engine: Engine) -> RulesSubscription:
            return RulesSubscription(mqtt, settings.mqtt_client_id, clock, engine.handle, engine.source_connected,
                                     known=known)

        heartbeat = _heartbeat_of(settings, described, clock, store)
        service = cls(engine, delivery, clock, settings.evaluation_interval_s, subscription, annotations, store,
                      channels, heartbeat, settings.channels_down_after_s, settings.external_url)
        holder["service"] = service
        return service

    def start(self) -> None:
        self._scheduler.add_job(self._tick, "interval", seconds=self._interval_s, id="rules-tick",
                                max_instances=1, coalesce=True)
        self._scheduler.start()
        self.workers.start()
        if self.acks is not None:
            self.acks.start()
        if self.heartbeat is not None:
            self.heartbeat.start()
        if self.annotations is not None:
            self.annotations.start()
        if self._subscription is not None:
            self._subscription.start()

    def stop(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self._subscription is not None:
            self._subscription.stop()
        self._scheduler.shutdown(wait=True)
        self.workers.stop()
        if self.acks is not None:
            self.acks.stop()
        if self.annotations is not None:
            self.annotations.stop()
        if self._http is not None:
            self._http.stop()

    def _tick(self) -> None:
        try:
            self.engine.tick()
            self.last_tick_at = self._clock.now()
        except Exception:
            # A scheduler job that raises is only logged by APScheduler; say which stage failed.
            log.exception("rules tick failed; the next tick retries")


def _heartbeat_of(settings: RulesSettings, sites: Mapping[str, Site], clock: Clock,
                  store: AlertStore) -> Callable[[RulesService], HeartbeatSender] | None:
    beat = settings.heartbeat
    if not beat.url:
        return None
    secret = read_secret(beat.secret, beat.secret_file, "rules.heartbeat.secret")
    if not secret:
        raise ValueError("rules.heartbeat.secret_file is empty: put the secret shared with the watchdog in it")
    site = beat.site or next(iter(sites), "facmon")
    timezone = str(sites[site].tz) if site in sites else "UTC"
    url = beat.url
    return lambda service: HeartbeatSender(url, secret, site, timezone, beat.interval_s, clock,
                                           lambda: not service.health().not_ready,
                                           lambda: store.active_alerts(state="firing"), beat.timeout_s)


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


class AckListeners:
    """Threads that read acknowledgements from the phone: one long-polls each Telegram bot with an
    Acknowledge button for button presses, one reads each GSM modem's inbox for `ACK <code>`
    replies. A failing source (no internet, modem unplugged) is logged and tried again later."""

    def __init__(self, store: AlertStore, notifiers: Mapping[str, Notifier], clock: Clock,
                 modem_interval_s: float = 15.0, retry_s: float = 30.0) -> None:
        acknowledge = functools.partial(acknowledge_code, store)
        self._sources: list[tuple[str, Callable[[], object], float]] = []
        bots: set[str] = set()
        for target, notifier in notifiers.items():
            if isinstance(notifier, TelegramNotifier) and notifier.acknowledge_button \
                    and notifier.api.token not in bots:  # one getUpdates reader per bot, or Telegram answers 409
                bots.add(notifier.api.token)
                self._sources.append((target, TelegramAcks(notifier.api, acknowledge, poll_timeout_s=10).poll, 0.0))
            elif isinstance(notifier, GsmNotifier) and notifier.read_replies:
                modem = notifier.modem
                self._sources.append((target, lambda m=modem: read_ack_replies(m, acknowledge), modem_interval_s))
        self._clock = clock
        self._retry_s = retry_s
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=source, name=f"acks-{source[0]}", daemon=True)
                         for source in self._sources]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stopping.set()
        deadline = self._clock.monotonic() + timeout_s
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=max(0.0, deadline - self._clock.monotonic()))

    def _loop(self, target: str, poll: Callable[[], object], interval_s: float) -> None:
        while not self._stopping.is_set():
            try:
                poll()
            except NotifyError as err:
                log.warning("cannot read acknowledgements; trying again", extra={"target": target, "error": str(err),
                                                                                 "retry_s": self._retry_s})
                self._stopping.wait(self._retry_s)
                continue
            self._stopping.wait(interval_s)


class DeliveryWorkers:
    """One thread per outbox target, so a modem taking 10 s an SMS holds up no webhook or Telegram
    message, and one more that fails rows for targets no longer configured. `wake()` (on enqueue)
    starts every worker at once; otherwise each looks every `interval_s` (retries, back-off)."""

    def __init__(self, delivery: Delivery, clock: Clock, interval_s: float = 1.0,
                 on_sweep: Callable[[float], None] | None = None) -> None:
        self._on_sweep = on_sweep
        self._delivery = delivery
        self._clock = clock
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._wakes = {target: threading.Event() for target in delivery.targets}
        self._threads = [threading.Thread(target=self._loop, args=(target, wake), name=f"deliver-{target}",
                                          daemon=True) for target, wake in self._wakes.items()]
        self._threads.append(threading.Thread(target=self._sweep, name="deliver-unknown", daemon=True))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        for event in self._wakes.values():
            event.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop every worker after its current send; each drains what is due once more first."""
        self._stopping.set()
        self.wake()
        deadline = self._clock.monotonic() + timeout_s
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=max(0.0, deadline - self._clock.monotonic()))

    def _loop(self, target: str, wake: threading.Event) -> None:
        while not self._stopping.is_set():
            wake.clear()
            self._deliver(target)
            wake.wait(timeout=self._interval_s)
        self._deliver(target)

    def _deliver(self, target: str) -> None:
        try:
            self._delivery.deliver_due(self._clock.now(), only=(target,))
        except Exception:
            # A notifier must raise only NotifyError; one that does not must not kill its channel's thread.
            log.exception("delivery failed unexpectedly; retrying on the next round", extra={"target": target})

    def _sweep(self) -> None:
        while not self._stopping.wait(self._interval_s * 5):
            now = self._clock.now()
            self._delivery.fail_unknown_targets(now)
            if self._on_sweep is not None:
                self._on_sweep(now)
