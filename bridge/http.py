"""The bridge's own HTTP endpoint: `/metrics` (Prometheus text), `/rejects` (the latest messages it
did not forward, JSON: `?reason=unmapped&limit=20`), `/healthz`. Read-only, on its own thread
(`core.http_endpoint`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from bridge.service import BridgeService
from core.http_endpoint import Answer, HttpEndpoint


class _Metrics(Collector):
    def __init__(self, service: BridgeService) -> None:
        self._service = service

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        s = self._service
        yield CounterMetricFamily("facmon_bridge_messages_received", "Foreign MQTT messages received",
                                  value=s.received)
        forwarded = CounterMetricFamily("facmon_bridge_messages_forwarded", "Contract messages published, by channel",
                                        labels=["channel"])
        for channel in ("reading", "status"):
            forwarded.add_metric([channel], s.forwarded[channel])
        yield forwarded
        dropped = CounterMetricFamily("facmon_bridge_messages_dropped", "Foreign messages not forwarded, by source "
                                      "and reason", labels=["source", "reason"])
        for (source, reason), n in sorted(s.rejects.by_source.items()):
            dropped.add_metric([source, reason], n)
        yield dropped
        yield GaugeMetricFamily("facmon_bridge_broker_connected", "1 when subscribed to the foreign topics",
                                value=int(s.subscriber.subscribed))
        yield GaugeMetricFamily("facmon_bridge_unacknowledged", "Contract messages the broker has not acknowledged",
                                value=s.publisher.unacknowledged())
        yield CounterMetricFamily("facmon_bridge_seq_state_writes", "fsynced rewrites of the seq state file",
                                  value=s.seqs.writes)
        yield CounterMetricFamily("facmon_bridge_readings_planned", "Readings forwarded by their topic's "
                                  "translation plan (the fast path; the rest take the general one)",
                                  value=s.translator.planned)
        yield CounterMetricFamily("facmon_bridge_messages_ignored", "Foreign messages of topics the mapping's "
                                  "ignore: lists, which no source takes", value=s.translator.ignored)


def metrics_text(service: BridgeService) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Metrics(service))
    return generate_latest(registry)


def rejects_json(service: BridgeService, reason: str | None, limit: int) -> bytes:
    return orjson.dumps({"counts": dict(sorted(service.rejects.by_reason.items())),
                         "recent": [e.as_dict() for e in service.rejects.recent(limit, reason)]})


def _rejects(service: BridgeService, query: Mapping[str, list[str]]) -> Answer:
    try:
        limit = max(1, min(int(query.get("limit", ["50"])[0]), 200))
    except ValueError:
        return 400, b'{"error": "limit must be a whole number (1-200)"}', "application/json"
    return 200, rejects_json(service, query.get("reason", [None])[0], limit), "application/json"


def bridge_http(service: BridgeService, host: str, port: int) -> HttpEndpoint:
    """The bridge's endpoint (not started). Raises OSError when it cannot listen."""
    return HttpEndpoint(host, port, {
        "/metrics": lambda _q: (200, metrics_text(service), "text/plain; version=0.0.4"),
        "/rejects": lambda query: _rejects(service, query),
        "/healthz": lambda _q: (200, b"ok\n", "text/plain"),
    }, "bridge-http")
