from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from core.settings.base import Section

Language = Literal["en", "ur"]


class ChatSettings(Section):
    """A chat or SMS gateway webhook: POST {"<field>": "<rendered message>"}."""

    url: str = Field(pattern=r"^https?://")
    language: Language = "en"
    field: str = "text"


class TelegramSettings(Section):
    """Telegram Bot API `sendMessage` to each chat (a person's or a group's numeric chat id, or
    `@channelname`). The bot token comes from the environment or `bot_token_file`, never the file."""

    chat_ids: list[str] = Field(min_length=1)
    bot_token: SecretStr | None = None
    """Only from the environment or `bot_token_file` (BotFather's `123456:ABC-...`)."""
    bot_token_file: Path | None = None
    api_url: str = Field("https://api.telegram.org", pattern=r"^https?://")
    """The Bot API server (a local `telegram-bot-api` server, or a test stand-in)."""
    language: Language = "en"
    acknowledge_button: bool = True
    """Messages about firing alerts carry an inline *Acknowledge* button."""
    timeout_s: float = Field(10.0, gt=0, le=300)

    @field_validator("chat_ids")
    @classmethod
    def _chat_ids(cls, value: list[str]) -> list[str]:
        for chat in value:
            if not (chat.lstrip("-").isdigit() or (chat.startswith("@") and len(chat) > 1)):
                raise ValueError(f"chat id {chat!r} is neither a number (a person or group, e.g. -1001234567890) "
                                 "nor @channelname; ask the bot's getUpdates for the chat id")
        return value


class NtfySettings(Section):
    """ntfy push (https://ntfy.sh or a self-hosted server): priority and tags from the severity."""

    url: str = Field("https://ntfy.sh", pattern=r"^https?://")
    topic: str = Field(pattern=r"^[-_A-Za-z0-9]{1,64}$")
    token: SecretStr | None = None
    """Access token for a protected topic; only from the environment or `token_file`."""
    token_file: Path | None = None
    language: Language = "en"
    timeout_s: float = Field(10.0, gt=0, le=300)


SMS_TEMPLATE_FIELDS = ("to", "text", "id")


def check_sms_template(template: str, what: str) -> str:
    """`template` if it only uses {to}, {text} and {id} (literal braces doubled), else ValueError."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise ValueError(f"{what} is not a valid template ({err}); write fields as {{to}}, {{text}}, {{id}} "
                         "and literal braces as {{{{ and }}}}") from None
    unknown = sorted(names - set(SMS_TEMPLATE_FIELDS))
    if unknown:
        raise ValueError(f"{what} uses unknown field(s) {', '.join(unknown)}; the fields are "
                         f"{', '.join('{' + f + '}' for f in SMS_TEMPLATE_FIELDS)} "
                         "(literal braces, as in JSON, are written {{ and }})")
    return template


class SmsGatewaySettings(Section):
    """An SMS aggregator's HTTP API, one request per recipient, built from templates: `{to}` the
    number, `{text}` the message (JSON-escaped in a JSON body, URL-encoded in a form or query),
    `{id}` the notification's stable id. Any 2xx is success; 429 and 5xx are retried."""

    url: str = Field(pattern=r"^https?://")
    """May hold fields too, e.g. `https://sms.example.pk/send?to={to}&msg={text}`."""
    method: Literal["POST", "GET"] = "POST"
    body: str = '{{"to": "{to}", "message": "{text}"}}'
    body_format: Literal["json", "form"] = "json"
    headers: dict[str, str] = Field(default_factory=dict)
    api_key: SecretStr | None = None
    """Sent as `Authorization: Bearer <key>`; only from the environment or `api_key_file`."""
    api_key_file: Path | None = None
    numbers: list[str] = Field(min_length=1)
    language: Language = "en"
    timeout_s: float = Field(10.0, gt=0, le=300)

    @field_validator("numbers")
    @classmethod
    def _numbers(cls, value: list[str]) -> list[str]:
        return [check_phone_number(n) for n in value]

    @model_validator(mode="after")
    def _templates(self) -> SmsGatewaySettings:
        check_sms_template(self.url, "sms_gateway.url")
        check_sms_template(self.body, "sms_gateway.body")
        for name, value in self.headers.items():
            check_sms_template(value, f"sms_gateway.headers.{name}")
        if self.method == "POST" and self.body_format == "json":
            # Rendered with awkward sample values, the body must still be JSON (quotes, newlines, Urdu).
            sample = self.body.format(to="+920000000000", text='a \\"quoted\\" \\n اردو', id="fmn-1")
            try:
                json.loads(sample)
            except ValueError as err:
                raise ValueError(f"sms_gateway.body does not give JSON ({err}; rendered: {sample[:120]}); write it "
                                 'like {{"to": "{to}", "message": "{text}"}} or set body_format: form') from None
        return self


def check_phone_number(number: str) -> str:
    digits = number[1:] if number.startswith("+") else number
    if not (digits.isdigit() and 3 <= len(digits) <= 15):
        raise ValueError(f"phone number {number!r} is not a number; write it in international form, "
                         "e.g. +923001234567")
    return number


