"""Real servers for `facmon up` and for the tests: Debian's Mosquitto and InfluxDB 1.x, each run from a
directory of its own on a loopback port. (The servers only tests need, an InfluxDB v2 write API in
front of 1.x and Alertmanager, are in tests/servers.py, on the same `ServerProcess`.)

Every server class has the same lifecycle:

    server = InfluxDB(workdir)        # writes nothing yet; picks a free port unless given one
    server.start()                    # writes its config into workdir, starts the process
    server.wait_ready(timeout_s=10)   # polls until it serves, else ServerNotReady with its log tail
    server.restart()                  # stop + start + wait_ready, same port and data
    server.kill()                     # SIGKILL (a crash, for tests), data as the crash left it
    server.stop()                     # SIGTERM, SIGKILL after a bounded wait; safe to call twice

or `with InfluxDB(workdir) as server:` (start + wait_ready, stop on exit, even on error).
The port is fixed at construction, so clients survive a restart.

Exceptions:

    ServerError                 the server binary is missing, or a call was made in the wrong state
    └── ServerNotReady          it did not serve within the deadline (message ends with its log tail)
        └── ServerExited        it exited while we waited (bad config, port taken...)
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import textwrap
from pathlib import Path
from typing import Any, Self

from core.clock import Clock, SystemClock

LOOPBACK = "127.0.0.1"
BROKER_CONF = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "facmon-broker.conf"
SHIPPED_MOSQUITTO_CONF = BROKER_CONF.with_name("mosquitto.conf")
AUTH_OPTIONS = ("allow_anonymous", "password_file", "acl_file", "use_username_as_clientid")
"""The lines of the shipped mosquitto.conf that decide who may connect, with which client id, to what."""
LOG_TAIL_LINES = 30


class ServerError(Exception):
    """A server could not be started or driven (binary missing, wrong state)."""


class ServerNotReady(ServerError):
    """The server did not start serving before the deadline."""


class ServerExited(ServerNotReady):
    """The server process exited while it was expected to run."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now (the OS picks it).

    Another process may take it before the server binds it; the server then fails to start with
    `ServerExited` saying the address is in use, and the caller may retry with a new port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def running_as_root() -> bool:
    return os.geteuid() == 0


def http_status(host: str, port: int, path: str, timeout_s: float = 1.0) -> int | None:
    """The HTTP status of GET path, or None when nothing answers yet."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


class ServerProcess:
    """One server process run from `workdir`. Subclasses say how to configure, launch and probe it."""

    name = "server"
    binary = ""
    debian_package = ""
    scheme = "http"

    def __init__(self, workdir: Path, port: int | None = None, *, clock: Clock | None = None) -> None:
        self.workdir = Path(workdir)
        self.host = LOOPBACK
        self.port = port if port is not None else free_port()
        self._clock: Clock = clock or SystemClock()
        self._process: subprocess.Popen[bytes] | None = None

    # --- what a subclass provides ---------------------------------------------------------------
    def _write_config(self) -> None:
        raise NotImplementedError

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _serving(self) -> bool:
        """True once the server answers its readiness probe."""
        raise NotImplementedError

    def _log_files(self) -> list[Path]:
        """The server's own log files, besides its captured stdout/stderr."""
        return []

    # --- lifecycle ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Where clients connect, e.g. `http://127.0.0.1:41234` (`mqtt://...` for the broker)."""
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def output_log(self) -> Path:
        """Where the process's stdout and stderr go."""
        return self.workdir / f"{self.name}.out"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Write the config and start the process (does not wait for it to serve: see wait_ready).

        Raises ServerError if the binary is not installed or the server is already running."""
        if self.running:
            raise ServerError(f"{self.name} is already running (pid {self.pid}); stop() it first")
        if shutil.which(self.binary) is None:
            raise ServerError(f"{self.binary} not found: install the Debian package {self.debian_package}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        with self.output_log.open("ab") as out:
            # A session of its own, so a SIGKILL can reach the whole group (nginx's workers too)
            # and a Ctrl-C meant for the caller does not kill the server mid-test.
            self._process = subprocess.Popen(
                self._command(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.workdir, start_new_session=True,
            )

    def wait_ready(self, timeout_s: float = 10.0, interval_s: float = 0.02) -> None:
        """Poll the readiness probe until it passes.

        Raises ServerExited at once if the process dies, ServerNotReady after `timeout_s`; both
        messages end with the tail of the server's logs."""
        deadline = self._clock.monotonic() + timeout_s
        while True:
            if self._process is None:
                raise ServerError(f"{self.name} was never started: call start() first")
            code = self._process.poll()
            if code is not None:
                raise ServerExited(f"{self.name} exited with status {code} while starting\n{self.log_tail()}")
            if self._serving():
                return
            if self._clock.monotonic() >= deadline:
                raise ServerNotReady(
                    f"{self.name} on {self.host}:{self.port} did not become ready within {timeout_s:g} s\n"
                    f"{self.log_tail()}")
            self._clock.sleep(interval_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (a clean shutdown: Mosquitto saves its database), then SIGKILL to the process
        group if it has not exited within `timeout_s`. Does nothing if not running."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._kill_group(process)
        self._kill_group(process)  # leftovers of the group, e.g. nginx workers of a killed master
        self._process = None

    def kill(self) -> None:
        """SIGKILL the server and its process group: a crash, nothing saved on the way out."""
        if self._process is not None:
            self._kill_group(self._process)
            self._process = None

    def restart(self, timeout_s: float = 10.0) -> None:
        """Stop cleanly, start again on the same port with the same data, wait until ready."""
        self.stop(timeout_s)
        self.start()
        self.wait_ready(timeout_s)

    @staticmethod
    def _kill_group(process: subprocess.Popen[bytes]) -> None:
        # A group id stays reserved while any member lives; once all are gone killpg finds nothing
        # (unless the pid was reused as a new session leader in between, which Linux makes remote).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of each of the server's logs, labelled, for error messages."""
        parts = []
        for path in [self.output_log, *self._log_files()]:
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path} (last {len(text)} lines) ---\n" + "\n".join(text))
            else:
                parts.append(f"--- {path}: not written ---")
        return "\n".join(parts)

    def __enter__(self) -> Self:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.workdir)!r}, port={self.port}, pid={self.pid})"


