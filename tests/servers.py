"""Servers only the tests start, on facmon's `ServerProcess` lifecycle (facmon/servers.py): nginx as
an InfluxDB 2.x write API in front of the InfluxDB 1.6 this machine has, an InfluxDB 1.6 serving
HTTPS with authentication on, and Prometheus Alertmanager as a notification target. Test
scaffolding: the product never starts them."""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml

from core.clock import Clock
from facmon.servers import LOOPBACK, InfluxDB, ServerProcess, http_status, running_as_root


class InfluxV2WriteProxy(ServerProcess):
    """nginx in front of an InfluxDB 1.x, serving the InfluxDB 2.x write API the way InfluxDB 1.8+
    does natively, so influxdb-client (facmon's `influxdb.api: v2`) can be tested against 1.6:

    - `POST /api/v2/write?bucket=DB[/RP]&precision=ns|us|ms|s&org=...` → `POST /write?db=DB&rp=RP&precision=n|u|ms|s`
      (the bucket's `/` may arrive URL-encoded as `%2F`; a bucket without `/RP` uses the default RP;
      no precision means ns; an unknown precision is refused with 400)
    - `/ping`, `/query`, `/write` passed through; `GET /health` answers 200 `{"status": "pass"}`.

    InfluxDB's own status codes and error bodies come back unchanged (e.g. 400 for bad line protocol)."""

    name = "nginx"
    binary = "/usr/sbin/nginx"
    debian_package = "nginx-light"

    def __init__(self, workdir: Path, upstream_port: int, port: int | None = None, *,
                 clock: Clock | None = None) -> None:
        super().__init__(workdir, port, clock=clock)
        self.upstream_port = upstream_port

    @property
    def config_path(self) -> Path:
        return self.workdir / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.workdir / "error.log"

    def _write_config(self) -> None:
        d = self.workdir
        upstream = f"http://{LOOPBACK}:{self.upstream_port}"
        user = "user root;\n" if running_as_root() else ""
        health = json.dumps({"name": "influxdb", "message": "ready for queries and writes", "status": "pass",
                             "checks": [], "version": "1.x via facmon nginx v2 write proxy"})
        self.config_path.write_text(user + textwrap.dedent(f"""\
            worker_processes 1;
            pid {d}/nginx.pid;
            error_log {self.error_log} warn;
            events {{ worker_connections 256; }}
            http {{
                access_log off;
                client_body_temp_path {d}/client_body;
                proxy_temp_path {d}/proxy;
                fastcgi_temp_path {d}/fastcgi;
                uwsgi_temp_path {d}/uwsgi;
                scgi_temp_path {d}/scgi;
                client_max_body_size 64m;
                # The raw (still URL-encoded) bucket: DB, then "/" or "%2F", then the RP.
                map $arg_bucket $facmon_db {{
                    "~^(?<db>.*?)(/|%2[Ff])" $db;
                    default $arg_bucket;
                }}
                map $arg_bucket $facmon_rp {{
                    "~^.*?(/|%2[Ff])(?<rp>.*)$" $rp;
                    default "";
                }}
                map $arg_precision $facmon_precision {{
                    ""   n;
                    ns   n;
                    us   u;
                    ms   ms;
                    s    s;
                    default "";
                }}
                server {{
                    listen {self.host}:{self.port};
                    location = /api/v2/write {{
                        if ($facmon_precision = "") {{
                            return 400 '{{"code":"invalid","message":"precision must be ns, us, ms or s"}}';
                        }}
                        proxy_pass {upstream}/write?db=$facmon_db&rp=$facmon_rp&precision=$facmon_precision;
                    }}
                    location = /health {{
                        default_type application/json;
                        return 200 '{health}';
                    }}
                    location / {{
                        proxy_pass {upstream};
                    }}
                }}
            }}
            """))

    def _command(self) -> list[str]:
        d = str(self.workdir)
        return [self.binary, "-e", str(self.error_log), "-p", d, "-c", str(self.config_path), "-g", "daemon off;"]

    def _log_files(self) -> list[Path]:
        return [self.error_log]

    def _serving(self) -> bool:
        return http_status(self.host, self.port, "/health") == 200


class Alertmanager(ServerProcess):
    """Prometheus Alertmanager with a given configuration, storage in `workdir`, clustering off."""

    name = "alertmanager"
    binary = "/usr/bin/prometheus-alertmanager"
    debian_package = "prometheus-alertmanager"

    DEFAULT_CONFIG: Mapping[str, Any] = {"route": {"receiver": "null"}, "receivers": [{"name": "null"}]}

    def __init__(self, workdir: Path, config: str | Mapping[str, Any] | None = None, port: int | None = None, *,
                 clock: Clock | None = None) -> None:
        super().__init__(workdir, port, clock=clock)
        if config is None:
            config = self.DEFAULT_CONFIG
        self.config_text = config if isinstance(config, str) else yaml.safe_dump(dict(config), sort_keys=False)

    @property
    def config_path(self) -> Path:
        return self.workdir / "alertmanager.yml"

    def _write_config(self) -> None:
        (self.workdir / "data").mkdir(exist_ok=True)
        self.config_path.write_text(self.config_text)

    def _command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]

    def _serving(self) -> bool:
        return http_status(self.host, self.port, "/-/ready") == 200


class GuardedInfluxDB(InfluxDB):
    """influxd 1.6.7 over HTTPS (a self-signed certificate for 127.0.0.1, made with openssl) with
    authentication on and one admin user, `admin` / `admin_password`: the InfluxDB a careful site
    runs, for the write path's TLS and basic authentication."""

    scheme = "https"
    admin_password = "s3cret pass"

    @property
    def certificate(self) -> Path:
        return self.workdir / "influxd.pem"

    def _write_config(self) -> None:
        super()._write_config()
        key = self.workdir / "influxd.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        f"/CN={self.host}", "-addext", f"subjectAltName=IP:{self.host}", "-keyout", str(key),
                        "-out", str(self.certificate)], check=True, capture_output=True)
        text = self.config_path.read_text().replace("auth-enabled = false", (
            f'auth-enabled = true\n  https-enabled = true\n  https-certificate = "{self.certificate}"\n'
            f'  https-private-key = "{key}"'))
        self.config_path.write_text(text)

    def _serving(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.certificate))
        conn = http.client.HTTPSConnection(self.host, self.port, timeout=1.0, context=context)
        try:
            conn.request("GET", "/ping")
            return conn.getresponse().status == 204
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def create_admin(self) -> None:
        """The first user, which influxd lets anyone create while it has none."""
        context = ssl.create_default_context(cafile=str(self.certificate))
        conn = http.client.HTTPSConnection(self.host, self.port, timeout=10.0, context=context)
        try:
            statement = f"CREATE USER admin WITH PASSWORD '{self.admin_password}' WITH ALL PRIVILEGES"
            conn.request("POST", "/query", urlencode({"q": statement}),
                         {"Content-Type": "application/x-www-form-urlencoded"})
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status != 200 or b"error" in body:
            raise RuntimeError(f"influxd refused to create its admin user: {response.status} {body[:300]!r}")

