"""Alerts as plain values: their state machine's states, identity (fingerprint) and history records.

An alert is one rule firing for one set of identity labels (e.g. `alertname=DeviceSilent, site=park,
kind=inverter, device=inv-1`). Its fingerprint is a hash of exactly those labels, so the same
condition on the same device is always the same alert (deduplication), across restarts.
Context labels that can change while an alert is active (`severity`, `outage`, `occupancy`) live in
`labels` too, but are not part of the fingerprint.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field


class AlertState(enum.StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


def fingerprint(identity: Mapping[str, str]) -> str:
    """16 hex digits identifying an alert: stable across processes and versions (sha256 of the
    sorted `name=value` lines of the identity labels, which include `alertname`)."""
    text = "\n".join(f"{k}={identity[k]}" for k in sorted(identity))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Alert:
    """The current state of one alert. Times are epoch seconds of the injected clock.

    `active_since`: when the condition last became true (start of pending);
    `fired_at`: when it last went to firing; `resolved_at`: when it last resolved (None while active).
    `muted_by`: why it is not notified now (`silence:<id>`, `inhibited:<fingerprint>`), empty if not muted.
    `acked_by`/`acked_at`/`ack_comment`: the acknowledgement of the current activation, if any.
    `keep_firing_since`: while firing, when the condition last turned false (the `keep_firing_for`
    timer runs from here); None while the condition holds. Stored, so a restart keeps the timer.
    """

    fingerprint: str
    rule: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    state: AlertState
    active_since: float | None = None
    fired_at: float | None = None
    resolved_at: float | None = None
    updated_at: float = 0.0
    value: float | None = None
    muted_by: tuple[str, ...] = ()
    acked_by: str | None = None
    acked_at: float | None = None
    ack_comment: str = ""
    keep_firing_since: float | None = None

    @property
    def site(self) -> str:
        return self.labels.get("site", "")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of an alert's state, for history, annotations and the restart audit."""

    fingerprint: str
    rule: str
    at: float
    from_state: AlertState
    to_state: AlertState
    labels: Mapping[str, str] = field(default_factory=dict)
    value: float | None = None
    summary: str = ""
    """The alert's `summary` annotation at the time (the text of its dashboard annotation)."""


@dataclass(frozen=True, slots=True)
class Retirement:
    """A site (`device` None) or one device of it that is gone: see rules/retire.py."""

    site: str
    device: str | None
    """None: the whole site."""
    at: float
    by: str
    reason: str

    def covers(self, labels: Mapping[str, str]) -> bool:
        """True when an alert (or an observation) with these labels belongs to the retired site or device."""
        if labels.get("site") != self.site:
            return False
        return self.device is None or labels.get("device") == self.device

    def covers_device(self, site: str, device: str) -> bool:
        return site == self.site and (self.device is None or device == self.device)
