"""Chaos scenarios against real servers (issue 18, item 4): a paced stream of QoS 1 readings from a
device fleet through Mosquitto, a `facmon collect` process and InfluxDB, one fault in the middle of
it, then counting what InfluxDB holds of what the broker acknowledged.

    run_scenario(workdir, "broker_sigkill", load) -> ChaosResult
        published   readings the broker acknowledged (PUBACK) to the devices: facmon's promise starts here
        stored      of those, how many InfluxDB holds
        lost        published − stored
        doubled     points beyond one per published reading (the same device and seq stored twice)
        recovery_s  from the fault's end until InfluxDB holds every reading published before it ended
                    (the lost ones excepted)
        peak spool, collector and broker memory (peak resident set, VmHWM)

Faults (each held for `load.fault_for_s`, then repaired):
    none               no fault: the reference for recovery and memory
    broker_sigkill     Mosquitto SIGKILLed (a power cut), restarted on its persistence file
    influx_stopped     InfluxDB stopped, started again
    collector_sigkill  the collector SIGKILLed, started again
    site_sigkill       the whole site server's power: broker, InfluxDB and collector SIGKILLed together,
                       then all started again on their files
    disk_full          InfluxDB stopped and the spool's own small disk filled by another writer (needs
                       root for the tmpfs), then the space freed and InfluxDB started

Used by tests/chaos/test_chaos.py (small, bounded) and benchmarks/chaos.py (longer runs, the table).
"""

from __future__ import annotations

import re
import threading
import urllib.request
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

from core.clock import SystemClock
from core.contract import Reading, encode_reading
from core.influxql import InfluxError, InfluxQLClient
from facmon.servers import InfluxDB, Mosquitto, free_port
from tests.integration.collector.harness import (
    CollectorProcess,
    collector_env,
    fill_disk,
    inverter_readings,
    mounted_tmpfs,
)
from tests.support import poll_until

SCENARIOS = ("broker_sigkill", "influx_stopped", "collector_sigkill", "site_sigkill", "disk_full")
DATABASE = "facmon"
DISK_MIB = 24
_CLOCK = SystemClock()


@dataclass(frozen=True)
class ChaosLoad:
    devices: int
    per_device: int
    rate_per_s: float
    fault_at_s: float
    """When the fault strikes, in seconds after the stream began."""
    fault_for_s: float
    """How long the fault lasts (a scenario parameter, not a wait for a condition)."""
    settle_s: float = 60.0
    """The longest wait for the pipeline to store everything once the stream and the fault are over."""


@dataclass(frozen=True)
class ChaosResult:
    scenario: str
    published: int
    stored: int
    lost: int
    doubled: int
    recovery_s: float | None
    """None when what was published before the fault's end never all arrived (see `lost`)."""
    peak_spool_bytes: int
    collector_peak_rss_bytes: int
    broker_peak_rss_bytes: int
    faults_seen: str
    """What the collector reported during the fault (spool write failures, write failures), as proof
    that the fault reached it."""


BROKER_CONF = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "facmon-broker.conf"


def at_risk_messages(rate_per_s: float, conf: Path = BROKER_CONF) -> int:
    """What a broker SIGKILL may lose under the shipped Mosquitto settings: the messages accepted since
    its last snapshot. With `autosave_on_changes true`, a snapshot every `autosave_interval` changes
    (each message stored is at least one), so at most that many messages; else one every
    `autosave_interval` seconds, so that long at `rate_per_s` (Mosquitto takes an option's last value)."""
    options: dict[str, str] = {}
    for line in conf.read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and not words[0].startswith("#"):
            options[words[0]] = words[1]
    interval = int(options.get("autosave_interval", "1800"))
    if options.get("persistence") != "true":
        raise ValueError(f"{conf}: persistence is off, so a broker SIGKILL loses its whole queue")
    if options.get("autosave_on_changes") == "true":
        return interval
    return int(interval * rate_per_s)


def peak_rss_bytes(pid: int | None) -> int:
    """VmHWM of a live process (its peak resident set so far); 0 if it is gone."""
    if pid is None:
        return 0
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return int(found.group(1)) * 1024 if found else 0


