"""The collector's own HTTP endpoint: `/metrics` (Prometheus text), `/state` (device state as JSON),
`/healthz`. Read-only, on its own thread; it only reads counters the collector thread updates."""

from __future__ import annotations

import json
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from collector.service import LAG_BUCKETS_S, CollectorService
from core.contract import format_ts
from core.http_endpoint import HttpEndpoint


class _ServiceMetrics(Collector):
    def __init__(self, service: CollectorService) -> None:
        self._service = service

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        s = self._service
        counts = s.ingest.counts
        seq = s.table.counts
        drain = s.drain.counts
        yield CounterMetricFamily("facmon_collector_messages_received", "MQTT messages received",
                                  value=counts.received)
        yield CounterMetricFamily("facmon_collector_readings_accepted", "Valid readings spooled for InfluxDB",
                                  value=counts.readings)
        yield CounterMetricFamily("facmon_collector_status_messages", "online/offline status messages",
                                  value=counts.statuses)
        rejected = CounterMetricFamily("facmon_collector_messages_rejected", "Messages rejected, by reason",
                                       labels=["reason"])
        for reason, n in sorted(counts.rejected.items()):
            rejected.add_metric([reason], n)
        rejected.add_metric(["influx_refused"], drain.lines_refused)
        yield rejected
        yield CounterMetricFamily("facmon_collector_duplicates", "Redelivered/repeated readings stored once",
                                  value=seq.duplicates)
        yield CounterMetricFamily("facmon_collector_sequence_gaps", "Readings devices numbered but never sent us",
                                  value=seq.gaps)
        yield CounterMetricFamily("facmon_collector_device_restarts", "Device seq counters that restarted",
                                  value=seq.restarts)
        yield CounterMetricFamily("facmon_collector_clock_steps_back",
                                  "Device restarts with the clock behind what the device had sent (no RTC)",
                                  value=seq.clock_steps_back)
        yield CounterMetricFamily("facmon_collector_sequence_jumps",
                                  "Device seq counters that leapt further than readings could be numbered",
                                  value=seq.jumps)
        yield CounterMetricFamily("facmon_collector_messages_acked", "Messages acknowledged to the broker",
                                  value=s.acked)
        yield GaugeMetricFamily("facmon_collector_spool_bytes", "Bytes in the spool not yet confirmed by InfluxDB",
                                value=s.spool.pending_bytes)
        yield from _spool_health(s)
        yield CounterMetricFamily("facmon_collector_points_written", "Points InfluxDB confirmed",
                                  value=drain.lines_written)
        yield CounterMetricFamily("facmon_collector_write_failures", "Failed InfluxDB write attempts",
                                  value=drain.write_failures)
        yield CounterMetricFamily("facmon_collector_write_seconds", "Time spent in confirmed InfluxDB writes",
                                  value=drain.write_seconds_total)
        yield GaugeMetricFamily("facmon_collector_influx_up", "1 if the last InfluxDB write succeeded",
                                value=int(drain.influx_up))
        yield GaugeMetricFamily("facmon_collector_last_write_time_seconds",
                                "Unix time of the last write InfluxDB confirmed (0: none yet); alert on its age",
                                value=drain.last_write_at)
        yield GaugeMetricFamily("facmon_collector_broker_connected", "1 while connected to the MQTT broker",
                                value=int(s.source.connected))
        yield GaugeMetricFamily("facmon_collector_broker_connected_since_seconds",
                                "Unix time the current broker connection was made (0 while disconnected)",
                                value=s.source.connected_since if s.source.connected else 0)
        yield GaugeMetricFamily("facmon_collector_devices", "Devices seen", value=len(s.table))
        lag = s.store_lag
        cumulative, running = [], 0
        for bound, n in zip((*LAG_BUCKETS_S, float("inf")), lag.bucket_counts, strict=True):
            running += n
            cumulative.append((str(bound) if bound != float("inf") else "+Inf", running))
        yield HistogramMetricFamily("facmon_collector_store_lag_seconds",
                                    "Device timestamp to InfluxDB confirmation, per point",
                                    buckets=cumulative, sum_value=lag.sum_s)


