"""Rule evaluation: readings, status changes and clock ticks in, condition changes out. Pure: no
I/O, no clock of its own (every call passes `now`, epoch seconds of the injected clock).

    ev = Evaluator(pack, sites, now)        # sites: site id → core.site.Site (may be empty)
    ev.set_source_connected(True, now)      # absence is held until the source first connects
    ev.on_reading(reading, now)  -> list[Observation]   stream rules (threshold, aggregate), composites
    ev.on_status(change, now)    -> list[Observation]   LWT `offline` → absence rules
    ev.on_tick(now)              -> list[Observation]   absence, runout, schedules, context changes
    ev.set_source_connected(connected, now) -> list[Observation]   MonitoringDegraded, absence hold

An `Observation` says "this rule instance's condition is now true/false" (with labels, annotations
and the value); `rules.lifecycle.AlertLifecycle` turns those into pending/firing/resolved.

Indexing: a reading meets only the rules that can match its device. The first reading of a device
scans the rules once (kind, then matchers on site/device/room/isp); the result is cached per device,
so the cost of a reading grows with the number of rules that match it, not with all rules.

Absence is judged on facmon's own clock (when readings *arrive*), windows on device time (`ts`).
While the source (broker connection) is down, and for `reconnect_grace_s` after it returns, absence
is held and one `MonitoringDegraded` condition stands in for it, so a reconnect never pages every
device as silent.
"""

from __future__ import annotations

import heapq
import itertools
import math
import operator
import string
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from core.contract import LABELS, DeviceKey, Kind, Reading
from core.decode import StatusChange
from core.site import Site, described_labels, iter_devices, quiet_limits
from rules.alerts import fingerprint
from rules.matchers import matches_all
from rules.model import Rule, RulePack

MONITORING_DEGRADED = "MonitoringDegraded"
ENGINE_INSTANCE = "facmon-rules"