class FleetPublisher:
    """Devices publishing QoS 1 readings at a steady rate, in one thread, through a broker that may
    die and return (paho reconnects). Remembers which readings the broker acknowledged."""

    def __init__(self, port: int, readings: list[Reading], rate_per_s: float) -> None:
        self._readings = readings
        self._rate = rate_per_s
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="chaos-fleet", protocol=mqtt.MQTTv5)
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        self._client.reconnect_delay_set(0.05, 0.5)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        poll_until(self._client.is_connected, 10, what="the fleet connected")
        # PUBACKs come by packet id, which wraps at 65,535 and is given at publish(): the readings
        # waiting under each id, oldest first. (paho's MQTTMessageInfo.is_published() raises for a
        # message published while the broker was down, although paho sends it on reconnect.)
        self._waiting: dict[int, deque[int]] = defaultdict(deque)
        self._acked: set[int] = set()
        self._early: dict[int, int] = defaultdict(int)
        self._sent = 0
        self._lock = threading.Lock()
        self._client.on_publish = self._on_puback
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._publish, name="chaos-fleet", daemon=True)
        self.started_at = 0.0

    def start(self) -> None:
        self.started_at = _CLOCK.monotonic()
        self._thread.start()

    def _publish(self) -> None:
        for i, reading in enumerate(self._readings):
            if self._stop.wait(max(self.started_at + i / self._rate - _CLOCK.monotonic(), 0)):
                return
            # Not under the lock: paho calls on_publish holding its own locks (and may before publish returns).
            mid = self._client.publish(reading.device.reading_topic(), encode_reading(reading), qos=1).mid
            with self._lock:
                self._sent += 1
                if self._early[mid]:
                    self._early[mid] -= 1
                    self._acked.add(i)
                else:
                    self._waiting[mid].append(i)

    def _on_puback(self, _client: mqtt.Client, _userdata: object, mid: int, *_rest: object) -> None:
        with self._lock:
            if self._waiting[mid]:
                self._acked.add(self._waiting[mid].popleft())
            else:
                self._early[mid] += 1

    def finish(self, timeout_s: float) -> None:
        """Wait for the stream's end and for the broker's PUBACKs (those that will come)."""
        self._thread.join(timeout=timeout_s)
        # Messages in flight when the broker died may never be acknowledged (then they were not
        # published): wait for PUBACKs while they keep coming, at most 2 s without one.
        deadline = _CLOCK.monotonic() + timeout_s
        acked, changed_at = -1, _CLOCK.monotonic()
        while _CLOCK.monotonic() < deadline and _CLOCK.monotonic() - changed_at < 2.0:
            now_acked = len(self._acked)
            if now_acked == self._sent:
                return
            if now_acked != acked:
                acked, changed_at = now_acked, _CLOCK.monotonic()
            _CLOCK.sleep(0.05)

    def acknowledged(self) -> list[Reading]:
        with self._lock:
            return [self._readings[i] for i in sorted(self._acked)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._client.disconnect()
        self._client.loop_stop()


class _Watch:
    """Samples, every 0.1 s: the collector's spool bytes (its /metrics), the peaks of memory, the count
    of points stored up to a time, and the fault counters the collector reports."""

    def __init__(self, metrics_url: str, collector: CollectorProcess, broker: Mosquitto, influx: InfluxDB) -> None:
        self._url = metrics_url
        self._influx = influx
        self.fault_end_ms: int | None = None
        """Set when the fault is repaired: from then on, the points stamped up to it are counted."""
        self.stored_samples: list[tuple[float, int]] = []
        self._collector = collector
        self._broker = broker
        self.peak_spool = 0
        self.spool_now = -1
        self.collector_rss = 0
        self.broker_rss = 0
        self.spool_write_failures = 0
        self.influx_write_failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-watch", daemon=True)

    def __enter__(self) -> _Watch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        db = InfluxQLClient(self._influx.url, DATABASE)
        try:
            while not self._stop.wait(0.1):
                self._sample(db)
            # One more at the end: a collector that stored the last of it between two samples (a
            # backlog read and written in one go) must still show as recovered.
            self._sample(db)
        finally:
            db.close()

    def sample_stored(self, db: InfluxQLClient) -> None:
        """Count the points stamped up to the fault's end now (once it is set)."""
        if self.fault_end_ms is not None:
            with suppress(InfluxError, OSError):  # InfluxDB still starting: no sample this time
                self.stored_samples.append((_CLOCK.monotonic(), _count_until(db, self.fault_end_ms)))

    def _sample(self, db: InfluxQLClient) -> None:
        self.sample_stored(db)
        self.collector_rss = max(self.collector_rss, peak_rss_bytes(self._collector.pid))
        self.broker_rss = max(self.broker_rss, peak_rss_bytes(self._broker.pid))
        try:
            with urllib.request.urlopen(self._url, timeout=1) as response:
                text = response.read().decode()
        except OSError:
            return  # the collector is down (the fault) or starting
        self.spool_now = int(_metric(text, "facmon_collector_spool_bytes"))
        self.peak_spool = max(self.peak_spool, self.spool_now)
        self.spool_write_failures = max(self.spool_write_failures,
                                        int(_metric(text, "facmon_collector_spool_write_failures_total")))
        self.influx_write_failures = max(self.influx_write_failures,
                                         int(_metric(text, "facmon_collector_write_failures_total")))


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.eE+-]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def stored_seqs(db: InfluxQLClient) -> dict[str, list[int]]:
    series = db.query('SELECT seq FROM "inverter" GROUP BY device')
    return {s.tags["device"]: [row[1] for row in s.values] for s in series}


