"""The alert lifecycle, like Alertmanager's (and Prometheus' `for`/`keep_firing_for`):

    inactive ──cond true──► pending ──held for `for`──► firing ──cond false for `keep_firing_for`──► resolved
        ▲                      │ cond false                 ▲  cond true again: stays firing         │
        └──────────────────────┘                            └────────────────────────────────────────┘
                                                                    (cond true again: pending, a new activation)

Pure: `observe(observation)` and `tick(now)` return the `Change`s (new alert value + transition) that
the engine persists and routes. `for = 0` fires at once; `keep_firing_for = 0` resolves at once.
An acknowledgement belongs to one activation and is cleared when the alert becomes active again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from rules.alerts import Alert, AlertState, Transition
from rules.evaluate import Observation

ACTIVE = (AlertState.PENDING, AlertState.FIRING)


@dataclass(frozen=True, slots=True)
class Timing:
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Change:
    """An alert's new value; `transition` is set when its state changed (None: labels/annotations/ack)."""

    alert: Alert
    transition: Transition | None


class AlertLifecycle:
    def __init__(self, timings: Mapping[str, Timing], forget_resolved_after_s: float = 3600.0) -> None:
        self._timings = dict(timings)
        self._alerts: dict[str, Alert] = {}
        self._condition: dict[str, bool] = {}
        self._forget_after_s = forget_resolved_after_s

    def load(self, alerts: Iterable[Alert]) -> None:
        """Alerts from the store after a restart: active ones are assumed still true until observed,
        except a firing alert whose `keep_firing_for` timer was running (`keep_firing_since`): its
        condition was false, and the timer goes on from when it started, not from the restart."""
        for alert in alerts:
            if alert.state in ACTIVE:
                self._alerts[alert.fingerprint] = alert
                self._condition[alert.fingerprint] = alert.keep_firing_since is None
            elif alert.state is AlertState.RESOLVED:
                self._alerts[alert.fingerprint] = alert

    def alerts(self) -> list[Alert]:
        return list(self._alerts.values())

    def alert(self, fp: str) -> Alert | None:
        return self._alerts.get(fp)

    def timing(self, rule: str) -> Timing:
        return self._timings.get(rule, Timing())

    def observe(self, obs: Observation) -> list[Change]:
        fp = obs.fingerprint
        alert = self._alerts.get(fp)
        self._condition[fp] = obs.active
        now = obs.at
        if obs.active:
            if alert is None or alert.state not in ACTIVE:
                return [self._activate(obs, alert)]
            updated = replace(alert, labels=dict(obs.labels), annotations=dict(obs.annotations), value=obs.value,
                              updated_at=now, keep_firing_since=None)
            self._alerts[fp] = updated
            # A stopped keep_firing_for timer is alert state too: stored, like a label change.
            changed = (updated.labels != alert.labels or updated.annotations != alert.annotations
                       or alert.keep_firing_since is not None)
            return ([Change(updated, None)] if changed else []) + self._advance(fp, now)
        if alert is None or alert.state not in ACTIVE:
            return []
        if alert.state is AlertState.PENDING:
            return [self._move(alert, AlertState.INACTIVE, now, active_since=None)]
        if alert.keep_firing_since is not None:
            return self._advance(fp, now)
        self._alerts[fp] = replace(alert, keep_firing_since=now, updated_at=now)
        # The timer starts: stored (unless it already ran out), so a restart keeps it.
        return self._advance(fp, now) or [Change(self._alerts[fp], None)]

    def tick(self, now: float) -> list[Change]:
        changes: list[Change] = []
        for fp in list(self._alerts):
            alert = self._alerts[fp]
            if alert.state in ACTIVE:
                changes.extend(self._advance(fp, now))
            elif alert.state is AlertState.RESOLVED and (alert.resolved_at or now) < now - self._forget_after_s:
                del self._alerts[fp]  # kept in the store; memory holds only what routing still needs
                self._condition.pop(fp, None)
        return changes

    def set_ack(self, fp: str, by: str | None, at: float | None, comment: str) -> Alert | None:
        """Apply an acknowledgement read from the store (the API wrote it); returns the new alert."""
        alert = self._alerts.get(fp)
        if alert is None or alert.state not in ACTIVE or (alert.acked_by, alert.acked_at) == (by, at):
            return None
        self._alerts[fp] = replace(alert, acked_by=by, acked_at=at, ack_comment=comment)
        return self._alerts[fp]

    def set_muted(self, fp: str, muted_by: tuple[str, ...]) -> Alert | None:
        alert = self._alerts.get(fp)
        if alert is None or alert.muted_by == muted_by:
            return None
        self._alerts[fp] = replace(alert, muted_by=muted_by)
        return self._alerts[fp]

    def retire(self, fp: str, now: float, reason: str) -> Change | None:
        """End an active alert because its device or site is gone (`rules.retire`): pending goes back
        to inactive, firing to resolved, and the transition's summary is `reason`. None if not active."""
        alert = self._alerts.get(fp)
        if alert is None or alert.state not in ACTIVE:
            return None
        self._condition.pop(fp, None)
        if alert.state is AlertState.PENDING:
            change = self._move(alert, AlertState.INACTIVE, now, active_since=None)
        else:
            change = self._move(alert, AlertState.RESOLVED, now, resolved_at=now, keep_firing_since=None)
        return Change(change.alert, replace(change.transition, summary=reason))  # type: ignore[arg-type]

    def retire_where(self, covers: Callable[[Mapping[str, str]], bool], now: float, reason: str) -> list[Change]:
        """`retire` every active alert whose labels `covers`; the changes made."""
        return [change for alert in self.alerts() if covers(alert.labels)
                and (change := self.retire(alert.fingerprint, now, reason)) is not None]

    def adopt(self, alert: Alert) -> None:
        """Take `alert` as another process stored it (a retirement ended it): no change to record."""
        self._condition.pop(alert.fingerprint, None)
        if alert.state is AlertState.INACTIVE:
            self._alerts.pop(alert.fingerprint, None)
        else:
            self._alerts[alert.fingerprint] = alert

    # ---- internals ------------------------------------------------------------------------------

    def _activate(self, obs: Observation, previous: Alert | None) -> Change:
        alert = Alert(obs.fingerprint, obs.rule, dict(obs.labels), dict(obs.annotations), AlertState.PENDING,
                      active_since=obs.at, updated_at=obs.at, value=obs.value)
        from_state = previous.state if previous is not None else AlertState.INACTIVE
        self._alerts[obs.fingerprint] = alert
        if self.timing(obs.rule).for_s <= 0:
            fired = replace(alert, state=AlertState.FIRING, fired_at=obs.at)
            self._alerts[obs.fingerprint] = fired
            return Change(fired, _transition(fired, from_state, obs.at))
        return Change(alert, _transition(alert, from_state, obs.at))

    def _advance(self, fp: str, now: float) -> list[Change]:
        alert = self._alerts[fp]
        timing = self.timing(alert.rule)
        if alert.state is AlertState.PENDING and self._condition.get(fp):
            if now - (alert.active_since or now) >= timing.for_s:
                return [self._move(alert, AlertState.FIRING, now, fired_at=now)]
        elif alert.state is AlertState.FIRING and not self._condition.get(fp, True):
            false_since = alert.keep_firing_since if alert.keep_firing_since is not None else now
            if now - false_since >= timing.keep_firing_for_s:
                return [self._move(alert, AlertState.RESOLVED, now, resolved_at=now, keep_firing_since=None)]
        return []

    def _move(self, alert: Alert, to: AlertState, now: float, **fields: object) -> Change:
        moved = replace(alert, state=to, updated_at=now, **fields)  # type: ignore[arg-type]
        if to is AlertState.INACTIVE:
            self._alerts.pop(alert.fingerprint, None)
        else:
            self._alerts[alert.fingerprint] = moved
        return Change(moved, _transition(moved, alert.state, now))


def _transition(alert: Alert, from_state: AlertState, at: float) -> Transition:
    return Transition(alert.fingerprint, alert.rule, at, from_state, alert.state, dict(alert.labels), alert.value,
                      alert.annotations.get("summary", ""))
