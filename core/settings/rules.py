from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from core.settings.base import Section

Language = Literal["en", "ur"]


class ChatSettings(Section):
    """A chat or SMS gateway webhook: POST {"<field>": "<rendered message>"}."""

    url: str = Field(pattern=r"^https?://")
    language: Language = "en"
    field: str = "text"


class EmailSettings(Section):
    host: str
    port: int = Field(25, ge=1, le=65535)
    from_addr: str = "facmon@localhost"
    to: list[str] = Field(min_length=1)
    language: Language = "en"
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    """Only from the environment or `password_file`."""
    password_file: Path | None = None


class ReceiverSettings(Section):
    """A named receiver (an on-call level, a team, a digest) and where its notifications go."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    webhooks: list[str] = Field(default_factory=list)
    """URLs that get Alertmanager's webhook JSON (version 4)."""
    alertmanager_urls: list[str] = Field(default_factory=list)
    """Base URLs of Alertmanagers (http://host:9093) that get the alerts on /api/v2/alerts."""
    chat: list[ChatSettings] = Field(default_factory=list)
    email: EmailSettings | None = None


class EscalationSettings(Section):
    after_s: float = Field(gt=0)
    receiver: str


class RouteSettings(Section):
    """Alerts whose labels match all `match` matchers (`severity=critical`, `site=~park.*`) go to
    `receiver`; the first matching route wins unless it says `continue: true`."""

    receiver: str
    match: list[str] = Field(default_factory=list)
    group_by: list[str] = Field(default_factory=lambda: ["site"])
    group_wait_s: float = Field(30.0, ge=0)
    group_interval_s: float = Field(300.0, ge=0)
    repeat_interval_s: float = Field(4 * 3600.0, gt=0)
    escalations: list[EscalationSettings] = Field(default_factory=list)
    continue_: bool = Field(False, alias="continue")


class HeartbeatSettings(Section):
    """Dead man's switch: an always-firing `Watchdog` alert sent to an off-site receiver every
    `interval_s`; when it stops arriving, facmon itself is down (set the receiver up to alert then)."""

    receiver: str | None = None
    interval_s: float = Field(60.0, ge=5)


class BrokerWatchSettings(Section):
    """The broker's queue watched through its `$SYS` counters (rules.broker_watch): a warning well
    before `max_queued_messages` is reached, and a critical alert when the broker drops messages."""

    enabled: bool = True
    """Needs `topic read $SYS/broker/#` for the rules engine's user (`facmon acl generate` writes it)."""
    queue_limit: int = Field(1_000_000, ge=1)
    """The broker's `max_queued_messages` (the shipped deploy/mosquitto/facmon-broker.conf value)."""
    warn_fraction: float = Field(0.5, gt=0, le=1)
    """Warn when this share of the limit is queued..."""
    warn_left_s: float = Field(900.0, ge=0)
    """...or when, at the current growth rate, the limit is this close."""
    drop_hold_s: float = Field(300.0, gt=0)
    """The drop alert resolves after this long without a new drop."""


class RulesSettings(Section):
    """The rules engine (`facmon rules run`): rule files, sites, alert store, routing, receivers."""

    rule_files: list[Path] = Field(default_factory=list)
    """Rule files; empty: the shipped park pack (rules/packs/park.yaml)."""
    store_path: Path = Path("var/alerts.db")
    evaluation_interval_s: float = Field(1.0, gt=0, le=60)
    reconnect_grace_s: float = Field(30.0, ge=0)
    """After the broker connection returns, absence alerts stay held this long (queued readings arrive)."""
    refill_max_s: float = Field(3600.0, ge=0)
    """At start, aggregate windows and run-out fits are refilled from InfluxDB (what the collector
    stored) up to this far back, so a restart neither empties them nor delays an alert; 0: start empty."""
    clock: Literal["system", "device"] = "system"
    """`device`: the engine's time follows the readings' `ts` (replays, accelerated simulations): timers,
    ticks and absence run on simulated time, kept in the store across restarts. `system`: the wall clock."""
    mqtt_client_id: str = Field("facmon-rules", min_length=1, max_length=128)
    """The engine's MQTT client id; its persistent session is bound to it."""
    mqtt_session_expiry_s: int = Field(7 * 86_400, ge=60)
    """How long the broker keeps the engine's session (and queues readings for it) while it is away."""
    external_url: str = "http://localhost:8080"
    """Where people open facmon (links in notifications)."""
    write_influx: bool = True
    """Write alert transitions to InfluxDB (`facmon_alerts`) for dashboard annotations."""
    receivers: list[ReceiverSettings] = Field(default_factory=lambda: [ReceiverSettings(name="default")])
    routes: list[RouteSettings] = Field(default_factory=lambda: [RouteSettings(receiver="default")])
    heartbeat: HeartbeatSettings = HeartbeatSettings()
    broker_watch: BrokerWatchSettings = BrokerWatchSettings()
    retry_min_s: float = Field(1.0, gt=0)
    retry_max_s: float = Field(300.0, gt=0)
    max_attempts: int = Field(10, ge=1)

    @model_validator(mode="after")
    def _receivers_exist(self) -> RulesSettings:
        names = {r.name for r in self.receivers}
        wanted = [r.receiver for r in self.routes] + [e.receiver for r in self.routes for e in r.escalations]
        if self.heartbeat.receiver:
            wanted.append(self.heartbeat.receiver)
        missing = sorted(set(wanted) - names)
        if missing:
            raise ValueError(f"routes name receivers that are not defined: {', '.join(missing)} "
                             f"(defined: {', '.join(sorted(names))})")
        if not self.routes:
            raise ValueError("at least one route is needed (a catch-all with no match)")
        return self