def _count_until(db: InfluxQLClient, until_ms: int) -> int:
    series = db.query(f'SELECT count(seq) FROM "inverter" WHERE time <= {until_ms}ms')
    return int(series[0].values[0][1]) if series else 0


@dataclass(frozen=True)
class _Site:
    broker: Mosquitto
    influx: InfluxDB
    collector: CollectorProcess
    spool_disk: Path
    metrics_url: str


@contextmanager
def _site(workdir: Path, scenario: str) -> Iterator[_Site]:
    """Broker, InfluxDB and a `facmon collect` process on free ports in `workdir`, the collector's
    spool on a small disk of its own for `disk_full`; all stopped (and unmounted) on exit."""
    with ExitStack() as stack:
        spool_root = workdir
        if scenario == "disk_full":
            spool_root = stack.enter_context(mounted_tmpfs(workdir / "disk", DISK_MIB))
        broker = Mosquitto(workdir / "broker")
        influx = InfluxDB(workdir / "influxd")
        for server in (broker, influx):
            server.start()
            stack.callback(server.stop)
            server.wait_ready(30)
        influx.create_database(DATABASE)
        http_port = free_port()
        env = collector_env(spool_root, broker.port, influx.url, DATABASE, client_id="chaos-collector", extra={
            "FACMON_COLLECTOR__HTTP_LISTEN": f"127.0.0.1:{http_port}",
            "FACMON_COLLECTOR__SPOOL__SEGMENT_BYTES": str(256 * 1024),
        })
        collector = CollectorProcess(env, workdir / "collector.log")
        collector.start()
        stack.callback(collector.stop)
        collector.wait_subscribed()
        yield _Site(broker, influx, collector, spool_root, f"http://127.0.0.1:{http_port}/metrics")


