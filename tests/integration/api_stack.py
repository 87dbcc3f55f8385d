"""The API wired exactly as `facmon api` wires it (facmon.commands.api.wired_services), against the
real Mosquitto and InfluxDB of the fixtures, served in-process (TestClient) or by uvicorn on a port."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import urllib3

from api.app import create_app
from api.deps import ApiServices
from api.keys import Role
from core.clock import Clock, SystemClock
from core.config import FacmonConfig
from core.contract import Reading
from core.influxql import InfluxQLClient
from core.line_protocol import reading_to_line
from facmon.commands.api import wired_services
from facmon.servers import Mosquitto, free_port

PARK = Path(__file__).resolve().parents[2] / "simulators" / "sites" / "park.yaml"


def stack_config(tmp_path: Path, broker: Mosquitto, influx: InfluxQLClient, site_files: Iterable[Path] = (PARK,),
                 **api: object) -> FacmonConfig:
    """The API's configuration on these servers, watching the shipped park unless `site_files` says otherwise."""
    return FacmonConfig.model_validate({
        "sites": {"files": [str(p) for p in site_files]},
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "reconnect_min_s": 0.1, "reconnect_max_s": 1},
        "influxdb": {"url": influx.url, "database": influx.database},
        "collector": {"http_listen": None},
        "rules": {"store_path": str(tmp_path / "alerts.db")},
        "api": {"keys_db": str(tmp_path / "keys.sqlite"), **api},
    })


def write_readings(influx: InfluxQLClient, readings: Iterable[Reading]) -> None:
    body = "\n".join(reading_to_line(r) for r in readings).encode()
    response = urllib3.request("POST", f"{influx.url}/write?db={influx.database}&precision=ns", body=body)
    assert response.status == 204, response.data


def make_tokens(services: ApiServices) -> dict[Role, str]:
    return {role: services.keys.create(f"test {role.value}", role)[1] for role in Role}


@contextlib.contextmanager
def served(config: FacmonConfig, clock: Clock | None = None) -> Iterator[tuple[str, ApiServices]]:
    """uvicorn on a free loopback port in a thread; yields (base url, services); stops on exit."""
    import uvicorn

    with wired_services(config, clock or SystemClock()) as services:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(services), host="127.0.0.1", port=port,
                                               log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, name="api-uvicorn", daemon=True)
        thread.start()
        try:
            deadline = SystemClock().monotonic() + 15
            while not server.started:
                assert thread.is_alive() and SystemClock().monotonic() < deadline, "uvicorn did not start"
                SystemClock().sleep(0.02)
            yield f"http://127.0.0.1:{port}", services
        finally:
            server.should_exit = True
            thread.join(10)
