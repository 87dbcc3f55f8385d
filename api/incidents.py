"""Incidents: active alerts grouped by cause, as a facility manager reads them.

An alert inhibited by another active alert (`muted_by` holds `inhibited:<fingerprint>`, set by the
rules engine's inhibition rules) is a consequence of it: a grid outage that takes the router down
also takes the uplinks and every device behind them. Each incident is one cause (an alert no other
active alert inhibits) with every alert it mutes, directly or through a chain, folded under it.

Pure: `group_incidents` takes alerts and returns incidents; the API route reads the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rules.alerts import Alert
from rules.model import SEVERITIES

INHIBITED = "inhibited:"
@dataclass(frozen=True, slots=True)
class Incident:
    cause: Alert
    muted: tuple[Alert, ...]
    """The alerts the cause inhibits, directly or through another muted alert, earliest first."""

    @property
    def alerts(self) -> tuple[Alert, ...]:
        return (self.cause, *self.muted)


def inhibitor_of(alert: Alert, active: dict[str, Alert]) -> str | None:
    """The fingerprint of the active alert that inhibits `alert`, if any (the first named)."""
    for reason in alert.muted_by:
        if reason.startswith(INHIBITED):
            source = reason[len(INHIBITED):]
            if source in active and source != alert.fingerprint:
                return source
    return None


def _cause_of(alert: Alert, active: dict[str, Alert]) -> str:
    """Follow the inhibitions up to the alert nothing inhibits; in a loop, its most urgent member."""
    chain = [alert.fingerprint]
    while (source := inhibitor_of(active[chain[-1]], active)) is not None:
        if source in chain:
            return min(chain[chain.index(source):], key=lambda fp: _urgency(active[fp]))
        chain.append(source)
    return chain[-1]


def _urgency(alert: Alert) -> tuple[int, float, str]:
    """Most severe first (`SEVERITIES` is in that order; another severity, or none, after them), then
    the earliest."""
    severity = alert.severity
    rank = SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)
    return (rank, *_start_order(alert))


def group_incidents(alerts: Sequence[Alert]) -> list[Incident]:
    """Active `alerts` as incidents, most urgent first (severity, then the earliest start). Every alert
    is in exactly one incident; inhibitions that form a loop (two alerts muting each other) make
    the most urgent alert of the loop the cause."""
    active = {a.fingerprint: a for a in alerts}
    members: dict[str, list[Alert]] = {}
    for alert in alerts:
        cause = _cause_of(alert, active)
        members.setdefault(cause, [])
        if cause != alert.fingerprint:
            members[cause].append(alert)
    incidents = [Incident(active[cause], tuple(sorted(muted, key=_start_order)))
                 for cause, muted in members.items()]
    incidents.sort(key=lambda i: _urgency(i.cause))
    return incidents


def _start_order(alert: Alert) -> tuple[float, str]:
    return (alert.active_since if alert.active_since is not None else alert.updated_at, alert.fingerprint)