_OPS: Mapping[str, Callable[[object, object], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}


@dataclass(frozen=True, slots=True)
class Observation:
    """The condition of one rule instance as of `at`: `active` true or false, with what to show."""

    rule: str
    fingerprint: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    active: bool
    value: float | None
    at: float


@dataclass(slots=True)
class _Instance:
    """Evaluation state of one rule on one device (or site)."""

    fingerprint: str
    identity: dict[str, str]
    active: bool = False
    value: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    window: deque | None = None
    refilled_until: float | None = None
    """Device time of the newest reading refilled from before a restart; a live reading at or before
    it is already in the window (the broker redelivers what the collector also stored)."""


_formatter = string.Formatter()


def render(template: str, values: Mapping[str, object]) -> str:
    """`str.format` that never fails: unknown fields stay as written, a bad format shows the raw value."""
    out = []
    for literal, name, spec, conversion in _formatter.parse(template):
        out.append(literal)
        if name is None:
            continue
        value = values.get(name)
        if value is None:
            out.append("{" + name + "}" if name not in values else "–")
            continue
        try:
            out.append(format(_formatter.convert_field(value, conversion), spec or ""))
        except (ValueError, TypeError):
            out.append(str(value))
    return "".join(out)


class Evaluator:
    def __init__(self, pack: RulePack, sites: Mapping[str, Site], now: float,
                 reconnect_grace_s: float = 30.0) -> None:
        self._rules: tuple[Rule, ...] = pack.rules
        self._sites = dict(sites)
        self._quiet = quiet_limits(self._sites.values())
        """Devices whose site file says how long they are quiet when healthy (`max_quiet`)."""
        self._grace_s = reconnect_grace_s
        self._by_kind: dict[Kind | None, list[int]] = {}
        for index, rule in enumerate(self._rules):
            kinds = ({t.kind for t in rule.condition.composite.terms} if rule.condition.composite is not None
                     else {rule.kind})
            for kind in kinds:
                self._by_kind.setdefault(kind, []).append(index)
        self._candidates: dict[DeviceKey, tuple[int, ...]] = {}
        self._by_device: dict[tuple[Kind | None, str], list[int]] = {}
        self._unpinned: dict[Kind | None, list[int]] = {}
        for kind, indices in self._by_kind.items():
            for index in indices:
                rule = self._rules[index]
                pinned = next((m.value for m in rule.match if m.name == "device" and m.is_equality), None)
                if pinned is not None and rule.condition.composite is None and kind is not None:
                    self._by_device.setdefault((kind, pinned), []).append(index)
                else:
                    self._unpinned.setdefault(kind, []).append(index)
        self._instances: dict[tuple[int, object], _Instance] = {}
        self._latest: dict[DeviceKey, Reading] = {}
        self._site_kind_keys: dict[tuple[str, Kind], list[DeviceKey]] = {}
        self._site_keys: dict[str, list[DeviceKey]] = {}
        self._term_truths: dict[tuple[int, int, DeviceKey], bool | None] = {}
        """Per composite term and device: does the term hold for it (None: the term does not select it)."""
        self._term_counts: dict[tuple[int, int, str], list[int]] = {}
        """Per composite term and site: [devices selected, devices for which it holds]."""
        self._instances_of: dict[tuple[int, str], list[DeviceKey | str]] = {}
        """Per rule and site, the scopes it has instances for (what a tick looks at again)."""
        self._context_seen: dict[tuple[int, str], object] = {}
        """Per context rule and site, the schedule and occupancy its instances were last judged in."""
        self._device_absence = [(i, r) for i, r in enumerate(self._rules)
                                if r.condition.absence is not None and r.condition.absence.scope == "device"]
        self._absence_due: dict[int, list[tuple[float, int, DeviceKey]]] = {i: [] for i, _ in self._device_absence}
        """Per device-scope absence rule, a heap of (when to look again, tie-breaker, device): a tick
        judges the devices whose silence may have run out, not every device."""
        self._absence_order = itertools.count()
        self._new_keys: list[DeviceKey] = []
        self._absence_all_due = False
        self._roles: dict[str, dict[str, str]] = {}
        self._occupied: dict[str, set[str]] = {}
        self._term_due: dict[tuple[int, int, str], float] = {}
        """Per composite term counting absent devices and site: when the first of its devices still
        heard from can fall silent for long enough; a tick judges the term again from then on."""
        self._absence_terms: dict[Kind, list[tuple[int, int]]] = {}
        for index, rule in enumerate(self._rules):
            if rule.condition.composite is not None:
                for ti, term in enumerate(rule.condition.composite.terms):
                    if term.absent_counts:
                        self._absence_terms.setdefault(term.kind, []).append((index, ti))
        """Per site, the occupancy sensors whose latest reading says occupied."""
        """Every device heard of (or described), by site and kind and by site: site-wide conditions
        (composites, site absence) look at their site's devices only, so a reading's cost does not
        grow with the fleet (issue: 100 sites x 50 devices)."""
        self._last_seen: dict[DeviceKey, float] = {}
        self._online: dict[DeviceKey, bool] = {}
        self._device_labels: dict[DeviceKey, dict[str, str]] = {}
        # Until the source says it is connected, absence is held (nothing was heard yet, and that is
        # not the devices' fault); MonitoringDegraded is raised only when a connection is *lost*.
        self._connected = False
        self._hold_absence_until = now
        self._reconnected_at = now  # a fresh start is like a reconnect: devices get a full window
        self._assumed_active: set[str] = set()
        self._site_memo: dict[tuple[object, ...], object] = {}
        self._degraded_fp = fingerprint({"alertname": MONITORING_DEGRADED, "instance": ENGINE_INSTANCE})
        self._degraded_active = False
        for site in self._sites.values():
            for device in iter_devices(site):
                key = DeviceKey(site.id, device.kind, device.id)
                self._see(key, now)
                self._device_labels[key] = {"site": site.id, "kind": device.kind.value, "device": device.id,
                                            **described_labels(device)}

    def assume_active(self, fingerprints: Iterable[str]) -> None:
        """Alerts that were active before a restart: their instances start active, so the first
        evaluation that finds them false resolves them (and one that finds them true changes nothing)."""
        self._assumed_active |= set(fingerprints)
        if self._degraded_fp in self._assumed_active:
            self._degraded_active = True  # resolved after the next (re)connect and its grace

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def refill(self, history: Iterable[Reading]) -> int:
        """Readings from before a restart (InfluxDB's copy), oldest first: aggregate windows and run-out
        fits take them in, and each device's latest reading is known again, as if the engine had never
        stopped. Nothing is evaluated (the alerts' states come from the store); absence still counts
        from the start (it is judged on arrival, which history cannot tell). Returns the readings used."""
        used = 0
        for reading in history:
            key = reading.device
            latest = self._latest.get(key)
            if latest is None or latest.ts_ms <= reading.ts_ms:
                self._remember(reading)
            candidates = self._candidates.get(key)
            if candidates is None:
                candidates = self._index_device(reading)
            t = reading.ts_ms / 1000.0
            for index in candidates:
                if self._fill_window(index, key, reading) is not None:
                    inst = self._instances[(index, key)]
                    inst.refilled_until = t if inst.refilled_until is None else max(inst.refilled_until, t)
            used += 1
        return used

    # ---- inputs ---------------------------------------------------------------------------------

    def on_reading(self, reading: Reading, now: float) -> list[Observation]:
        key = reading.device
        self._remember(reading)
        self._see(key, now)
        if not self._online.get(key, True):
            self._online[key] = True
        candidates = self._candidates.get(key)
        if candidates is None:
            candidates = self._index_device(reading)
        out: list[Observation] = []
        for index in candidates:
            rule = self._rules[index]
            cond = rule.condition
            if cond.threshold is not None:
                self._eval_threshold(index, rule, key, reading, now, out)
            elif cond.aggregate is not None:
                self._eval_aggregate(index, rule, key, reading, now, out)
            elif cond.runout is not None:
                self._fill_window(index, key, reading)
            elif cond.composite is not None:
                self._eval_composite(index, rule, key.site, now, out, key)
            elif cond.absence is not None:
                self._eval_absence_device(index, rule, key, now, out)
        return out

    def on_status(self, change: StatusChange, now: float) -> list[Observation]:
        key = change.device
        self._online[key] = change.online
        if key not in self._last_seen:
            self._see(key, now)
        for index, ti in self._absence_terms.get(key.kind, ()):  # offline counts as absent at once
            self._term_due[(index, ti, key.site)] = -math.inf
        self._device_labels.setdefault(key, {"site": key.site, "kind": key.kind.value, "device": key.device})
        out: list[Observation] = []
        for index in self._by_kind.get(None, ()) + self._by_kind.get(key.kind, []):
            rule = self._rules[index]
            if rule.condition.absence is not None and self._selects(rule, key):
                self._eval_absence_device(index, rule, key, now, out)
        return out

    def devices_of_site(self, site: str) -> tuple[DeviceKey, ...]:
        """Every device of `site` seen (or seeded from its site file) so far."""
        return tuple(self._site_keys.get(site, ()))

    def set_source_connected(self, connected: bool, now: float) -> list[Observation]:
        """The rules engine's own broker connection went down (False) or came back (True)."""
        out: list[Observation] = []
        if connected == self._connected:
            return out
        self._connected = connected
        self._term_due.clear()  # absence is held, or counts from now: every such term is judged again
        self._absence_all_due = True  # ... and so is every device's silence, on the next tick
        if not connected:
            if not self._degraded_active:
                self._degraded_active = True
                out.append(self._degraded_observation(True, now))
        else:
            # Readings queued by the broker arrive right after this; a device that does not
            # resume gets its full absence window from the reconnect, not from before the outage.
            self._hold_absence_until = now + self._grace_s
            self._reconnected_at = now
        return out

    @property
    def degraded(self) -> bool:
        return self._degraded_active

    def on_tick(self, now: float) -> list[Observation]:
        """What time alone changes: silences that ran out, run-out predictions, composites whose terms
        count absent devices, schedules and occupancy of context rules, the broker connection. The cost
        follows what is due, not the fleet: a tick does not look at every device."""
        out: list[Observation] = []
        if self._degraded_active and self._connected and now >= self._hold_absence_until:
            self._degraded_active = False
            out.append(self._degraded_observation(False, now))
        sites = sorted(set(self._sites) | set(self._site_keys))
        self._absence_tick(now, out)
        for index, rule in enumerate(self._rules):
            cond = rule.condition
            if cond.absence is not None:
                if cond.absence.scope == "site":
                    for site in sites:
                        self._eval_absence_site(index, rule, site, now, out)
            elif cond.runout is not None:
                for key in self._keys_of(index):
                    self._eval_runout(index, rule, key, now, out)
            elif cond.composite is not None:
                for site in sites:
                    self._eval_composite(index, rule, site, now, out, timed_only=True)
            elif rule.active_when != "always" or rule.context.load_shedding or rule.context.occupancy:
                for site in sites:
                    context = self._context_of(rule, site, now)
                    if self._context_seen.get((index, site), context) == context and (index, site) in \
                            self._context_seen:
                        continue  # same schedule and occupancy as last time: the readings judged them
                    self._context_seen[(index, site)] = context
                    for key in self._keys_of(index, site):
                        reading = self._latest.get(key)  # type: ignore[call-overload]
                        if reading is not None and cond.threshold is not None:
                            self._eval_threshold(index, rule, key, reading, now, out)  # type: ignore[arg-type]
        return out

    def _context_of(self, rule: Rule, site: str, now: float) -> object:
        """What a context rule's judgement depends on besides its readings, for one site, now."""
        allowed = rule.active_when == "always" or self._schedule_allows(rule, site, now)
        return allowed, tuple(sorted(self._context_labels(rule, site, now).items()))

    def _absence_tick(self, now: float, out: list[Observation]) -> None:
        if self._absence_all_due:
            self._absence_all_due = False
            for due in self._absence_due.values():
                due[:] = [(now, order, key) for _, order, key in due]
                heapq.heapify(due)
        if self._new_keys:
            for key in self._new_keys:  # judged at once (a restart's assumed alerts), then when due
                for index, rule in self._device_absence:
                    if self._selects(rule, key):
                        heapq.heappush(self._absence_due[index], (now, next(self._absence_order), key))
            self._new_keys.clear()
        for index, rule in self._device_absence:
            due = self._absence_due[index]
            after_s = rule.condition.absence.after_s  # type: ignore[union-attr]
            while due and due[0][0] <= now:
                _, _, key = heapq.heappop(due)
                self._eval_absence_device(index, rule, key, now, out)
                heapq.heappush(due, (self._absence_next_look(index, key, after_s, now), next(self._absence_order),
                                     key))

    def _absence_next_look(self, index: int, key: DeviceKey, after_s: float, now: float) -> float:
        """When a device's silence could next change the absence rule's answer without a message: its
        silence running out (from its last reading or the last reconnect, after any hold). An active
        instance, or one held while the broker is away, is looked at again `after_s` later; a reading
        or a status resolves or fires it meanwhile."""
        inst = self._instances.get((index, key))
        if not self._connected:
            return now + after_s  # held while the broker is away; the reconnect makes every device due
        if inst is not None and inst.active:
            look = now + after_s
        else:
            look = max(self._silence_ends(key, after_s, now), self._hold_absence_until, now + 1e-3)
        if now < self._hold_absence_until:
            # A hold ending changes the answer by itself: an instance kept through it is judged anew then.
            look = min(look, self._hold_absence_until)
        return look

    # ---- indexing -------------------------------------------------------------------------------

    def _index_device(self, reading: Reading) -> tuple[int, ...]:
        key = reading.device
        labels = {"site": key.site, "kind": key.kind.value, "device": key.device}
        for name in LABELS:
            value = reading.metrics.get(name)
            if isinstance(value, str):
                labels[name] = value
        self._device_labels[key] = labels
        # Rules pinned to one device by an equality matcher are looked up by that device; only the
        # others are scanned, so a new device costs O(unpinned rules), not O(all rules).
        pool = self._by_device.get((key.kind, key.device), []) + self._unpinned.get(key.kind, []) + \
            self._unpinned.get(None, [])
        indices = [i for i in pool
                   if self._rules[i].condition.composite is not None or matches_all(self._rules[i].match, labels)]
        result = tuple(sorted(indices))
        self._candidates[key] = result
        return result

    def _selects(self, rule: Rule, key: DeviceKey) -> bool:
        if rule.kind is not None and rule.kind is not key.kind:
            return False
        labels = self._device_labels.get(key) or {"site": key.site, "kind": key.kind.value, "device": key.device}
        return matches_all(rule.match, labels)

    def _keys_of(self, index: int, site: str | None = None) -> list[object]:
        if site is not None:
            return list(self._instances_of.get((index, site), ()))
        return [k for (i, _), keys in list(self._instances_of.items()) if i == index for k in keys]

    def _instance(self, index: int, scope: DeviceKey | str) -> _Instance:
        inst = self._instances.get((index, scope))
        if inst is None:
            rule = self._rules[index]
            if isinstance(scope, DeviceKey):
                identity = {"alertname": rule.alert_name, **self._device_labels.get(
                    scope, {"site": scope.site, "kind": scope.kind.value, "device": scope.device})}
            else:
                identity = {"alertname": rule.alert_name, "site": scope}
            fp = fingerprint({**identity, "__rule__": rule.name})
            inst = _Instance(fp, identity, active=fp in self._assumed_active)
            if inst.active:
                inst.labels = identity
            self._instances[(index, scope)] = inst
            site_id = scope.site if isinstance(scope, DeviceKey) else scope
            self._instances_of.setdefault((index, site_id), []).append(scope)
        return inst

    # ---- condition types ------------------------------------------------------------------------

    def _eval_threshold(self, index: int, rule: Rule, key: DeviceKey, reading: Reading, now: float,
                        out: list[Observation]) -> None:
        th = rule.condition.threshold
        assert th is not None
        value = reading.metrics.get(th.metric)
        inst = self._instances.get((index, key)) or self._instance(index, key)
        if value is None:
            active = False
        else:
            limit = th.value if th.value_from is None else self._room_capacity(key)
            if limit is None:
                active = False
            elif inst.active and th.clear is not None:
                active = value >= th.clear if th.op in (">", ">=") else value <= th.clear  # type: ignore[operator]
            else:
                try:
                    active = _OPS[th.op](value, limit)
                except TypeError:
                    active = False
        if active and rule.active_when != "always" and not self._schedule_allows(rule, key.site, now):
            active = False
        # The situation (inside a load-shedding window or not) is judged when the evidence was taken: a
        # tick at a window's end that sees the last reading from inside it has no sign of an overrun.
        self._update(index, rule, inst, active, _number(value), key, now, out,
                     situation_at=min(now, reading.ts_ms / 1000.0))

    def _eval_aggregate(self, index: int, rule: Rule, key: DeviceKey, reading: Reading, now: float,
                        out: list[Observation]) -> None:
        agg = rule.condition.aggregate
        assert agg is not None
        inst = self._fill_window(index, key, reading)
        assert inst is not None
        window: Window = inst.window  # type: ignore[assignment]
        value = window.aggregate(agg.func, agg.q)
        if value is None or len(window) < agg.min_readings:
            active = inst.active
        elif inst.active and agg.clear is not None:
            active = value >= agg.clear if agg.op in (">", ">=") else value <= agg.clear
        else:
            active = _OPS[agg.op](value, agg.value)
        if active and rule.active_when != "always" and not self._schedule_allows(rule, key.site, now):
            active = False
        self._update(index, rule, inst, active, value, key, now, out)

    def _fill_window(self, index: int, key: DeviceKey, reading: Reading) -> _Instance | None:
        """Add the reading to the instance's aggregate window or run-out fit (None: the rule has
        neither). A reading at or before the newest refilled one is already there."""
        cond = self._rules[index].condition
        if cond.aggregate is None and cond.runout is None:
            return None
        inst = self._instances.get((index, key)) or self._instance(index, key)
        t = reading.ts_ms / 1000.0
        if inst.refilled_until is not None and t <= inst.refilled_until:
            return inst
        if cond.aggregate is not None:
            if inst.window is None:
                inst.window = Window(cond.aggregate.window_s, cond.aggregate.window_readings)  # type: ignore[assignment]
            inst.window.add(t, reading.metrics.get(cond.aggregate.metric))  # type: ignore[union-attr]
            return inst
        ro = cond.runout
        assert ro is not None
        if inst.window is None:
            inst.window = deque()
        value = reading.metrics.get(ro.metric)
        if isinstance(value, int | float) and not isinstance(value, bool):
            inst.window.append((t, float(value)))
        while inst.window and inst.window[0][0] < t - ro.window_s:
            inst.window.popleft()
        return inst

    def _eval_runout(self, index: int, rule: Rule, key: object, now: float, out: list[Observation]) -> None:
        ro = rule.condition.runout
        assert ro is not None and isinstance(key, DeviceKey)
        inst = self._instance(index, key)
        latest = self._latest.get(key)
        window = inst.window or ()
        on_battery = latest is not None and (latest.metrics.get("grid_ok") is False
                                             or latest.metrics.get("mode") == "battery")
        tte = time_to_empty(window, ro.empty_at) if on_battery and len(window) >= ro.min_points else None
        active = False
        extra: dict[str, object] = {}
        if tte is not None:
            empty_at = window[-1][0] + tte
            grid_return = self._site_call(key.site, "next_grid_return", now)
            extra = {"time_to_empty_min": max(empty_at - now, 0.0) / 60.0,
                     "grid_return": _hhmm(grid_return, self._sites.get(key.site)) if grid_return else "not scheduled"}
            if ro.within_s is not None and empty_at - now <= ro.within_s:
                active = True
            if ro.before_grid_return and grid_return is not None and empty_at < grid_return:
                active = True
        elif inst.active and on_battery:
            active = True  # too few points to refit while still on battery: keep the prediction
        self._update(index, rule, inst, active, (tte / 60.0) if tte is not None else inst.value, key, now, out, extra)

    def _held(self, now: float) -> bool:
        return not self._connected or now < self._hold_absence_until

    def _absent(self, key: DeviceKey, after_s: float, now: float, use_status: bool) -> bool:
        if self._held(now):
            return False
        if use_status and self._online.get(key) is False:
            return True
        return now >= self._silence_ends(key, after_s, now)

    def _silence_ends(self, key: DeviceKey, after_s: float, now: float) -> float:
        """When `key`, quiet from now on, counts as absent. Silence counts from the later of its last reading
        and the last (re)connect, for the rule's `after_s`, or longer when its site file says it is quiet
        that long when healthy (`max_quiet`: a PIR that reports on motion)."""
        return max(self._last_seen.get(key, now), self._reconnected_at) + max(after_s, self._quiet.get(key, 0.0))

    def _eval_absence_device(self, index: int, rule: Rule, key: DeviceKey, now: float,
                             out: list[Observation]) -> None:
        ab = rule.condition.absence
        assert ab is not None
        if ab.scope == "site":
            self._eval_absence_site(index, rule, key.site, now, out)
            return
        inst = self._instances.get((index, key)) or self._instance(index, key)
        if self._held(now):
            # Held: nothing new becomes silent, but a device that speaks again is no longer silent.
            active = inst.active and self._last_seen.get(key, now) < now and self._online.get(key) is not True
        else:
            active = self._absent(key, ab.after_s, now, ab.offline)
        silent_s = now - self._last_seen.get(key, now)
        self._update(index, rule, inst, active, silent_s, key, now, out)

    def _remember(self, reading: Reading) -> None:
        """`reading` is its device's latest."""
        key = reading.device
        self._latest[key] = reading
        if key.kind is Kind.OCCUPANCY:
            rooms = self._occupied.setdefault(key.site, set())
            if reading.metrics.get("occupied") is True:
                rooms.add(key.device)
            else:
                rooms.discard(key.device)

    def _see(self, key: DeviceKey, now: float) -> None:
        if key not in self._last_seen:
            self._site_kind_keys.setdefault((key.site, key.kind), []).append(key)
            self._site_keys.setdefault(key.site, []).append(key)
            self._new_keys.append(key)
        self._last_seen[key] = now

    def _eval_absence_site(self, index: int, rule: Rule, site: str, now: float, out: list[Observation]) -> None:
        ab = rule.condition.absence
        assert ab is not None
        keys = [k for k in self._site_keys.get(site, ()) if self._selects(rule, k)]
        inst = self._instances.get((index, site)) or self._instance(index, site)
        if self._held(now):
            active = inst.active
        else:
            active = bool(keys) and all(self._absent(k, ab.after_s, now, ab.offline) for k in keys)
        self._update(index, rule, inst, active, None, site, now, out)

    def _eval_composite(self, index: int, rule: Rule, site: str, now: float, out: list[Observation],
                        changed: DeviceKey | None = None, timed_only: bool = False) -> None:
        """Judge a composite for `site`: after a reading of `changed`, its own truth for each term of
        its kind, the other devices' as last judged; on a tick (`timed_only`), the terms in which an
        absent device counts judged again in full (time alone changes them), the others as they are."""
        comp = rule.condition.composite
        assert comp is not None
        terms = comp.terms
        counts = self._term_counts
        results = []
        for ti, term in enumerate(terms):
            tally = counts.get((index, ti, site))
            if tally is None or (changed is None and (not timed_only or (
                    term.absent_counts and now >= self._term_due.get((index, ti, site), -math.inf)))):
                tally = self._tally_term(index, ti, term, site, comp.absent_after_s, now)
            elif changed is not None and term.kind is changed.kind:
                self._retally_device(index, ti, term, changed, comp.absent_after_s, now, tally)
            selected, holding = tally
            results.append(selected > 0 and (holding == selected if term.quantifier == "all" else holding > 0))
        active = all(results) if comp.all is not None else any(results)
        inst = self._instances.get((index, site)) or self._instance(index, site)
        self._update(index, rule, inst, active, None, site, now, out)

    def _term_selects(self, term, key: DeviceKey) -> bool:
        if term.role is not None and self._uplink_roles(key.site).get(key.device) != term.role:
            return False
        return not term.match or matches_all(term.match, self._device_labels.get(key, {}))

    def _term_truth(self, term, key: DeviceKey, absent_after_s: float, now: float) -> bool:
        if term.absent_counts and self._absent(key, absent_after_s, now, True):
            return True
        reading = self._latest.get(key)
        value = None if reading is None else reading.metrics.get(term.metric)
        try:
            return value is not None and _OPS[term.op](value, term.value)
        except TypeError:
            return False

    def _tally_term(self, index: int, ti: int, term, site: str, absent_after_s: float, now: float) -> list[int]:
        """Every device of `site` the term selects, judged now: [selected, holding], kept with each
        device's truth for the readings until the next full judgement."""
        truths = self._term_truths
        selected = holding = 0
        due = math.inf
        for key in self._site_kind_keys.get((site, term.kind), ()):
            if not self._term_selects(term, key):
                truths[(index, ti, key)] = None
                continue
            truth = self._term_truth(term, key, absent_after_s, now)
            truths[(index, ti, key)] = truth
            selected += 1
            holding += truth
            if term.absent_counts and not self._absent(key, absent_after_s, now, True):
                due = min(due, self._silence_ends(key, absent_after_s, now))
        if term.absent_counts:
            self._term_due[(index, ti, site)] = max(due, self._hold_absence_until) if self._connected else -math.inf
        tally = self._term_counts[(index, ti, site)] = [selected, holding]
        return tally

    def _retally_device(self, index: int, ti: int, term, key: DeviceKey, absent_after_s: float, now: float,
                        tally: list[int]) -> None:
        truths = self._term_truths
        slot = (index, ti, key)
        if slot in truths:
            before = truths[slot]
            if before is None:
                return  # the term does not select it
        else:  # a device first heard of since the last full judgement
            before = False
            if not self._term_selects(term, key):
                truths[slot] = None
                return
            tally[0] += 1
        truth = self._term_truth(term, key, absent_after_s, now)
        truths[slot] = truth
        tally[1] += truth - before
        if term.absent_counts and self._connected:  # its silence now runs out later than the rest's, or first
            slot_due = (index, ti, key.site)
            self._term_due[slot_due] = min(self._term_due.get(slot_due, math.inf),
                                           max(self._silence_ends(key, absent_after_s, now), self._hold_absence_until))

    # ---- site context ---------------------------------------------------------------------------

    def _site_call(self, site_id: str, method: str, now: float, *args: float) -> object:
        # Schedules change on minute boundaries; one lookup per site, method, arguments and second is plenty.
        key = (site_id, method, math.floor(now), *args)
        if key in self._site_memo:
            return self._site_memo[key]
        site = self._sites.get(site_id)
        result = None if site is None else getattr(site, method)(now, *args)
        if len(self._site_memo) > 1024:
            self._site_memo.clear()
        self._site_memo[key] = result
        return result

    def _schedule_allows(self, rule: Rule, site_id: str, now: float) -> bool:
        site = self._sites.get(site_id)
        if site is None:
            return False  # no site description: a schedule cannot be judged, so do not page on it
        when = rule.active_when
        if when in ("open", "closed"):
            return (self._site_call(site_id, "is_open", now) is True) == (when == "open")
        shedding = self._site_call(site_id, "in_load_shedding", now) is True
        return shedding if when == "load_shedding" else not shedding

    def _uplink_roles(self, site_id: str) -> dict[str, str]:
        roles = self._roles.get(site_id)
        if roles is None:
            site = self._sites.get(site_id)
            roles = self._roles[site_id] = {} if site is None else {u.id: u.role for u in site.uplinks}
        return roles

    def _room_capacity(self, key: DeviceKey) -> float | None:
        site = self._sites.get(key.site)
        if site is None:
            return None
        for sensor in site.occupancy_sensors:
            if sensor.id == key.device:
                return float(sensor.capacity)
        return None

    def _site_occupied(self, site_id: str) -> bool:
        return bool(self._occupied.get(site_id))

    def _context_labels(self, rule: Rule, site_id: str, now: float) -> dict[str, str]:
        labels = dict(rule.labels)
        ctx = rule.context
        if ctx.load_shedding is not None:
            scheduled = self._site_call(site_id, "near_load_shedding", now, ctx.load_shedding_grace_s) is True
            outage = "scheduled" if scheduled else "unscheduled"
            labels["outage"] = outage
            labels.update(ctx.load_shedding.get(outage, {}))  # type: ignore[call-overload]
        if ctx.occupancy is not None:
            occupancy = "occupied" if self._site_occupied(site_id) else "empty"
            labels["occupancy"] = occupancy
            labels.update(ctx.occupancy.get(occupancy, {}))  # type: ignore[call-overload]
        return labels

    # ---- output ---------------------------------------------------------------------------------

    def _update(self, index: int, rule: Rule, inst: _Instance, active: bool, value: float | None, scope: object,
                now: float, out: list[Observation], extra: Mapping[str, object] | None = None,
                situation_at: float | None = None) -> None:
        """`situation_at`: when to judge the rule's context (the load-shedding schedule); default now."""
        if active == inst.active and not (active and (rule.context.load_shedding or rule.context.occupancy)):
            return
        site_id = scope.site if isinstance(scope, DeviceKey) else str(scope)
        at = now if situation_at is None else situation_at
        labels = {**self._context_labels(rule, site_id, at), **inst.identity} if active else inst.labels
        if active == inst.active and labels == inst.labels:
            return  # still active, same context: nothing new to say
        inst.active = active
        inst.value = value
        inst.labels = labels
        out.append(Observation(rule.name, inst.fingerprint, labels,
                               self._annotations(rule, labels, scope, value, extra), active, value, now))

    def _annotations(self, rule: Rule, labels: Mapping[str, str], scope: object, value: float | None,
                     extra: Mapping[str, object] | None) -> dict[str, str]:
        values: dict[str, object] = {"value": value, **labels}
        if isinstance(scope, DeviceKey):
            latest = self._latest.get(scope)
            if latest is not None:
                values.update({k: v for k, v in latest.metrics.items() if k not in values})
                values.setdefault("fault_code", None)
            capacity = self._room_capacity(scope)
            if capacity is not None:
                values["capacity"] = int(capacity)
        if extra:
            values.update(extra)
        return {name: render(text, values) for name, text in rule.annotations.items()}

    def _degraded_observation(self, active: bool, now: float) -> Observation:
        labels = {"alertname": MONITORING_DEGRADED, "instance": ENGINE_INSTANCE, "severity": "critical"}
        annotations = {"summary": "facmon has lost its broker connection; absence alerts are held",
                       "summary_ur": "facmon کا بروکر سے رابطہ منقطع ہے"}
        return Observation(MONITORING_DEGRADED, self._degraded_fp, labels, annotations, active, None, now)

    def instances(self) -> Iterable[tuple[str, str, bool]]:
        """(rule, fingerprint, active) of every instance evaluated so far, for inspection."""
        for (index, _), inst in self._instances.items():
            yield self._rules[index].name, inst.fingerprint, inst.active


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return None


class Window:
    """The last `seconds` (device time) or last `readings` values of one metric (a missing or
    non-numeric value is NaN, a `false` is 0 and counts as lost).

    Aggregates are kept up to date as values come and go, so a reading costs the same whatever the
    window holds: a running sum for the mean, the numeric values in sorted order for min, max and
    percentiles (an insertion into a list of at most a few hundred floats), a count of lost values.
    Only `rate` (no shipped rule uses it) fits a line over the window with numpy."""

    __slots__ = ("_count", "_lost", "_lost_count", "_readings", "_seconds", "_sorted", "_sum", "times", "values")

    def __init__(self, seconds: float | None, readings: int | None) -> None:
        self._seconds = seconds
        self._readings = readings
        self.times: deque[float] = deque()
        self.values: deque[float] = deque()
        self._lost: deque[bool] = deque()
        self._sorted: list[float] = []
        self._sum = 0.0
        self._count = 0
        self._lost_count = 0

    def __len__(self) -> int:
        return len(self.times)

    def add(self, t: float, raw: object) -> None:
        lost = raw is None or raw is False
        value = float(raw) if isinstance(raw, int | float) else math.nan
        self.times.append(t)
        self.values.append(value)
        self._lost.append(lost)
        self._lost_count += lost
        if value == value:  # not NaN
            insort(self._sorted, value)
            self._sum += value
            self._count += 1
        if self._readings is not None and len(self.times) > self._readings:
            self._evict()
        if self._seconds is not None:
            horizon = t - self._seconds
            while self.times and self.times[0] <= horizon:
                self._evict()

    def _evict(self) -> None:
        self.times.popleft()
        value = self.values.popleft()
        self._lost_count -= self._lost.popleft()
        if value == value:
            del self._sorted[bisect_left(self._sorted, value)]
            self._count -= 1
            # The running sum drifts by rounding as values come and go; start afresh when empty.
            self._sum = self._sum - value if self._count else 0.0

    def aggregate(self, func: str, q: float | None = None) -> float | None:
        """The window's `func` (mean, min, max, percentile q, rate per second, loss_ratio); None
        when there is nothing numeric to aggregate."""
        n = len(self.times)
        if n == 0:
            return None
        if func == "loss_ratio":
            return self._lost_count / n
        values = self._sorted
        if not values:
            return None
        if func == "mean":
            return self._sum / self._count
        if func == "min":
            return values[0]
        if func == "max":
            return values[-1]
        if func == "percentile":
            # numpy's default ("linear") percentile, from the sorted values.
            position = (q if q is not None else 50.0) / 100 * (len(values) - 1)
            low = math.floor(position)
            high = min(low + 1, len(values) - 1)
            return values[low] + (values[high] - values[low]) * (position - low)
        times = np.fromiter(self.times, dtype=float, count=n)
        series = np.fromiter(self.values, dtype=float, count=n)
        numeric = ~np.isnan(series)
        return slope_per_s(times[numeric], series[numeric])


def slope_per_s(times: np.ndarray, values: np.ndarray) -> float | None:
    """Least-squares slope (units per second); None with fewer than 2 distinct times."""
    if len(times) < 2:
        return None
    t = times - times.mean()
    denom = float((t * t).sum())
    if denom == 0.0:
        return None
    return float((t * (values - values.mean())).sum() / denom)


def time_to_empty(window: Iterable[tuple[float, float]], empty_at: float = 0.0) -> float | None:
    """Seconds from the last point until a least-squares line through `window` reaches `empty_at`;
    None when the value is not falling."""
    pairs = list(window)
    if len(pairs) < 2:
        return None
    times = np.fromiter((t for t, _ in pairs), dtype=float, count=len(pairs))
    values = np.fromiter((v for _, v in pairs), dtype=float, count=len(pairs))
    slope = slope_per_s(times, values)
    if slope is None or slope >= 0 or not math.isfinite(slope):
        return None
    # Project from the fitted value at the last time, not the noisy last point.
    fitted_last = float(values.mean() + slope * (times[-1] - times.mean()))
    return max((fitted_last - empty_at) / -slope, 0.0)


def _hhmm(epoch_s: object, site: Site | None) -> str:
    if not isinstance(epoch_s, int | float):
        return "not scheduled"
    tz = site.tz if site is not None else UTC
    return datetime.fromtimestamp(float(epoch_s), tz).strftime("%H:%M")


__all__ = ["MONITORING_DEGRADED", "Evaluator", "Observation", "Window", "render", "slope_per_s", "time_to_empty"]