def _fault(scenario: str, site: _Site) -> Callable[[], object]:
    """Strike the fault now; returns its repair."""
    broker, influx, collector = site.broker, site.influx, site.collector
    if scenario == "none":  # the reference: the same load with no fault
        return lambda: None
    if scenario == "broker_sigkill":
        broker.kill()
        return lambda: (broker.start(), broker.wait_ready(30))
    if scenario == "influx_stopped":
        influx.stop()
        return lambda: (influx.start(), influx.wait_ready(30))
    if scenario == "collector_sigkill":
        collector.kill()
        return collector.start
    if scenario == "site_sigkill":  # the site server's power: every process at once, nothing saved
        collector.kill()
        broker.kill()
        influx.kill()

        def restart_all() -> None:
            for server in (broker, influx):
                server.start()
                server.wait_ready(30)
            collector.start()
        return restart_all
    if scenario == "disk_full":
        influx.stop()
        ballast = fill_disk(site.spool_disk)
        return lambda: (ballast.unlink(), influx.start(), influx.wait_ready(30))
    raise ValueError(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")


QUIET_S = 3.0
"""Once the stream and the fault are over, nothing new stored for this long with the spool empty: the
pipeline has settled (what is missing then is lost, not late)."""


def run_scenario(workdir: Path, scenario: str, load: ChaosLoad) -> ChaosResult:
    """One run of `scenario` under `load` in `workdir` (servers started and stopped here)."""
    step_ms = max(int(1000 * load.devices / load.rate_per_s), 1)
    readings = inverter_readings("chaos", load.devices, load.per_device, int(_CLOCK.now() * 1000), step_ms)
    pause = threading.Event()  # never set: waits below are the scenario's own timing
    with _site(workdir, scenario) as site:
        fleet = FleetPublisher(site.broker.port, readings, load.rate_per_s)
        with _Watch(site.metrics_url, site.collector, site.broker, site.influx) as watch:
            fleet.start()
            pause.wait(max(fleet.started_at + load.fault_at_s - _CLOCK.monotonic(), 0))
            repair = _fault(scenario, site)
            pause.wait(load.fault_for_s)
            repair()
            fault_end_ms, fault_end = int(_CLOCK.now() * 1000), _CLOCK.monotonic()
            watch.fault_end_ms = fault_end_ms
            published = fleet_done(fleet, load)
            db = InfluxQLClient(site.influx.url, DATABASE)
            stored = _settle(db, published, watch, load.settle_s)
            # On a busy machine a sampling round can take longer than the last writes: one more
            # sample, so a recovery that happened is not reported as none (at worst, a little late).
            watch.sample_stored(db)
            fleet.close()
            db.close()
    published_keys = {(r.device.device, r.seq) for r in published}
    stored_keys = {(device, seq) for device, seqs in stored.items() for seq in seqs}
    kept = published_keys & stored_keys
    kept_before_end = sum(1 for r in published if r.ts_ms <= fault_end_ms and (r.device.device, r.seq) in kept)
    recovered = next((t for t, n in watch.stored_samples if n >= kept_before_end), None)
    return ChaosResult(scenario, len(published_keys), len(kept), len(published_keys) - len(kept),
                       sum(len(seqs) for seqs in stored.values()) - len(stored_keys),
                       None if recovered is None else max(recovered - fault_end, 0.0), watch.peak_spool,
                       watch.collector_rss, watch.broker_rss,
                       f"spool write failures {watch.spool_write_failures}, "
                       f"influx write failures {watch.influx_write_failures}")


def _settle(db: InfluxQLClient, published: list[Reading], watch: _Watch, limit_s: float) -> dict[str, list[int]]:
    """Poll InfluxDB until it holds every published reading, or nothing changed for QUIET_S with the
    spool empty, or `limit_s`; the seqs stored per device."""
    wanted = {(r.device.device, r.seq) for r in published}
    deadline = _CLOCK.monotonic() + limit_s
    last_rows, last_change = -1, _CLOCK.monotonic()
    stored: dict[str, list[int]] = {}
    while _CLOCK.monotonic() < deadline:
        stored = stored_seqs(db)
        rows = sum(len(seqs) for seqs in stored.values())
        if wanted <= {(device, seq) for device, seqs in stored.items() for seq in seqs}:
            break
        if rows != last_rows:
            last_rows, last_change = rows, _CLOCK.monotonic()
        elif watch.spool_now == 0 and _CLOCK.monotonic() - last_change >= QUIET_S:
            break
        _CLOCK.sleep(0.1)
    return stored


def fleet_done(fleet: FleetPublisher, load: ChaosLoad) -> list[Reading]:
    fleet.finish(timeout_s=load.devices * load.per_device / load.rate_per_s + 30)
    return fleet.acknowledged()
