"""The engine: evaluator → lifecycle → muters → router → store outbox, on one clock, thread-safe.

    engine = Engine(pack, sites, store, routes, clock, targets_of)
    engine.handle(message)            # a decoded Reading or StatusChange (from any thread)
    engine.source_connected(bool)     # the broker connection went down / came back
    engine.tick()                     # clock tick (APScheduler in production, FakeClock in tests)

Every state change is written to the store before anything is routed, and every notification is
enqueued in the store together with its incident's new state, so a restart (`Engine(...)` on the
same store) continues exactly where the last process stopped: no duplicate notification, no
forgotten resolve, silence or ack. Acks and silences written by the API are re-read on every tick
when the database changed (`AlertStore.data_version`).

A site or device retired by `facmon sites retire` / `facmon devices forget` (rules/retire.py) is read
from the store the same way: its alerts as the store ended them, and nothing it would fire, until the
device announces itself `online` again. A cleared retained status (`StatusCleared`: what those
commands and the end of a test run publish) retires a device no site file describes here at once,
and its site with its last device; a described device stays judged (its site file says it exists).

`on_transitions()` (optional) is called after transitions were stored: the InfluxDB annotation
writer (`rules.annotations`) copies them from the store on its own thread, so InfluxDB never blocks
evaluation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence

from core.clock import Clock
from core.contract import DeviceKey, Reading
from core.decode import StatusChange, StatusCleared
from core.site import Site, iter_devices
from rules.alerts import Alert, AlertState, Retirement, fingerprint
from rules.evaluate import MONITORING_DEGRADED, Evaluator, Observation
from rules.lifecycle import ACTIVE, AlertLifecycle, Change, Timing
from rules.model import RulePack
from rules.notify import payload_of
from rules.route import Plan, Route, Router
from rules.silences import SilenceMuter
from rules.store import AlertStore

log = logging.getLogger("facmon.rules.engine")
WATCHDOG = "Watchdog"
STATUS_CLEARED = "its retained status was cleared: the device is gone"
STATUS_CLEARED_BY = "facmon-rules"


class Engine:
    def __init__(self, pack: RulePack, sites: Mapping[str, Site], store: AlertStore, routes: Sequence[Route],
                 clock: Clock, targets_of: Mapping[str, Sequence[str]], *, reconnect_grace_s: float = 30.0,
                 external_url: str = "http://localhost:8080", watchdog: bool = False,
                 on_transitions: Callable[[], None] | None = None,
                 on_enqueued: Callable[[], None] | None = None) -> None:
        """`targets_of`: receiver name → its outbox targets (`<receiver>:<integration>`), one per notifier."""
        self._clock = clock
        self._store = store
        self._lock = threading.RLock()
        now = clock.now()
        timings = {r.name: Timing(r.for_s, r.keep_firing_for_s) for r in pack.rules}
        self._lifecycle = AlertLifecycle(timings)
        self._lifecycle.load(store.all_alerts())
        self._evaluator = Evaluator(pack, sites, now, reconnect_grace_s)
        # A firing alert whose keep_firing_for timer runs had its condition false: not assumed true.
        self._evaluator.assume_active(a.fingerprint for a in self._lifecycle.alerts()
                                      if a.state in (AlertState.PENDING, AlertState.FIRING)
                                      and a.keep_firing_since is None)
        self._router = Router(routes, pack.inhibit_rules)
        self._targets_of = {k: tuple(v) for k, v in targets_of.items()}
        self._external_url = external_url.rstrip("/")
        self._groups = {g.key: g for g in store.groups()}
        self._silences = SilenceMuter(store.list_silences(include_expired=False))
        self._data_version: tuple[int, int] = (-1, -1)
        self._described = frozenset((site.id, spec.id) for site in sites.values() for spec in iter_devices(site))
        self._retired: set[tuple[str, str | None]] = set()
        """(site, device) retired, (site, None) for a whole site (rules/retire.py)."""
        self._retired_cursor = 0
        self._returned: set[tuple[str, str]] = set()
        """(site, device) of retired devices that announced themselves `online` again."""
        self._watchdog = watchdog
        self._on_transitions = on_transitions
        self._on_enqueued = on_enqueued
        self._refresh_from_store()

    # ---- inputs ---------------------------------------------------------------------------------

    def handle(self, message: Reading | StatusChange | StatusCleared) -> None:
        with self._lock:
            now = self._clock.now()
            if type(message) is StatusCleared:
                self._status_cleared(message.device, now)
                return
            if self._retired and type(message) is StatusChange and message.online:
                self._came_back(message.device.site, message.device.device)
            if isinstance(message, Reading):
                observations = self._evaluator.on_reading(message, now)
            else:
                observations = self._evaluator.on_status(message, now)
            if observations:
                self._apply(observations, now)

    def observe(self, observations: Sequence[Observation]) -> None:
        """Conditions judged outside the rules (the broker's counters, `rules.broker_watch`)."""
        if observations:
            with self._lock:
                self._apply(observations, self._clock.now())

    def refill(self, history: Iterable[Reading]) -> int:
        """Readings from before a restart (oldest first) into the windows; see `Evaluator.refill`."""
        with self._lock:
            return self._evaluator.refill(history)

    def source_connected(self, connected: bool) -> None:
        with self._lock:
            now = self._clock.now()
            self._apply(self._evaluator.set_source_connected(connected, now), now, force_route=True)

    def tick(self) -> None:
        with self._lock:
            now = self._clock.now()
            self._refresh_from_store()
            observations = self._evaluator.on_tick(now)
            if self._watchdog:
                observations.append(self._watchdog_observation(now))
            changes = self._lifecycle.tick(now)
            self._apply(observations, now, changes, force_route=True)

    # ---- queries (for the command line and tests) -----------------------------------------------

    def alerts(self) -> list[Alert]:
        with self._lock:
            return self._lifecycle.alerts()

    def alert_by_rule(self, rule: str) -> list[Alert]:
        return [a for a in self.alerts() if a.rule == rule]

    def rules(self) -> tuple:
        """The rules this engine evaluates (`rules.model.Rule`)."""
        return self._evaluator.rules

    @property
    def degraded(self) -> bool:
        return self._evaluator.degraded

    # ---- internals ------------------------------------------------------------------------------

    def _refresh_from_store(self) -> None:
        version = self._store.data_version()
        if version == self._data_version:
            return
        self._data_version = version
        self._silences = SilenceMuter(self._store.list_silences(include_expired=False))
        self._take_retirements()
        acks = self._store.acks()
        for alert in self._lifecycle.alerts():
            by, at, comment = acks.get(alert.fingerprint, (None, None, ""))
            self._lifecycle.set_ack(alert.fingerprint, by, at, comment)

    def _take_retirements(self) -> None:
        """Retirements recorded since the last look: their alerts as the store ended them (or ended here,
        if this engine saved one again in between)."""
        for row_id, retirement in self._store.retirements(self._retired_cursor):
            self._retired_cursor = row_id
            self._retire(retirement)
            for alert in self._lifecycle.alerts():
                if alert.state not in ACTIVE or not retirement.covers(alert.labels):
                    continue
                stored = self._store.alert(alert.fingerprint)
                if stored is not None and stored.alert.state not in ACTIVE:
                    self._lifecycle.adopt(stored.alert)
                elif (change := self._lifecycle.retire(alert.fingerprint, retirement.at, retirement.reason)):
                    self._store.save_alert(change.alert, change.transition)

    def _came_back(self, site: str, device: str) -> None:
        """A device announced itself online: if a retirement covers it, it is judged again. (Only those:
        every device's `online` would grow the set, and `_gone` scans it.)"""
        if (site, device) in self._retired or (site, None) in self._retired:
            self._returned.add((site, device))

    def _retire(self, retirement: Retirement) -> None:
        self._retired.add((retirement.site, retirement.device))
        self._returned = {key for key in self._returned if not retirement.covers_device(*key)}

    def _status_cleared(self, device: DeviceKey, now: float) -> None:
        """A cleared retained status: see the module docstring."""
        if (device.site, device.device) in self._described:
            return
        retirements = [Retirement(device.site, device.device, now, STATUS_CLEARED_BY, STATUS_CLEARED)]
        self._retire(retirements[0])
        if all(self._gone({"site": key.site, "device": key.device})
               for key in self._evaluator.devices_of_site(device.site)):
            retirements.append(Retirement(device.site, None, now, STATUS_CLEARED_BY, STATUS_CLEARED))
            self._retire(retirements[1])
        changes = [change for retirement in retirements
                   for change in self._lifecycle.retire_where(retirement.covers, now, retirement.reason)]
        if changes:
            self._apply((), now, changes)

    def _gone(self, labels: Mapping[str, str]) -> bool:
        """Whether `labels` belong to a retired site or device that has not come back."""
        site, device = labels.get("site", ""), labels.get("device")
        if device is None:
            return (site, None) in self._retired and not any(s == site for s, _ in self._returned)
        if (site, device) in self._returned:
            return False
        return (site, device) in self._retired or (site, None) in self._retired

    def _apply(self, observations: Iterable[Observation], now: float, changes: Iterable[Change] = (),
               force_route: bool = False) -> None:
        if self._retired:  # what a gone device "does" (its silence, above all) is not an alert
            observations = [obs for obs in observations if not (obs.active and self._gone(obs.labels))]
        all_changes = list(changes)
        for obs in observations:
            all_changes.extend(self._lifecycle.observe(obs))
        for change in all_changes:
            self._store.save_alert(change.alert, change.transition)
        if self._on_transitions is not None and any(c.transition is not None for c in all_changes):
            self._on_transitions()
        if all_changes or force_route:
            self._route(now)

    def _route(self, now: float) -> None:
        # Acks and silences the API wrote since the last tick apply to this routing too: an alert that
        # fires from a reading right after a silence was made must already be muted by it.
        self._refresh_from_store()
        alerts = self._lifecycle.alerts()
        muted = self._router.mute(alerts, self._silences, now)
        for alert in alerts:
            updated = self._lifecycle.set_muted(alert.fingerprint, muted.get(alert.fingerprint, ()))
            if updated is not None:
                self._store.save_alert(updated)
        plan = self._router.plan(self._lifecycle.alerts(), muted, self._groups, now)
        self._persist(plan, now)

    def _persist(self, plan: Plan, now: float) -> None:
        saved_with_notification: set[str] = set()
        enqueued = 0
        for notification in plan.notifications:
            group = next((g for g in plan.groups if g.key == notification.group_key), None)
            payload = payload_of(notification, self._external_url)
            fingerprints = [a.fingerprint for a in notification.alerts]
            targets = self._targets_of.get(notification.receiver)
            if not targets:
                log.warning("no integrations for receiver; notification dropped",
                            extra={"receiver": notification.receiver, "group": notification.group_key})
                targets = ()
            for index, target in enumerate(targets):
                # The group's new state goes with the first row: decided once, enqueued atomically.
                self._store.enqueue_notification(notification.group_key, target, fingerprints, payload, now,
                                                 group if index == 0 else None)
                enqueued += 1
            if group is not None and not targets:
                self._store.save_group(group)
            saved_with_notification.add(notification.group_key)
        for group in plan.groups:
            if group.key not in saved_with_notification:
                self._store.save_group(group)
            self._groups[group.key] = group
        for key in plan.deleted:
            self._store.delete_group(key)
            self._groups.pop(key, None)
        if enqueued and self._on_enqueued is not None:
            self._on_enqueued()

    def _watchdog_observation(self, now: float) -> Observation:
        labels = {"alertname": WATCHDOG, "instance": "facmon-rules", "severity": "none"}
        annotations = {"summary": "facmon's rules engine is alive (dead man's switch: alert when this stops)"}
        return Observation(WATCHDOG, fingerprint(labels), labels, annotations, True, None, now)


__all__ = ["MONITORING_DEGRADED", "WATCHDOG", "Engine"]