def shipped_auth_config(auth_dir: Path, conf: Path = SHIPPED_MOSQUITTO_CONF) -> list[str]:
    """The authentication lines (`AUTH_OPTIONS`) of the shipped mosquitto.conf, in its order, with
    the passwd and acl files taken from `auth_dir` (where `facmon acl generate --out` wrote them).

    Raises ServerError if the shipped file has none of them (it would then test nothing)."""
    lines = []
    for line in conf.read_text().splitlines():
        key, _, value = line.strip().partition(" ")
        if key not in AUTH_OPTIONS:
            continue
        if key in ("password_file", "acl_file"):
            value = str(Path(auth_dir) / Path(value.strip()).name)
        lines.append(f"{key} {value.strip()}")
    if not any(line.startswith("password_file ") for line in lines):
        raise ServerError(f"{conf} has no password_file line: no authentication to reproduce")
    return lines


class Mosquitto(ServerProcess):
    """Mosquitto 2.0 with facmon's shipped broker settings (deploy/mosquitto/facmon-broker.conf)
    plus a loopback listener, persistence in `workdir` and a log file there; anonymous access, or,
    with `auth_dir`, the shipped mosquitto.conf's authentication (`shipped_auth_config`: password and
    ACL files from `facmon acl generate`, client ids bound to usernames) on that listener.

    Anonymous access is for tests and `facmon up` on loopback only; a deployed broker adds its own
    authentication to the shipped file instead."""

    name = "mosquitto"
    binary = "/usr/sbin/mosquitto"
    debian_package = "mosquitto"
    scheme = "mqtt"

    def __init__(self, workdir: Path, port: int | None = None, *, broker_conf: Path = BROKER_CONF,
                 extra_config: str = "", auth_dir: Path | None = None, clock: Clock | None = None) -> None:
        super().__init__(workdir, port, clock=clock)
        self.broker_conf = broker_conf
        self.auth_dir = auth_dir
        """Where `passwd` and `acl` are; None: anonymous access."""
        self.extra_config = extra_config
        """Appended verbatim after the generated lines (a test may override a shipped value)."""

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def persistence_path(self) -> Path:
        return self.data_dir / "mosquitto.db"

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        generated = [
            "",
            "# --- generated by facmon.servers.Mosquitto ---",
            f"listener {self.port} {self.host}",
            # After the listener line: use_username_as_clientid is a per-listener option.
            *(shipped_auth_config(self.auth_dir) if self.auth_dir is not None else ["allow_anonymous true"]),
            f"persistence_location {self.data_dir}/",
            "persistence_file mosquitto.db",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        ]
        if running_as_root():
            # As root Mosquitto drops privileges to user `mosquitto`, which cannot write workdir.
            generated.append("user root")
        text = self.broker_conf.read_text() + "\n".join(generated) + "\n" + self.extra_config
        self.config_path.write_text(text)

    def _command(self) -> list[str]:
        return [self.binary, "-c", str(self.config_path)]

    def _log_files(self) -> list[Path]:
        return [self.log_path]

    def _serving(self) -> bool:
        if self.auth_dir is not None:
            return self._refuses_anonymous()
        # A real MQTT 3.1.1 CONNECT/CONNACK, not just an open port: the broker accepts sessions.
        connect = bytes([0x10, 0x18, 0x00, 0x04]) + b"MQTT" + bytes([0x04, 0x02, 0x00, 0x05, 0x00, 0x0c]) + \
            b"facmon-probe"
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                sock.sendall(connect)
                connack = sock.recv(4)
                sock.sendall(bytes([0xE0, 0x00]))  # DISCONNECT, so no will and no session linger
        except OSError:
            return False
        return connack == bytes([0x20, 0x02, 0x00, 0x00])

    def _refuses_anonymous(self) -> bool:
        # With authentication, serving means answering an anonymous MQTT 3.1.1 CONNECT with CONNACK
        # "not authorized" (5).
        connect = bytes([0x10, 0x0E, 0x00, 0x04]) + b"MQTT" + bytes([0x04, 0x02, 0x00, 0x05, 0x00, 0x02]) + b"px"
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                sock.sendall(connect)
                return sock.recv(4) == bytes([0x20, 0x02, 0x00, 0x05])
        except OSError:
            return False