class GsmModemSettings(Section):
    """A GSM modem (USB 3G/4G dongle) through Gammu: SMS that needs no internet. GSM-7 text takes
    160 characters a part, Urdu (UCS-2) 70; longer messages are sent as concatenated parts, at most
    `max_parts` (the rest is cut, marked with …)."""

    device: str = Field(min_length=1)
    """The modem's serial port, e.g. /dev/ttyUSB2 or /dev/serial/by-id/usb-HUAWEI_...-if02-port0."""
    connection: str = Field("at", pattern=r"^[a-z0-9]+$")
    """Gammu's connection (`at` for almost every dongle; `none` with model `dummy` for tests)."""
    model: str = ""
    numbers: list[str] = Field(min_length=1)
    max_parts: int = Field(3, ge=1, le=10)
    language: Language = "en"
    read_replies: bool = True
    """Read the modem's inbox for `ACK <code>` replies (acknowledge from the phone)."""
    # No timeout_s: Gammu bounds each exchange with the modem itself, and a slow modem holds up only
    # its own delivery thread.

    @field_validator("numbers")
    @classmethod
    def _numbers(cls, value: list[str]) -> list[str]:
        return [check_phone_number(n) for n in value]


class FailoverSettings(Section):
    """When this receiver's channels keep failing (or the site is offline), its notifications of
    `severities` go out by SMS instead: through the integrations of the kinds in `to`, tried in that
    order (a chain). Those integrations then serve only as failover: everyday notifications do not
    go out by SMS. What SMS delivered is not sent again when the internet returns."""

    after_s: float = Field(300.0, ge=0)
    """How long a notification may keep failing on its channel before it fails over."""
    to: list[Literal["gsm", "sms_gateway"]] = Field(default_factory=lambda: ["gsm"], min_length=1)
    severities: list[str] = Field(default_factory=lambda: ["critical"], min_length=1)
    offline_rule: str = "SiteOffline"
    """While an alert of this rule fires, the site's uplinks are down: fail over at the first failure."""


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

    @model_validator(mode="after")
    def _failover_has_sms(self) -> ReceiverSettings:
        if self.failover is not None:
            have = {"gsm": self.gsm is not None, "sms_gateway": bool(self.sms_gateway)}
            missing = [kind for kind in self.failover.to if not have[kind]]
            if missing:
                raise ValueError(f"receiver {self.name}: failover.to names {', '.join(missing)}, which this receiver "
                                 "does not configure; add it or remove it from failover.to")
        return self

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    webhooks: list[str] = Field(default_factory=list)
    """URLs that get Alertmanager's webhook JSON (version 4)."""
    alertmanager_urls: list[str] = Field(default_factory=list)
    """Base URLs of Alertmanagers (http://host:9093) that get the alerts on /api/v2/alerts."""
    chat: list[ChatSettings] = Field(default_factory=list)
    email: EmailSettings | None = None
    telegram: list[TelegramSettings] = Field(default_factory=list)
    ntfy: list[NtfySettings] = Field(default_factory=list)
    sms_gateway: list[SmsGatewaySettings] = Field(default_factory=list)
    gsm: GsmModemSettings | None = None
    failover: FailoverSettings | None = None
    feed: bool = True
    """Also show this receiver's notifications in the local feed (status page, `GET /api/v1/notifications`,
    the `facmon up` terminal): a notification always lands somewhere a person sees it."""


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
    """Dead man's switch, two ways. `receiver`: an always-firing `Watchdog` alert sent to that receiver
    every `interval_s` (for an Alertmanager or a service that alerts when it stops). `url`: a signed
    heartbeat POSTed every `interval_s` to an off-site `facmon watchdog serve`, which pages through its
    own integrations when heartbeats stop. Heartbeats go out only while the engine is evaluating and
    connected to the broker: an engine that cannot see the site is as good as down."""

    receiver: str | None = None
    interval_s: float = Field(60.0, ge=1)
    url: str | None = Field(None, pattern=r"^https?://")
    """The watchdog's heartbeat URL, e.g. https://watchdog.example.pk:9470/heartbeat."""
    secret: SecretStr | None = None
    """The secret shared with the watchdog; only from the environment or `secret_file`."""
    secret_file: Path | None = None
    site: str | None = None
    """The name the watchdog knows this site by; default: the first site in `sites.files`, else `facmon`."""
    timeout_s: float = Field(10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _secret_with_url(self) -> HeartbeatSettings:
        if self.url and self.secret is None and self.secret_file is None:
            raise ValueError("heartbeat.url needs the shared secret: set heartbeat.secret_file (the same secret as "
                             "the watchdog's watchdog.secret_file)")
        return self


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
    clock: Literal["system", "device", "catch_up"] = "system"
    """`device`: the engine's time follows the readings' `ts` (replays, accelerated simulations): timers,
    ticks and absence run on simulated time, kept in the store across restarts. `system`: the wall clock.
    `catch_up` (facmon up's demo): device time while the readings replay the past, the wall clock from the
    first reading stamped within 30 s of it."""
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
    http_listen: str | None = Field("127.0.0.1:9109", pattern=r"^[^\s:]*:\d{1,5}$")
    """Where `facmon rules run` serves /metrics, /healthz and /readyz (null: nowhere)."""
    channels_down_after_s: float = Field(600.0, gt=0)
    """When every integration of a receiver has failed this long, that is itself a notification,
    sent to the receiver's failover SMS (if any) and to the feed."""
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
