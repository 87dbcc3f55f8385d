"""`facmon api`: the HTTP API and the live status page (uvicorn), wired from the configuration."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import urllib3

from api.alert_feed import AlertFeed, alert_metrics
from api.app import create_app, publish_device_events
from api.deps import ApiServices, NotReady
from api.device_states import DeviceStates
from api.events import EventHub
from api.feed import FeedWatch, LiveFeed
from api.history import HistoryReader
from api.keys import KeyStore
from api.metrics import ApiMetrics
from api.mqtt import DeviceStateSubscription
from api.sites import SiteTree
from core.clock import Clock, SystemClock
from core.config import FacmonConfig
from core.influxql import InfluxQLClient, influxql_client_for
from core.known_devices import known_devices_for, load_sites
from core.site import quiet_limits
from rules.store import AlertStore

HELP = "serve the HTTP API (/api/v1) and the live status page (/status/)"
REPO = Path(__file__).resolve().parents[2]
SHIPPED_RULES = REPO / "rules" / "packs"
log = logging.getLogger("facmon.api")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", help="host:port (default: api.listen)")


class _Broker:
    name = "broker"

    def __init__(self, subscription: DeviceStateSubscription) -> None:
        self._subscription = subscription

    def check(self) -> str:
        if not self._subscription.connected:
            raise NotReady("not connected to the MQTT broker (mqtt.host/mqtt.port); device state is not updating")
        return "connected"


class _Influx:
    name = "influxdb"

    def __init__(self, client: InfluxQLClient) -> None:
        self._client = client

    def check(self) -> str:
        if not self._client.ping():
            raise NotReady(f"InfluxDB at {self._client.url} does not answer /ping; history is unavailable")
        return "ping ok"


class _RulesStore:
    name = "rules_store"

    def __init__(self, store: AlertStore) -> None:
        self._store = store

    def check(self) -> str:
        try:
            self._store.data_version()
        except Exception as err:  # sqlite3.Error and OSError alike mean "cannot read the store"
            raise NotReady(f"the rules store {self._store.path} cannot be read: {err}") from None
        return "readable"


class CollectorSpool:
    """The collector's spool depth, scraped from its /metrics (`facmon_collector_spool_bytes`)."""

    name = "collector_spool"
    _LINE = re.compile(r"^facmon_collector_spool_bytes(?:\{[^}]*\})? ([0-9.eE+-]+)$", re.M)

    def __init__(self, url: str, max_bytes: int) -> None:
        self.url = url
        self.max_bytes = max_bytes
        self._http = urllib3.PoolManager(maxsize=1, retries=False, timeout=urllib3.Timeout(total=2.0))

    def spool_bytes(self) -> float | None:
        try:
            response = self._http.request("GET", self.url)
        except urllib3.exceptions.HTTPError:
            return None
        match = self._LINE.search(response.data.decode("utf-8", "replace")) if response.status == 200 else None
        return float(match.group(1)) if match else None

    def check(self) -> str:
        depth = self.spool_bytes()
        if depth is None:
            raise NotReady(f"cannot read the collector's spool depth from {self.url}; is the collector running?")
        if depth > self.max_bytes:
            raise NotReady(f"the collector's spool holds {depth:.0f} bytes, over {self.max_bytes}; "
                           "InfluxDB is not keeping up or is down")
        return f"{depth:.0f} bytes"

    def metrics(self) -> str:
        depth = self.spool_bytes()
        if depth is None:
            return ""
        return ("# HELP facmon_api_collector_spool_bytes The collector's spool depth as the API last read it\n"
                "# TYPE facmon_api_collector_spool_bytes gauge\n"
                f"facmon_api_collector_spool_bytes {depth:g}\n")


@contextlib.contextmanager
def wired_services(config: FacmonConfig, clock: Clock) -> Iterator[ApiServices]:
    """Every part of the API built from `config`, closed on exit. `facmon up` uses this too."""
    settings = config.api
    sites = load_sites(config.sites.files)
    # By default /rules lists what the engine runs (rules.rule_files), not a list of its own.
    rule_files = settings.rule_files or tuple(config.rules.rule_files) or tuple(sorted(SHIPPED_RULES.glob("*.yaml")))
    states = DeviceStates(settings.stale_after_s, quiet_limits(sites.values()))
    hub = EventHub(settings.sse_queue_max, settings.sse_keepalive_s)
    influx_settings = config.influxdb
    influx = influxql_client_for(influx_settings)
    keys = KeyStore(settings.keys_db, clock)
    # The engine's own store file (rules.store_path), never a second setting that could point elsewhere:
    # acks and silences written here only reach the engine through this one SQLite file.
    store = AlertStore(config.rules.store_path, clock)
    services = ApiServices(settings=settings, clock=clock, states=states, sites=SiteTree(sites),
                           keys=keys, hub=hub, metrics=ApiMetrics(), history=HistoryReader(influx), alerts=store,
                           rule_files=rule_files)
    subscription = DeviceStateSubscription(
        config.mqtt, settings.mqtt_client_id, states, clock, config.collector.decode.limits(), services.metrics,
        lambda events: publish_device_events(services, events), known_devices_for(config.sites, sites.values()))
    checks: list = [_Broker(subscription), _Influx(influx), _RulesStore(store)]
    extra = [lambda: alert_metrics(store)]
    spool_url = settings.collector_metrics_url or (
        f"http://{config.collector.http_listen}/metrics" if config.collector.http_listen else None)
    if spool_url:
        spool = CollectorSpool(spool_url, settings.spool_ready_max_bytes or int(config.collector.spool.max_bytes * 0.9))
        checks.append(spool)
        extra.append(spool.metrics)
    services.readiness = checks
    services.extra_metrics = extra
    services.background = [subscription]
    services.feed = LiveFeed(lambda: subscription.subscribed, FeedWatch(settings.stale_after_s))
    services.pollers = [AlertFeed(store, hub, start_at=clock.now()).poll]
    try:
        yield services
    finally:
        store.close()
        keys.close()
        influx.close()


def run(args: argparse.Namespace, config: FacmonConfig) -> int:
    import uvicorn

    listen = args.listen or config.api.listen
    host, _, port = listen.rpartition(":")
    with wired_services(config, SystemClock()) as services:
        app = create_app(services)
        # uvloop and httptools (dependencies) when installed: with asyncio's loop and the pure-Python h11
        # parser the API spent 7-17% more CPU a request and had a longer latency tail at 200 requests/s
        # (benchmarks/README.md). No access log: a line per request at that rate costs CPU for nothing.
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
        log.info("api listening", extra={"listen": listen, "loop": loop, "http": http})
        uvicorn.run(app, host=host or "127.0.0.1", port=int(port), loop=loop, http=http, log_level="warning",
                    access_log=False)
    return 0
