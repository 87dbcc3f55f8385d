"""`facmon up`: the whole stack on one machine. With local defaults it starts its own Mosquitto and
InfluxDB (Debian's binaries, data under ./var), then the collector, simulators, rules engine and API
as child processes, restarts any that dies, and stops everything on Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from core.clock import SystemClock
from core.config import FacmonConfig
from core.files import write_atomically
from facmon.live_stack import LOOPBACK_HOSTS
from facmon.servers import InfluxDB, Mosquitto, ServerError, ServerProcess
from facmon.supervise import ChildSpec, Supervisor

HELP = "run everything: local broker + InfluxDB (unless configured external), collector, simulators, rules, API"
log = logging.getLogger("facmon.up")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-simulators", action="store_true", help="do not run the simulated devices")
    parser.add_argument("--replay", default="24h",
                        help="how far back the simulated park fills what InfluxDB does not hold yet (default 24h: "
                             "a day of history at the first start; a restart adds only what is missing)")
    parser.add_argument("--script", default="day-in-the-life",
                        help="scenario played live after the replay (default day-in-the-life: a grid outage, a "
                             "lossy ISP and after-hours presence in minutes), or 'none'")
    parser.add_argument("--script-replayed", action="store_true",
                        help="place the script so it ends now: it is replayed with the past in seconds (tests)")
    parser.epilog = ("Local servers listen on loopback ports of their own (local.broker_port, default 11883; "
                     "local.influxdb_port, default 18086) so they never clash with a system broker or InfluxDB. "
                     "Set local.start_broker / local.start_influxdb to false to use the servers in mqtt.* / "
                     "influxdb.* instead. Logs of every process are in <local.var_dir>/log/.")


DEMO_SITE = Path(__file__).resolve().parents[2] / "simulators" / "sites" / "park.yaml"


def _has_command(name: str) -> bool:
    return importlib.util.find_spec(f"facmon.commands.{name}") is not None


def child_specs(config: FacmonConfig, simulators: bool, replay: str = "24h", script: str = "day-in-the-life",
                script_replayed: bool = False) -> list[ChildSpec]:
    """Collector, API, rules engine and the simulated park, all at once. The park is one world that
    goes on across restarts (simulators/timeline.py, kept in <var>/simulators/world.json): each start
    publishes what InfluxDB does not hold yet, at most `replay` back, as fast as it goes, then the
    `script` live, then the ordinary days. With the park, the rules engine runs on `rules.clock:
    catch_up` (set by `run`): the replayed past on its readings' time, so its alerts are in the
    history at the times they happened, then the wall clock."""
    run_simulators = simulators and _has_command("simulate")
    specs = [ChildSpec("collector", (("collect",),))]
    if config.bridge.mappings and _has_command("bridge"):  # real devices through their own software
        specs.append(ChildSpec("bridge", (("bridge",),)))
    if _has_command("api"):
        specs.append(ChildSpec("api", (("api",),)))
    if run_simulators:
        world = str(config.local.var_dir.resolve() / "simulators" / "world.json")
        command = ("simulate", "--world", world, "--replay", replay, "--quiet")
        if config.rules.http_listen and _has_command("rules"):
            # The rules engine judges the replayed past: it must be subscribed before the past goes by.
            command += ("--wait-for", f"http://{config.rules.http_listen}/readyz")
        if script != "none":
            command += ("--script", script) + (("--script-replayed",) if script_replayed else ())
        specs.append(ChildSpec("simulators", (command,)))
    if _has_command("rules"):  # after the simulators: stopped before them, so their wills page nobody
        specs.append(ChildSpec("rules", (("rules", "run"),)))
    return specs


def _start_servers(config: FacmonConfig, env: dict[str, str]) -> list[ServerProcess]:
    local = config.local
    var = local.var_dir.resolve()
    servers: list[ServerProcess] = []
    if local.start_broker:
        broker = Mosquitto(var / "mosquitto", local.broker_port)
        servers.append(broker)
        env.update({"FACMON_MQTT__HOST": broker.host, "FACMON_MQTT__PORT": str(broker.port)})
    if local.start_influxdb:
        influx = InfluxDB(var / "influxdb", local.influxdb_port)
        servers.append(influx)
        env.update({"FACMON_INFLUXDB__API": "v1", "FACMON_INFLUXDB__URL": influx.url})
    for server in servers:
        server.start()
        server.wait_ready(60)
        log.info("server ready", extra={"server": type(server).__name__, "address": f"{server.host}:{server.port}",
                                        "data": str(server.workdir)})
    return servers


def run(args: argparse.Namespace, config: FacmonConfig) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    var = config.local.var_dir.resolve()
    env = dict(os.environ)
    env["FACMON_LOCAL__VAR_DIR"] = str(var)  # the children keep their state (spool, keys, alerts) in the same place
    env["FACMON_SIMULATE__INTO_LIVE_SITE"] = "true"  # its simulators are the live site; a tester's run is not
    demo = not config.sites.files
    if demo:  # the demo: every stage watches the park the simulators play
        env["FACMON_SITES__FILES"] = str(DEMO_SITE)
    viewer_token = demo_viewer_token(config) if demo and _loopback(config.api.listen) else None
    servers: list[ServerProcess] = []
    supervisor = None
    try:
        servers = _start_servers(config, env)
        simulators = not args.no_simulators and config.local.run_simulators
        if simulators:  # the replayed past on its own time, then the wall clock (rules/replay.py)
            env.setdefault("FACMON_RULES__CLOCK", "catch_up")
        supervisor = Supervisor(child_specs(config, simulators, args.replay, args.script, args.script_replayed),
                                env, var / "log", SystemClock(), config.local.restart_backoff_max_s)
        supervisor.start()
        _announce(config, env, viewer_token)
        feed = _FeedTail(config)
        while not stop.wait(0.5):
            feed.print_new()
            supervisor.check()
            for server in servers:
                if not server.running:
                    log.warning("server died; restarting", extra={"server": type(server).__name__,
                                                                  "log_tail": server.log_tail(5)})
                    server.restart(60)
    except ServerError as err:
        log.error("cannot start a local server", extra={"error": str(err)})
        return 1
    finally:
        log.info("stopping")
        if supervisor:
            supervisor.stop()
        for server in reversed(servers):
            server.stop()
    log.info("stopped cleanly")
    return 0


def _loopback(listen: str) -> bool:
    return listen.rpartition(":")[0].strip("[]") in LOOPBACK_HOSTS


DEMO_VIEWER = "demo viewer (facmon up)"


def demo_viewer_token(config: FacmonConfig) -> str:
    """The demo's viewer key, made at the first start and kept in <var>/demo-viewer.key (mode 0600), so
    the printed link opens the status page signed in. Only for the demo (no site files configured)
    on a loopback API: a real site's keys are made with `facmon keys create`. A revoked or lost demo
    key is replaced."""
    from api.keys import KeyStore, Role

    token_file = config.local.var_dir.resolve() / "demo-viewer.key"
    store = KeyStore(config.api.keys_db, SystemClock())
    try:
        token = token_file.read_text().strip() if token_file.exists() else ""
        if token and store.authenticate(token) is not None:
            return token
        _, token = store.create(DEMO_VIEWER, Role.VIEWER)
    finally:
        store.close()
    token_file.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(token_file, token + "\n", 0o600)
    return token


def _announce(config: FacmonConfig, env: dict[str, str], viewer_token: str | None) -> None:
    lines = [
        f"  MQTT broker      mqtt://{env.get('FACMON_MQTT__HOST', config.mqtt.host)}:"
        f"{env.get('FACMON_MQTT__PORT', config.mqtt.port)}",
        f"  InfluxDB         {env.get('FACMON_INFLUXDB__URL', config.influxdb.url)} "
        f"(database {config.influxdb.database})",
    ]
    if config.collector.http_listen:
        lines.append(f"  collector        http://{config.collector.http_listen}/metrics")
    if config.rules.http_listen and _has_command("rules"):
        rules_http = env.get("FACMON_RULES__HTTP_LISTEN", config.rules.http_listen)
        lines.append(f"  rules engine     http://{rules_http}/metrics")
    if config.bridge.mappings and config.bridge.http_listen:
        lines.append(f"  bridge           http://{config.bridge.http_listen}/rejects")
    if _has_command("api"):
        lines.append(f"  API + status     http://{config.api.listen}/status/")
        if viewer_token:
            lines.append(f"  signed in        http://{config.api.listen}/status/#key={viewer_token}  (the demo's "
                         "viewer key; operator keys: facmon keys create --name NAME --role operator)")
    lines.append(f"  logs             {Path(config.local.var_dir).resolve() / 'log'}/")
    lines.append("  notifications    printed here as NOTIFY lines, and on the status page's feed")
    print("facmon is up (Ctrl-C stops everything):\n" + "\n".join(lines), flush=True)


class _FeedTail:
    """Prints the rules engine's notifications feed (rules store) as NOTIFY lines in this terminal,
    starting from what is new after `facmon up` started."""

    def __init__(self, config: FacmonConfig) -> None:
        from facmon.commands.notify import print_new_feed
        from rules.store import AlertStore

        self._print_new = print_new_feed
        self._store = AlertStore(config.rules.store_path, SystemClock())
        newest = self._store.feed(0, limit=1)
        self._last_id = newest[0].id if newest else 0

    def print_new(self) -> None:
        self._last_id = self._print_new(self._store, self._last_id, sys.stdout)
