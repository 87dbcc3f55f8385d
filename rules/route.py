"""Routing: which receiver hears about an alert, grouped into incidents, muted, acknowledged, escalated.

Pure: `Router.plan(alerts, muted, groups, now)` decides what to send *now* and how the incident
(group) state changes; the engine persists both in one transaction (store.enqueue_notification).

- Routes are tried in order; the first whose matchers match the alert's labels takes it (a route
  with `continue_=True` lets later routes take it too). Alerts are grouped per route by the values
  of `group_by` (default: `site`): one notification per site incident, not one per alert.
- A new group waits `group_wait_s` (to collect the alerts of one incident) before its first
  notification; a changed group waits `group_interval_s` after the last; an unchanged group with
  unacknowledged firing alerts is re-sent every `repeat_interval_s`.
- Muters: silences and inhibition rules both mute (`mute()` says why). A muted alert is not
  notified but is listed in its incident's notifications as muted.
- Acknowledged alerts stop repeats and escalation; escalation sends the incident to the next
  on-call level when it has stayed unacknowledged for `after_s` since the group was first seen.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from rules.alerts import Alert, AlertState
from rules.matchers import Matcher, matches_all
from rules.model import InhibitRule
from rules.silences import SilenceMuter
from rules.store import GroupState


@dataclass(frozen=True, slots=True)
class Escalation:
    after_s: float
    receiver: str


@dataclass(frozen=True, slots=True)
class Route:
    receiver: str
    matchers: tuple[Matcher, ...] = ()
    group_by: tuple[str, ...] = ("site",)
    group_wait_s: float = 30.0
    group_interval_s: float = 300.0
    repeat_interval_s: float = 4 * 3600.0
    escalations: tuple[Escalation, ...] = ()
    continue_: bool = False


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one receiver about one incident: its firing and resolved alerts (`alerts`)
    and the alerts muted meanwhile (`muted`). `reason`: new | update | repeat | resolved | escalation."""

    receiver: str
    group_key: str
    group_labels: Mapping[str, str]
    status: str
    alerts: tuple[Alert, ...]
    muted: tuple[Alert, ...]
    reason: str
    escalation_level: int = 0


@dataclass(frozen=True, slots=True)
class Plan:
    notifications: list[Notification] = field(default_factory=list)
    groups: list[GroupState] = field(default_factory=list)
    """Group states to save; each notification's group state is saved with it."""
    deleted: list[str] = field(default_factory=list)


