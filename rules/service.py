"""`facmon rules run`: the engine with its edges — MQTT in, APScheduler ticks, notifier delivery on
its own thread, alert transitions to InfluxDB. Built from `RulesSettings`; the clock is injected.

    service = RulesService.from_settings(config.rules, config.mqtt, clock, line_writer.write, sites=config.sites)
    service.start(); ...; service.stop()

Delivery never blocks evaluation: the engine only enqueues in the store; the delivery thread sends
(woken at once on enqueue, otherwise every second for retries). Alert transitions reach InfluxDB
the same way: `rules.annotations.AnnotationWriter` copies them from the store on its own thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from core.clock import Clock, FakeClock
from core.contract import Kind, Reading
from core.decode import StatusChange
from core.influxql import InfluxError
from core.known_devices import known_devices_for, load_sites
from core.settings.base import read_secret
from core.settings.mqtt import MqttSettings
from core.settings.rules import ReceiverSettings, RulesSettings
from core.settings.sites import SitesSettings
from rules.annotations import AnnotationWriter
from rules.broker_watch import BrokerWatch
from rules.engine import WATCHDOG, Engine
from rules.history import InfluxHistory, Span, history_needed
from rules.matchers import parse_matcher
from rules.model import RulePack, load_rule_files
from rules.mqtt import RulesSubscription
from rules.notify import (
    AlertmanagerNotifier,
    ChatNotifier,
    Delivery,
    EmailNotifier,
    Notifier,
    WebhookNotifier,
)
from rules.replay import DeviceTimeDriver
from rules.route import Escalation, Route
from rules.store import AlertStore

log = logging.getLogger("facmon.rules")
# APScheduler logs every run of every job at INFO ("Running job ...", "executed successfully"): two
# lines per tick would bury the engine's own log. Its warnings (missed runs) and errors still show.
logging.getLogger("apscheduler").setLevel(logging.WARNING)
NO_SITES = SitesSettings()
DEVICE_CLOCK = "device_clock"
"""Store meta key: where device time stood (`rules.clock: device`), to resume there after a restart."""
DEFAULT_RULE_FILES = (Path(__file__).resolve().parent / "packs" / "park.yaml",)


def build_notifiers(receivers: Sequence[ReceiverSettings]) -> tuple[dict[str, Notifier], dict[str, list[str]]]:
    """Notifiers by outbox target (`<receiver>:<integration><n>`), and each receiver's targets."""
    targets: dict[str, Notifier] = {}
    by_receiver: dict[str, list[str]] = {}
    for receiver in receivers:
        names = by_receiver.setdefault(receiver.name, [])

        def add(integration: str, notifier_of: Callable[[str], Notifier], names: list[str] = names,
                receiver: ReceiverSettings = receiver) -> None:
            target = f"{receiver.name}:{integration}{len(names)}"
            targets[target] = notifier_of(target)
            names.append(target)

        for url in receiver.webhooks:
            add("webhook", lambda t, url=url: WebhookNotifier(t, url))
        for url in receiver.alertmanager_urls:
            add("alertmanager", lambda t, url=url: AlertmanagerNotifier(t, url))
        for chat in receiver.chat:
            add("chat", lambda t, chat=chat: ChatNotifier(t, chat.url, chat.language, chat.field))
        if receiver.email is not None:
            mail = receiver.email
            password = read_secret(mail.password, mail.password_file, f"rules.receivers.{receiver.name}.email.password")
            add("email", lambda t, m=mail, p=password: EmailNotifier(t, m.host, m.port, m.from_addr, tuple(m.to),
                                                                     m.language, m.starttls, m.username, p))
    return targets, by_receiver


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
    def __init__(self, engine: Engine, delivery: Delivery, clock: Clock, tick_every_s: float | None,
                 subscription_factory: Callable[[Engine], RulesSubscription] | None,
                 annotations: AnnotationWriter | None = None, broker_watch: BrokerWatch | None = None) -> None:
        """`tick_every_s`: evaluation ticks on the wall clock; None when they come with the readings
        (device time, `rules.replay.DeviceTimeDriver`)."""
        self.engine = engine
        self.delivery = delivery
        self.annotations = annotations
        self.broker_watch = broker_watch
        self._clock = clock
        self._tick_every_s = tick_every_s
        self._subscription = subscription_factory(engine) if subscription_factory else None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self._delivery_thread = threading.Thread(target=self._deliver_loop, name="rules-delivery", daemon=True)

    @classmethod
    def from_settings(cls, settings: RulesSettings, mqtt: MqttSettings, clock: Clock,
                      write_lines: Callable[[list[str]], None] | None = None,
                      pack: RulePack | None = None, sites: SitesSettings = NO_SITES,
                      history: InfluxHistory | None = None) -> RulesService:
        """The service as `settings` describe it, watching the sites `sites` describes (none by
        default: no schedules, rooms or uplink roles, and any device may publish). `history`: where
        windows are refilled from at start (None: they start empty)."""
        pack = pack or load_rule_files(settings.rule_files or DEFAULT_RULE_FILES)
        described = load_sites(sites.files)
        known = known_devices_for(sites, described.values())
        store = AlertStore(settings.store_path, clock)
        annotations = AnnotationWriter(store, write_lines) if write_lines and settings.write_influx else None
        targets, by_receiver = build_notifiers(settings.receivers)
        holder: dict[str, RulesService] = {}
        resumed_at = store.meta(DEVICE_CLOCK) if settings.clock == "device" else None
        engine_clock: Clock = FakeClock(float(resumed_at or 0.0)) if settings.clock == "device" else clock
        engine = Engine(pack, described, store, build_routes(settings), engine_clock, by_receiver,
                        reconnect_grace_s=settings.reconnect_grace_s, external_url=settings.external_url,
                        watchdog=settings.heartbeat.receiver is not None,
                        on_transitions=annotations.wake if annotations is not None else None,
                        on_enqueued=lambda: holder["service"]._wake.set() if "service" in holder else None)
        if history is not None and (settings.clock == "system" or resumed_at is not None):
            _refill(engine, history, history_needed(pack, settings.refill_max_s), engine_clock.now())
        # Notifications are delivered on the wall clock in both modes: retries must come due even
        # when a replay pauses.
        delivery = Delivery(store, targets, settings.retry_min_s, settings.retry_max_s, settings.max_attempts)
        on_message: Callable[[Reading | StatusChange], None] = engine.handle
        on_connection: Callable[[bool], None] = engine.source_connected
        tick_every_s: float | None = settings.evaluation_interval_s
        if isinstance(engine_clock, FakeClock):
            driver = DeviceTimeDriver(engine, engine_clock, settings.evaluation_interval_s,
                                      started=resumed_at is not None,
                                      on_moved=lambda t: store.set_meta(DEVICE_CLOCK, repr(t)))
            on_message, on_connection, tick_every_s = driver.handle, driver.source_connected, None

        watch_settings = settings.broker_watch
        watch = BrokerWatch(watch_settings.queue_limit, watch_settings.warn_fraction, watch_settings.warn_left_s,
                            watch_settings.drop_hold_s) if watch_settings.enabled else None

        def on_counter(topic: str, payload: bytes) -> None:
            assert watch is not None
            engine.observe(watch.on_counter(topic, payload, clock.now()))

        def subscription(engine: Engine) -> RulesSubscription:
            return RulesSubscription(mqtt, settings.mqtt_client_id, clock, on_message, on_connection, known=known,
                                     session_expiry_s=settings.mqtt_session_expiry_s,
                                     on_broker_counter=on_counter if watch is not None else None)

        service = cls(engine, delivery, clock, tick_every_s, subscription, annotations, watch)
        holder["service"] = service
        return service

    def start(self) -> None:
        if self._tick_every_s is not None:
            self._scheduler.add_job(self._tick, "interval", seconds=self._tick_every_s, id="rules-tick",
                                    max_instances=1, coalesce=True)
        self._scheduler.start()
        self._delivery_thread.start()
        if self.annotations is not None:
            self.annotations.start()
        if self._subscription is not None:
            self._subscription.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._subscription is not None:
            self._subscription.stop()
        self._scheduler.shutdown(wait=True)
        self._delivery_thread.join(timeout=30)
        if self.annotations is not None:
            self.annotations.stop()

    def _tick(self) -> None:
        try:
            self.engine.tick()
            if self.broker_watch is not None:
                self.engine.observe(self.broker_watch.on_tick(self._clock.now()))
        except Exception:
            # A scheduler job that raises is only logged by APScheduler; say which stage failed.
            log.exception("rules tick failed; the next tick retries")

    def _deliver_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            self.delivery.deliver_due(self._clock.now())
            self._wake.wait(timeout=1.0)
        self.delivery.deliver_due(self._clock.now())


def _refill(engine: Engine, history: InfluxHistory, spans: Mapping[Kind, Span], now: float) -> None:
    if not spans:
        return
    try:
        readings = history.readings(spans, now)
    except InfluxError as err:
        log.warning("cannot refill the rules' windows from InfluxDB; they start empty (aggregate and run-out "
                    "alerts may come late)", extra={"error": str(err)})
        return
    log.info("rules' windows refilled from InfluxDB", extra={"readings": engine.refill(readings),
                                                           "kinds": ",".join(sorted(k.value for k in spans))})
