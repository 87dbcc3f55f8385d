"""The rules engine's own HTTP endpoint (`rules.http_listen`): `/metrics` (Prometheus text),
`/healthz` (the process answers) and `/readyz` (503 with the reason while it is not evaluating or
not subscribed). Read-only, on its own thread; it reads what `RulesService.health()` reports."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from core.http_endpoint import Answer, HttpEndpoint


@dataclass(frozen=True)
class EngineHealth:
    """A snapshot of the engine for /metrics and /readyz."""

    evaluation_lag_s: float | None
    """Seconds since the last completed evaluation tick (None before the first)."""
    mqtt_connected: bool
    mqtt_subscribed: bool
    messages_handled: int
    outbox_depth: int
    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    heartbeat_last_sent_at: float | None = None
    not_ready: tuple[str, ...] = ()
    """Why the engine is not ready; empty when it is."""


class _Metrics(Collector):
    def __init__(self, health: Callable[[], EngineHealth]) -> None:
        self._health = health

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        h = self._health()
        yield GaugeMetricFamily("facmon_rules_evaluation_lag_seconds", "Seconds since the last evaluation tick",
                                value=h.evaluation_lag_s if h.evaluation_lag_s is not None else float("nan"))
        yield GaugeMetricFamily("facmon_rules_mqtt_connected", "1 while subscribed to the broker",
                                value=1.0 if h.mqtt_subscribed else 0.0)
        yield CounterMetricFamily("facmon_rules_messages_handled", "Readings and status messages evaluated",
                                  value=h.messages_handled)
        yield GaugeMetricFamily("facmon_rules_outbox_depth", "Notifications waiting in the outbox",
                                value=h.outbox_depth)
        sent = CounterMetricFamily("facmon_rules_notifications_sent", "Notifications delivered, by integration",
                                   labels=["integration"])
        failed = CounterMetricFamily("facmon_rules_notifications_failed", "Failed delivery attempts, by integration",
                                     labels=["integration"])
        for target in sorted(set(h.sent) | set(h.failed)):
            sent.add_metric([target], h.sent.get(target, 0))
            failed.add_metric([target], h.failed.get(target, 0))
        yield sent
        yield failed
        yield GaugeMetricFamily("facmon_rules_heartbeat_last_sent_timestamp_seconds",
                                "When the watchdog last took a heartbeat (epoch s; NaN: never)",
                                value=h.heartbeat_last_sent_at if h.heartbeat_last_sent_at else float("nan"))
        yield GaugeMetricFamily("facmon_rules_ready", "1 when evaluating and subscribed", value=0 if h.not_ready else 1)


class RulesHttp(HttpEndpoint):
    """`/metrics`, `/healthz` and `/readyz` of the engine (not started)."""

    def __init__(self, listen: str, health: Callable[[], EngineHealth]) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Metrics(health))

        def ready(_query: object) -> Answer:
            reasons = health().not_ready
            body = json.dumps({"ready": not reasons, "reasons": list(reasons)}).encode()
            return 503 if reasons else 200, body, "application/json"

        host, port = listen.rsplit(":", 1)
        super().__init__(host, int(port), {
            "/metrics": lambda _q: (200, generate_latest(registry), "text/plain; version=0.0.4"),
            "/healthz": lambda _q: (200, b'{"status": "ok"}', "application/json"),
            "/readyz": ready,
        }, "rules-http", not_found=(404, b'{"error": "GET /metrics, /healthz or /readyz"}', "application/json"))