class Router:
    def __init__(self, routes: Sequence[Route], inhibit_rules: Sequence[InhibitRule]) -> None:
        if not routes:
            raise ValueError("routing needs at least one route (a catch-all route with no matchers)")
        self._routes = tuple(routes)
        self._inhibit = tuple(inhibit_rules)
        self._by_receiver = {}
        for route in self._routes:
            self._by_receiver.setdefault(route.receiver, route)

    def mute(self, alerts: Iterable[Alert], silences: SilenceMuter, now: float) -> dict[str, tuple[str, ...]]:
        """Why each active alert is muted (`silence:<id>`, `inhibited:<fp of source>`); absent: not muted."""
        alerts = [a for a in alerts if a.state in (AlertState.PENDING, AlertState.FIRING)]
        sources = [a for a in alerts if a.state is AlertState.FIRING]
        muted: dict[str, tuple[str, ...]] = {}
        for alert in alerts:
            reasons: list[str] = []
            silence_id = silences.mutes(alert.labels, now)
            if silence_id is not None:
                reasons.append(f"silence:{silence_id}")
            for rule in self._inhibit:
                if not matches_all(rule.target, alert.labels):
                    continue
                for source in sources:
                    if source.fingerprint != alert.fingerprint and matches_all(rule.source, source.labels) and all(
                            source.labels.get(name, "") == alert.labels.get(name, "") for name in rule.equal):
                        reasons.append(f"inhibited:{source.fingerprint}")
                        break
            if reasons:
                muted[alert.fingerprint] = tuple(reasons)
        return muted

    def routes_for(self, labels: Mapping[str, str]) -> list[Route]:
        chosen = []
        for route in self._routes:
            if matches_all(route.matchers, labels):
                chosen.append(route)
                if not route.continue_:
                    break
        return chosen

    def plan(self, alerts: Iterable[Alert], muted: Mapping[str, tuple[str, ...]],
             groups: Mapping[str, GroupState], now: float) -> Plan:
        members: dict[str, tuple[Route, dict[str, str], list[Alert]]] = {}
        for alert in alerts:
            for route in self.routes_for(alert.labels):
                labels = {name: alert.labels.get(name, "") for name in route.group_by}
                key = group_key(route.receiver, labels)
                members.setdefault(key, (route, labels, []))[2].append(alert)
        plan = Plan()
        for key in sorted(set(members) | set(groups)):
            route, labels, group_alerts = members.get(key) or (None, {}, [])
            group = groups.get(key)
            if route is None:
                route = self._by_receiver.get(group.receiver) if group else None
                if route is None:
                    plan.deleted.append(key)
                    continue
            self._plan_group(plan, key, route, labels or (group.labels if group else {}), group, group_alerts,
                             muted, now)
        return plan

    def _plan_group(self, plan: Plan, key: str, route: Route, labels: dict[str, str], group: GroupState | None,
                    alerts: list[Alert], muted: Mapping[str, tuple[str, ...]], now: float) -> None:
        told_firing = {entry.split(":")[0] for entry in (group.notified if group else ()) if ":firing" in entry}
        firing = sorted((a for a in alerts if a.state is AlertState.FIRING and a.fingerprint not in muted),
                        key=_order)
        resolved = sorted((a for a in alerts if a.state is AlertState.RESOLVED and a.fingerprint in told_firing),
                          key=_order)
        muted_list = tuple(sorted((a for a in alerts if a.fingerprint in muted and a.state is AlertState.FIRING),
                                  key=_order))
        entries = tuple(sorted(f"{a.fingerprint}:firing:{a.severity}" for a in firing)) + tuple(
            sorted(f"{a.fingerprint}:resolved" for a in resolved))
        if group is None:
            if not firing:
                return
            group = GroupState(key, route.receiver, labels, now)
            plan.groups.append(group)
        if group.last_notified_at is None:
            if not firing:
                plan.deleted.append(key)  # resolved (or muted) before anyone was told: nothing to say
            elif now >= group.first_seen_at + route.group_wait_s:
                self._send(plan, route.receiver, group, firing, resolved, muted_list, entries, "new", now)
            return
        unacked = [a for a in firing if a.acked_by is None]
        changed = tuple(e for e in entries if not e.endswith(":resolved")) != tuple(
            e for e in group.notified if not e.endswith(":resolved")) or bool(resolved)
        if changed and now >= group.last_notified_at + route.group_interval_s:
            reason = "update" if firing else "resolved"
            self._send(plan, route.receiver, group, firing, resolved, muted_list, entries, reason, now)
        elif not changed and unacked and now >= group.last_notified_at + route.repeat_interval_s:
            self._send(plan, route.receiver, group, firing, resolved, muted_list, entries, "repeat", now)
        elif not firing and not resolved:
            plan.deleted.append(key)
            return
        self._escalate(plan, route, group, unacked, muted_list, now)

    def _escalate(self, plan: Plan, route: Route, group: GroupState, unacked: list[Alert], muted: tuple[Alert, ...],
                  now: float) -> None:
        key = group.key
        group = next((g for g in reversed(plan.groups) if g.key == key), group)
        if not unacked or group.escalation_level >= len(route.escalations):
            return
        step = route.escalations[group.escalation_level]
        # Counted from the incident's first notification: nobody could act before being told, and a
        # long group_wait must not eat into the time on-call has to acknowledge. (A group stored
        # before first_notified_at existed falls back to when it was first seen.)
        told_at = group.first_notified_at if group.first_notified_at is not None else (
            group.first_seen_at if group.last_notified_at is not None else None)
        if told_at is None or now < told_at + step.after_s:
            return
        escalated = replace(group, escalation_level=group.escalation_level + 1, escalated_at=now)
        plan.groups[:] = [g for g in plan.groups if g.key != key] + [escalated]
        plan.notifications.append(Notification(step.receiver, key, escalated.labels, "firing", tuple(unacked), muted,
                                               "escalation", escalated.escalation_level))

    def _send(self, plan: Plan, receiver: str, group: GroupState, firing: list[Alert], resolved: list[Alert],
              muted: tuple[Alert, ...], entries: tuple[str, ...], reason: str, now: float) -> None:
        status = "firing" if firing else "resolved"
        notified = tuple(e for e in entries if not e.endswith(":resolved"))
        updated = replace(group, last_notified_at=now, notified=notified,
                          first_notified_at=group.first_notified_at if group.first_notified_at is not None else now)
        plan.groups[:] = [g for g in plan.groups if g.key != group.key] + [updated]
        plan.notifications.append(Notification(receiver, group.key, group.labels, status,
                                               tuple(firing) + tuple(resolved), muted, reason,
                                               group.escalation_level))
        if not firing:
            plan.deleted.append(group.key)


def group_key(receiver: str, labels: Mapping[str, str]) -> str:
    """`receiver/{"site":"park"}`: stable text naming one incident on one receiver."""
    return f"{receiver}/{json.dumps(dict(sorted(labels.items())), ensure_ascii=False, separators=(',', ':'))}"


def _order(alert: Alert) -> tuple[float, str]:
    return (alert.active_since or 0.0, alert.fingerprint)