BACK_PRESSURE_REASONS = ("spool_full", "spool_unwritable")


def _spool_health(s: CollectorService) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
    """Whether the spool takes messages, and if not why: what an operator or a rule alerts on."""
    reason = s.back_pressure()
    back_pressure = GaugeMetricFamily("facmon_collector_back_pressure",
                                      "1 while the collector withholds acknowledgements, by reason (the broker "
                                      "queues meanwhile: watch its queue limit)", labels=["reason"])
    for name in BACK_PRESSURE_REASONS:
        back_pressure.add_metric([name], int(reason == name))
    yield back_pressure
    yield GaugeMetricFamily("facmon_collector_spool_writable",
                            "0 while the spool's disk refuses writes (full, I/O error); lines wait in memory",
                            value=int(s.spool.writable))
    yield CounterMetricFamily("facmon_collector_spool_write_failures",
                              "Spool commits the disk refused (each retried, nothing acknowledged meanwhile)",
                              value=s.spool.write_failures)
    yield GaugeMetricFamily("facmon_collector_spool_unwritten_bytes",
                            "Spool bytes held in memory, not yet written to its disk", value=s.spool.unwritten_bytes)
    yield GaugeMetricFamily("facmon_collector_spool_max_bytes",
                            "The spool's bound in force: collector.spool.max_bytes or the disk's room if less",
                            value=s.spool.max_bytes)
    yield GaugeMetricFamily("facmon_collector_messages_held",
                            "Messages received and held unacknowledged until the spool takes them",
                            value=s.held_messages)
    yield CounterMetricFamily("facmon_collector_spool_cursor_write_failures",
                              "Spool cursor records the disk refused (a restart re-sends confirmed lines)",
                              value=s.spool.cursor_write_failures)
    yield CounterMetricFamily("facmon_collector_dead_letter_write_failures",
                              "Rejects the dead-letter file could not take (their facmon_rejects point still goes)",
                              value=s.dead_letter_write_failures)


def _spool_state(service: CollectorService) -> dict[str, object]:
    spool = service.spool
    return {"back_pressure": service.back_pressure(), "writable": spool.writable, "last_error": spool.last_error,
            "write_failures": spool.write_failures, "pending_bytes": spool.pending_bytes,
            "unwritten_bytes": spool.unwritten_bytes, "max_bytes": spool.max_bytes,
            "configured_max_bytes": spool.configured_max_bytes, "held_messages": service.held_messages}


def _state_json(service: CollectorService) -> bytes:
    devices = []
    for snap in service.table.snapshot():
        devices.append({
            "site": snap.device.site, "kind": snap.device.kind.value, "device": snap.device.device,
            "online": snap.online, "clock_steps_back": snap.clock_steps_back,
            "last_seen": format_ts(int(snap.last_seen * 1000)) if snap.last_seen else None,
            "latest": None if snap.latest is None else {
                "ts": format_ts(snap.latest.ts_ms), "seq": snap.latest.seq, **snap.latest.metrics},
        })
    return json.dumps({"devices": devices, "spool": _spool_state(service)}, ensure_ascii=False).encode()


def metrics_registry(service: CollectorService) -> CollectorRegistry:
    """A registry holding only `service`'s metrics: what `/metrics` serves."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ServiceMetrics(service))
    return registry


def metrics_text(service: CollectorService) -> bytes:
    """`/metrics` of `service`, in the Prometheus text format."""
    return generate_latest(metrics_registry(service))


class CollectorHttp(HttpEndpoint):
    """`/metrics`, `/state` and `/healthz` of `service` (not started)."""

    def __init__(self, service: CollectorService, host: str, port: int) -> None:
        registry = metrics_registry(service)
        super().__init__(host, port, {
            "/metrics": lambda _q: (200, generate_latest(registry), "text/plain; version=0.0.4; charset=utf-8"),
            "/state": lambda _q: (200, _state_json(service), "application/json"),
            "/healthz": lambda _q: (200, b'{"status":"ok"}', "application/json"),
        }, "collector-http",
            not_found=(404, b'{"error":"not found; try /metrics, /state or /healthz"}', "application/json"))
