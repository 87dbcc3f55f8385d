"""The one fixture module that owns real servers. Every server runs from a temp dir on a free
loopback port and is stopped at the end, even when the test fails.

Fixtures:
    mosquitto            a fresh broker per test (facmon's shipped settings; ~0.03 s to start)
    mosquitto_factory    mosquitto_factory(port=None, extra_config="...") for more brokers or other settings
    influxdb             one influxd per session (facmon.servers.InfluxDB)
    own_influxd          an influxd of the test's own, for tests that stop or restart it
    influx_db            a fresh, uniquely named database on it, as an InfluxQLClient (.url, .database),
                         dropped after the test
    influx_v2_proxy      the InfluxDB v2 write API (nginx) in front of `influxdb`, one per session
    alertmanager         alertmanager(config=None | yaml str | dict, port=None) -> started Alertmanager

Tests under tests/integration and tests/e2e are marked `integration` automatically
(`pytest -m "not integration"` runs the pure tests only).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from core.influxql import InfluxQLClient
from facmon.servers import InfluxDB, Mosquitto, ServerProcess
from tests.servers import Alertmanager, InfluxV2WriteProxy

_TESTS_DIR = Path(__file__).resolve().parent
_SERVER_DIRS = ("integration", "e2e")
_database_numbers = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        relative = Path(str(item.fspath)).resolve().relative_to(_TESTS_DIR)
        if relative.parts[0] in _SERVER_DIRS:
            item.add_marker(pytest.mark.integration)


def _started(server: ServerProcess, timeout_s: float = 20.0) -> ServerProcess:
    server.start()
    try:
        server.wait_ready(timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


S = TypeVar("S", bound=ServerProcess)


@contextmanager
def _servers_in(tmp_path: Path, server_class: type[S]) -> Iterator[Callable[..., S]]:
    """A factory starting servers of one class in numbered dirs under tmp_path; all stopped after."""
    started: list[S] = []

    def start(*args: Any, **kwargs: Any) -> S:
        server = server_class(tmp_path / f"{server_class.name}-{len(started)}", *args, **kwargs)
        started.append(server)
        _started(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    with _servers_in(tmp_path, Mosquitto) as start:
        yield start


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., Mosquitto]) -> Mosquitto:
    return mosquitto_factory()


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    server = InfluxDB(tmp_path_factory.mktemp("influxd"))
    _started(server)
    yield server
    server.stop()


@pytest.fixture
def own_influxd(tmp_path: Path) -> Iterator[InfluxDB]:
    server = InfluxDB(tmp_path / "own-influxd")
    _started(server, timeout_s=60)
    yield server
    server.stop()


@pytest.fixture
def influx_db(influxdb: InfluxDB, request: pytest.FixtureRequest) -> Iterator[InfluxQLClient]:
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40]
    name = f"t{next(_database_numbers)}_{slug}"
    influxdb.create_database(name)
    client = InfluxQLClient(influxdb.url, name)
    yield client
    client.close()
    influxdb.drop_database(name)


@pytest.fixture(scope="session")
def influx_v2_proxy(influxdb: InfluxDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxV2WriteProxy]:
    proxy = InfluxV2WriteProxy(tmp_path_factory.mktemp("nginx"), influxdb.port)
    _started(proxy)
    yield proxy
    proxy.stop()


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Callable[..., Alertmanager]]:
    with _servers_in(tmp_path, Alertmanager) as start:
        yield start