class InfluxDB(ServerProcess):
    """InfluxDB 1.x (`influxd`) with meta, data and WAL in `workdir`, HTTP on `port`, the RPC
    (backup) port moved off 8088 to a free one, usage reporting and self-monitoring off."""

    name = "influxd"
    binary = "/usr/bin/influxd"
    debian_package = "influxdb"

    def __init__(self, workdir: Path, port: int | None = None, *, clock: Clock | None = None) -> None:
        super().__init__(workdir, port, clock=clock)
        self.rpc_port = free_port()

    @property
    def config_path(self) -> Path:
        return self.workdir / "influxdb.conf"

    def _write_config(self) -> None:
        d = self.workdir
        self.config_path.write_text(textwrap.dedent(f"""\
            reporting-disabled = true
            bind-address = "{self.host}:{self.rpc_port}"

            [meta]
              dir = "{d}/meta"
              logging-enabled = false

            [data]
              dir = "{d}/data"
              wal-dir = "{d}/wal"
              query-log-enabled = false

            [monitor]
              store-enabled = false

            [http]
              enabled = true
              bind-address = "{self.host}:{self.port}"
              log-enabled = false
              auth-enabled = false

            [logging]
              level = "warn"
              suppress-logo = true

            [continuous_queries]
              log-enabled = false

            [subscriber]
              enabled = false
            """))

    def _command(self) -> list[str]:
        return [self.binary, "-config", str(self.config_path)]

    def _serving(self) -> bool:
        return http_status(self.host, self.port, "/ping") == 204

    def client(self, database: str) -> Any:
        """An `core.influxql.InfluxQLClient` for `database` on this server."""
        from core.influxql import InfluxQLClient

        return InfluxQLClient(self.url, database)

    def create_database(self, name: str) -> None:
        """CREATE DATABASE (idempotent in InfluxDB 1.x)."""
        from core.influxql import quote_ident

        with self.client(name) as client:
            client.execute(f"CREATE DATABASE {quote_ident(name)}")

    def drop_database(self, name: str) -> None:
        from core.influxql import quote_ident

        with self.client(name) as client:
            client.execute(f"DROP DATABASE {quote_ident(name)}")

    def query(self, q: str, database: str) -> list[Any]:
        """Run an InfluxQL read query; returns `core.influxql.Series` (epoch ms timestamps)."""
        with self.client(database) as client:
            return client.query(q)
