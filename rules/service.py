"""`facmon rules run`: the engine with its edges — MQTT in, APScheduler ticks, notifier delivery on
its own thread, alert transitions to InfluxDB. Built from `RulesSettings`; the clock is injected.

    service = RulesService.from_settings(config.rules, config.mqtt, clock, line_writer.write, sites=config.sites)
    service.start(); ...; service.stop()

Delivery never blocks evaluation: the engine only enqueues in the store; one delivery thread per
integration sends (rules/workers.py; woken at once on enqueue, otherwise every second for retries),
so a slow channel holds up no other. Alert transitions reach InfluxDB the same way:
`rules.annotations.AnnotationWriter` copies them from the store on its own thread. Around it: the
notifiers `rules.channels.build_notifiers` builds, the readers of acknowledgements from the phone,
the heartbeat to an off-site watchdog (rules/heartbeat.py), and /metrics + /readyz (rules/http.py,
`start_http`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from core.clock import Clock, FakeClock
from core.contract import Kind, Reading
from core.decode import StatusChange, StatusCleared
from core.influxql import InfluxError
from core.known_devices import known_devices_for, load_sites
from core.settings.base import read_secret
from core.settings.mqtt import MqttSettings
from core.settings.rules import RulesSettings
from core.settings.sites import SitesSettings
from core.site import Site
from rules.annotations import AnnotationWriter
from rules.broker_watch import BrokerWatch
from rules.channels import Channels, build_notifiers, channels_down_payload
from rules.engine import WATCHDOG, Engine
from rules.heartbeat import HeartbeatSender
from rules.history import InfluxHistory, Span, history_needed
from rules.http import EngineHealth, RulesHttp
from rules.matchers import parse_matcher
from rules.model import SEVERITIES, RulePack, known_label_names, load_rule_files
from rules.mqtt import RulesSubscription
from rules.notify import Delivery, receivers_all_down
from rules.replay import CatchUpClock, DeviceTimeDriver
from rules.route import Escalation, Route
from rules.store import AlertStore
from rules.workers import AckListeners, DeliveryWorkers

log = logging.getLogger("facmon.rules")
# APScheduler logs every run of every job at INFO ("Running job ...", "executed successfully"): two
# lines per tick would bury the engine's own log. Its warnings (missed runs) and errors still show.
logging.getLogger("apscheduler").setLevel(logging.WARNING)
NO_SITES = SitesSettings()
DEVICE_CLOCK = "device_clock"
"""Store meta key: where device time stood (`rules.clock: device`), to resume there after a restart."""
DEFAULT_RULE_FILES = (Path(__file__).resolve().parent / "packs" / "park.yaml",)


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


def route_problems(settings: RulesSettings, pack: RulePack) -> list[str]:
    """Routes no alert of `pack` can match because of a misspelt label or severity (`severity=critcal`
    pages nobody), as `rules.routes.N.match.M: what is wrong`."""
    labels = known_label_names(pack.rules)
    listed = ", ".join(sorted(labels))
    problems = []
    for r_index, route in enumerate(settings.routes):
        for m_index, text in enumerate(route.match):
            matcher = parse_matcher(text)
            where = f"rules.routes.{r_index}.match.{m_index} ({text!r}, receiver {route.receiver})"
            if matcher.name not in labels:
                problems.append(f"{where}: no alert has a label {matcher.name!r}; labels are {listed}")
            elif matcher.name == "severity" and matcher.op == "=" and matcher.value not in SEVERITIES:
                problems.append(f"{where}: unknown severity {matcher.value!r}; use one of {', '.join(SEVERITIES)}")
        for g_index, name in enumerate(route.group_by):
            if name not in labels:
                problems.append(f"rules.routes.{r_index}.group_by.{g_index} ({name!r}): no alert has that label; "
                                f"labels are {listed}")
    return problems


class RulesService:
    def __init__(self, engine: Engine, delivery: Delivery, clock: Clock, tick_every_s: float | None,
                 subscription_factory: Callable[[Engine], RulesSubscription] | None,
                 annotations: AnnotationWriter | None = None, broker_watch: BrokerWatch | None = None,
                 store: AlertStore | None = None, channels: Channels | None = None,
                 heartbeat: Callable[[RulesService], HeartbeatSender] | None = None,
                 channels_down_after_s: float = 600.0, external_url: str = "",
                 catch_up: CatchUpClock | None = None) -> None:
        """`tick_every_s`: evaluation ticks on the wall clock; None when they come with the readings
        (device time, `rules.replay.DeviceTimeDriver`). `catch_up`: the ticks wait until it is live,
        and then keep the store's device-time mark at the wall clock (a restart resumes there)."""
        self.engine = engine
        self._external_url = external_url
        self.delivery = delivery
        self.annotations = annotations
        self.broker_watch = broker_watch
        self._clock = clock
        self._tick_every_s = tick_every_s
        self.messages_handled = 0
        """Readings and status messages the subscription handed to the engine (for /metrics)."""
        self._subscription = subscription_factory(engine) if subscription_factory else None
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self._store = store
        self._channels = channels
        self._channels_down_after_s = channels_down_after_s
        self._reported_down: set[str] = set()
        self.workers = DeliveryWorkers(delivery, clock, on_sweep=self._check_channels)
        self.acks = AckListeners(store, channels.targets, clock) if store is not None and channels else None
        self.heartbeat = heartbeat(self) if heartbeat is not None else None
        self.last_tick_at: float | None = None
        self._catch_up = catch_up
        self._http: RulesHttp | None = None

    def health(self) -> EngineHealth:
        """What /metrics and /readyz report, and what decides whether a heartbeat goes out."""
        now = self._clock.now()
        lag = None if self.last_tick_at is None else now - self.last_tick_at
        connected = self._subscription.connected if self._subscription is not None else True
        subscribed = self._subscription.subscribed if self._subscription is not None else True
        reasons = []
        # On device time (a replay) ticks follow the readings, so only the wall-clock mode has a lag to judge.
        limit_s = 3 * self._tick_every_s + 5 if self._tick_every_s is not None and self._ticking() else None
        if limit_s is not None and (lag is None or lag > limit_s):
            reasons.append(f"not evaluating: no rules tick in the last {limit_s:g} s" if lag is not None
                           else "not evaluating yet")
        if not subscribed:
            reasons.append("not subscribed to the MQTT broker (see mqtt.* and the broker's log)")
        counts = self.delivery.counts
        return EngineHealth(lag, connected, subscribed, self.messages_handled,
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
                      pack: RulePack | None = None, sites: SitesSettings = NO_SITES,
                      history: InfluxHistory | None = None) -> RulesService:
        """The service as `settings` describe it, watching the sites `sites` describes (none by
        default: no schedules, rooms or uplink roles, and any device may publish). `history`: where
        windows are refilled from at start (None: they start empty)."""
        pack = pack or load_rule_files(settings.rule_files or DEFAULT_RULE_FILES)
        for problem in route_problems(settings, pack):  # the engine still runs: its feed and other routes work
            log.error("a route can never match; fix the configuration", extra={"problem": problem})
        described = load_sites(sites.files)
        known = known_devices_for(sites, described.values())
        store = AlertStore(settings.store_path, clock)
        annotations = AnnotationWriter(store, write_lines) if write_lines and settings.write_influx else None
        zones = {site_id: site.tz for site_id, site in described.items()}
        channels = build_notifiers(settings.receivers, store, clock, zones)
        holder: dict[str, RulesService] = {}
        on_device_time = settings.clock in ("device", "catch_up")
        resumed_at = store.meta(DEVICE_CLOCK) if on_device_time else None
        device_clock = FakeClock(float(resumed_at or 0.0))
        catch_up = CatchUpClock(device_clock, clock) if settings.clock == "catch_up" else None
        engine_clock: Clock = catch_up or (device_clock if on_device_time else clock)
        engine = Engine(pack, described, store, build_routes(settings), engine_clock, channels.by_receiver,
                        reconnect_grace_s=settings.reconnect_grace_s, external_url=settings.external_url,
                        watchdog=settings.heartbeat.receiver is not None,
                        on_transitions=annotations.wake if annotations is not None else None,
                        on_enqueued=lambda: holder["service"].workers.wake() if "service" in holder else None)
        if history is not None and (settings.clock == "system" or resumed_at is not None):
            _refill(engine, history, history_needed(pack, settings.refill_max_s), engine_clock.now())
        # Notifications are delivered on the wall clock in both modes: retries must come due even
        # when a replay pauses.
        offline_rules = set(channels.offline_rules.values())
        delivery = Delivery(store, channels.targets, settings.retry_min_s, settings.retry_max_s, settings.max_attempts,
                            failover=channels.failover,
                            site_offline=lambda: any(store.active_alerts(state="firing", rule=rule)
                                                     for rule in offline_rules))
        on_message: Callable[[Reading | StatusChange | StatusCleared], None] = engine.handle
        on_connection: Callable[[bool], None] = engine.source_connected
        tick_every_s: float | None = settings.evaluation_interval_s
        if on_device_time:
            driver = DeviceTimeDriver(engine, device_clock, settings.evaluation_interval_s,
                                      started=resumed_at is not None, catch_up=catch_up,
                                      on_moved=lambda t: store.set_meta(DEVICE_CLOCK, repr(t)))
            on_message, on_connection = driver.handle, driver.source_connected
            tick_every_s = tick_every_s if catch_up is not None else None

        watch_settings = settings.broker_watch
        watch = BrokerWatch(watch_settings.queue_limit, watch_settings.warn_fraction, watch_settings.warn_left_s,
                            watch_settings.drop_hold_s) if watch_settings.enabled else None

        def on_counter(topic: str, payload: bytes) -> None:
            assert watch is not None
            engine.observe(watch.on_counter(topic, payload, clock.now()))

        def handle(message: Reading | StatusChange | StatusCleared) -> None:  # on paho's thread, one at a time
            holder["service"].messages_handled += 1
            on_message(message)

        def subscription(engine: Engine) -> RulesSubscription:
            return RulesSubscription(mqtt, settings.mqtt_client_id, clock, handle, on_connection, known=known,
                                     session_expiry_s=settings.mqtt_session_expiry_s,
                                     on_broker_counter=on_counter if watch is not None else None)

        heartbeat = _heartbeat_of(settings, described, clock, store)
        service = cls(engine, delivery, clock, tick_every_s, subscription, annotations, watch, store, channels,
                      heartbeat, settings.channels_down_after_s, settings.external_url, catch_up=catch_up)
        holder["service"] = service
        return service

    def start(self) -> None:
        if self._tick_every_s is not None:
            self._scheduler.add_job(self._tick, "interval", seconds=self._tick_every_s, id="rules-tick",
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

    def _ticking(self) -> bool:
        """Whether the wall-clock ticks evaluate (not while a catch-up is still on device time)."""
        return self._catch_up is None or self._catch_up.live

    def _tick(self) -> None:
        if not self._ticking():
            return
        try:
            self.engine.tick()
            self.last_tick_at = self._clock.now()
            if self._catch_up is not None and self._store is not None:
                self._store.set_meta(DEVICE_CLOCK, repr(self.last_tick_at))
            if self.broker_watch is not None:
                self.engine.observe(self.broker_watch.on_tick(self._clock.now()))
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
