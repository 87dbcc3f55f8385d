"""The bridge's own HTTP endpoint: `/metrics` (Prometheus text), `/rejects` (the latest messages it
did not forward, JSON: `?reason=unmapped&limit=20`), `/healthz`. Read-only, on its own thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from bridge.service import BridgeService


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


def metrics_text(service: BridgeService) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Metrics(service))
    return generate_latest(registry)


def rejects_json(service: BridgeService, reason: str | None, limit: int) -> bytes:
    return orjson.dumps({"counts": dict(sorted(service.rejects.by_reason.items())),
                         "recent": [e.as_dict() for e in service.rejects.recent(limit, reason)]})


class BridgeHttp:
    def __init__(self, service: BridgeService, host: str, port: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/metrics":
                    self._send(200, metrics_text(service), "text/plain; version=0.0.4")
                elif url.path == "/rejects":
                    query = parse_qs(url.query)
                    try:
                        limit = max(1, min(int(query.get("limit", ["50"])[0]), 200))
                    except ValueError:
                        self._send(400, b'{"error": "limit must be a whole number (1-200)"}', "application/json")
                        return
                    self._send(200, rejects_json(service, query.get("reason", [None])[0], limit), "application/json")
                elif url.path == "/healthz":
                    self._send(200, b"ok\n", "text/plain")
                else:
                    self._send(404, b"not found: try /metrics, /rejects or /healthz\n", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:  # access logs would flood; metrics say enough
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="bridge-http", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
