"""The API's own figures in Prometheus text exposition format (version 0.0.4).

A few counters and one histogram do not need a client library: `ApiMetrics` counts requests by
route template (never the raw path, so ids cannot blow up the label set) and status, and times them.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Mapping

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels_text(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items()) + "}"


def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]) -> str:
    """One metric family: HELP, TYPE and its samples."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels_text(labels)} {value:g}" for labels, value in samples]
    return "\n".join(lines) + "\n"


class ApiMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self.mqtt_messages: dict[str, int] = {}
        """Messages the API's own subscription decoded, by outcome (reading/status/reject reason)."""

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (method, route, str(status))
            self._requests[key] = self._requests.get(key, 0) + 1
            buckets = self._buckets.setdefault(route, [0] * (len(LATENCY_BUCKETS_S) + 1))
            buckets[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
            self._sums[route] = self._sums.get(route, 0.0) + seconds
            self._counts[route] = self._counts.get(route, 0) + 1

    def count_mqtt(self, outcome: str) -> None:
        with self._lock:
            self.mqtt_messages[outcome] = self.mqtt_messages.get(outcome, 0) + 1

    def render(self) -> str:
        with self._lock:
            requests = sorted(self._requests.items())
            histo = {route: (list(b), self._sums[route], self._counts[route]) for route, b in self._buckets.items()}
            mqtt = sorted(self.mqtt_messages.items())
        out = [family("facmon_api_requests_total", "counter", "HTTP requests by method, route template and status",
                      [({"method": m, "route": r, "status": s}, n) for (m, r, s), n in requests])]
        lines = ["# HELP facmon_api_request_seconds HTTP request latency by route template",
                 "# TYPE facmon_api_request_seconds histogram"]
        for route, (buckets, total, count) in sorted(histo.items()):
            running = 0
            for bound, n in zip((*LATENCY_BUCKETS_S, float("inf")), buckets, strict=True):
                running += n
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                lines.append(f"facmon_api_request_seconds_bucket{labels_text({'route': route, 'le': le})} {running}")
            lines.append(f"facmon_api_request_seconds_sum{labels_text({'route': route})} {total:g}")
            lines.append(f"facmon_api_request_seconds_count{labels_text({'route': route})} {count}")
        out.append("\n".join(lines) + "\n")
        out.append(family("facmon_api_mqtt_messages_total", "counter",
                          "MQTT messages the API's subscription decoded, by outcome",
                          [({"outcome": o}, n) for o, n in mqtt]))
        return "".join(out)
