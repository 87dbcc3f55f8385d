"""`facmon dashboards push` against a stand-in for Grafana's HTTP API.

No Grafana server can be installed on this machine, so these tests run grafana-client over real
HTTP against a small in-process server that implements the endpoints push uses, the way Grafana
11 answers them: /api/frontend/settings, /api/datasources, /api/datasources/uid/{uid},
/api/folders, /api/folders/{uid}, /api/dashboards/uid/{uid}, /api/dashboards/db (a save bumps the
dashboard's version; uids are kept), Bearer-token auth (401 for an unknown token) and roles
(403 for a Viewer, and for an Editor touching data sources).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dashboards.build import DashboardOptions, build_dashboards, dashboard_json
from dashboards.push import (
    GrafanaAuthError,
    GrafanaPermissionError,
    GrafanaPusher,
    GrafanaRejected,
    GrafanaUnreachable,
    InfluxSource,
)
from facmon.servers import free_port

TOKENS = {"admin-token": "Admin", "editor-token": "Editor", "viewer-token": "Viewer"}


class FakeGrafana:
    """State of the stand-in: data sources, folders and dashboards by uid, and every write seen."""

    def __init__(self) -> None:
        self.datasources: dict[str, dict[str, Any]] = {}
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.writes: list[str] = []
        self.lock = threading.Lock()


def _handler(grafana: FakeGrafana) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _role(self) -> str | None:
            auth = self.headers.get("Authorization", "")
            return TOKENS.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def _route(self, method: str) -> None:
            role = self._role()
            if role is None:
                return self._reply(401, {"message": "invalid API key"})
            path = self.path.split("?")[0]
            with grafana.lock:
                if method == "GET" and path == "/api/frontend/settings":
                    return self._reply(200, {"buildInfo": {"version": "11.6.0"}})
                if path.startswith("/api/datasources"):
                    if role != "Admin":
                        return self._reply(403, {"message": "You'll need additional permissions to perform this "
                                                            "action. Permissions needed: datasources:write"})
                    return self._datasources(method, path)
                if method != "GET" and role == "Viewer":
                    return self._reply(403, {"message": "Access denied"})
                if path.startswith("/api/folders"):
                    return self._folders(method, path)
                if path.startswith("/api/dashboards"):
                    return self._dashboards(method, path)
            return self._reply(404, {"message": "Not found"})

        def _datasources(self, method: str, path: str) -> None:
            if method == "POST" and path == "/api/datasources":
                body = self._body()
                if body["uid"] in grafana.datasources:
                    return self._reply(409, {"message": "data source with the same uid already exists"})
                grafana.datasources[body["uid"]] = body
                grafana.writes.append(f"create datasource {body['uid']}")
                return self._reply(200, {"message": "Datasource added", "datasource": body})
            uid = path.removeprefix("/api/datasources/uid/")
            if uid not in grafana.datasources:
                return self._reply(404, {"message": "Data source not found"})
            if method == "GET":
                public = {k: v for k, v in grafana.datasources[uid].items() if k != "secureJsonData"}
                return self._reply(200, public)
            grafana.datasources[uid] = self._body()
            grafana.writes.append(f"update datasource {uid}")
            return self._reply(200, {"message": "Datasource updated"})

        def _folders(self, method: str, path: str) -> None:
            if method == "POST" and path == "/api/folders":
                body = self._body()
                folder = {"uid": body["uid"], "title": body["title"], "version": 1}
                grafana.folders[body["uid"]] = folder
                grafana.writes.append(f"create folder {body['uid']}")
                return self._reply(200, folder)
            uid = path.removeprefix("/api/folders/")
            if uid not in grafana.folders:
                return self._reply(404, {"message": "folder not found"})
            if method == "GET":
                return self._reply(200, grafana.folders[uid])
            folder = grafana.folders[uid]
            folder.update(title=self._body()["title"], version=folder["version"] + 1)
            grafana.writes.append(f"update folder {uid}")
            return self._reply(200, folder)

        def _dashboards(self, method: str, path: str) -> None:
            if method == "POST" and path == "/api/dashboards/db":
                body = self._body()
                dashboard = body["dashboard"]
                if body.get("folderUid") not in grafana.folders:
                    return self._reply(400, {"message": "folder not found"})
                uid = dashboard["uid"]
                previous = grafana.dashboards.get(uid)
                version = previous["dashboard"]["version"] + 1 if previous else 1
                stored = {**dashboard, "id": 7, "version": version}
                grafana.dashboards[uid] = {"dashboard": stored, "meta": {"folderUid": body["folderUid"]}}
                grafana.writes.append(f"save dashboard {uid}")
                return self._reply(200, {"uid": uid, "version": version, "status": "success"})
            uid = path.removeprefix("/api/dashboards/uid/")
            if method == "GET" and uid in grafana.dashboards:
                return self._reply(200, grafana.dashboards[uid])
            return self._reply(404, {"message": "Dashboard not found"})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PUT(self) -> None:
            self._route("PUT")

    return Handler


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    state = FakeGrafana()
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _handler(state))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


SOURCE = InfluxSource("http://influxdb:8086", "facmon", token="influx-secret")


@pytest.fixture(scope="module")
def dashboards() -> list[dict[str, Any]]:
    return [dashboard_json(d) for d in build_dashboards(DashboardOptions())]


def _push(url: str, token: str, dashboards: list[dict[str, Any]]) -> list[tuple[str, str, str, int | None]]:
    items = GrafanaPusher.connect(url, token, timeout_s=5).push_all(SOURCE, "facmon", "facmon", dashboards)
    return [(i.kind, i.uid, i.outcome, i.version) for i in items]


def test_first_push_creates_everything(grafana: tuple[FakeGrafana, str], dashboards: list[dict[str, Any]]) -> None:
    state, url = grafana
    result = _push(url, "admin-token", dashboards)
    assert result == [("datasource", "facmon-influxdb", "created", None), ("folder", "facmon", "created", None)] + [
        ("dashboard", d["uid"], "created", 1) for d in dashboards]
    ds = state.datasources["facmon-influxdb"]
    assert ds["type"] == "influxdb" and ds["url"] == "http://influxdb:8086" and ds["jsonData"]["dbName"] == "facmon"
    assert ds["secureJsonData"] == {"httpHeaderValue1": "Token influx-secret"}
    stored = state.dashboards["facmon-power"]
    assert stored["meta"]["folderUid"] == "facmon"
    assert stored["dashboard"]["panels"] == next(d for d in dashboards if d["uid"] == "facmon-power")["panels"]


def test_second_push_changes_nothing_and_a_changed_dashboard_gets_a_new_version(
        grafana: tuple[FakeGrafana, str], dashboards: list[dict[str, Any]]) -> None:
    state, url = grafana
    _push(url, "admin-token", dashboards)
    state.writes.clear()
    again = _push(url, "admin-token", dashboards)
    assert [o for _, _, o, _ in again[1:]] == ["unchanged"] * (1 + len(dashboards))
    # The data source is re-sent because its token is write-only in Grafana; nothing else is.
    assert state.writes == ["update datasource facmon-influxdb"]

    changed = [dict(d, title=d["title"] + " (v2)") if d["uid"] == "facmon-power" else d for d in dashboards]
    state.writes.clear()
    result = _push(url, "admin-token", changed)
    assert ("dashboard", "facmon-power", "updated", 2) in result
    assert state.writes == ["update datasource facmon-influxdb", "save dashboard facmon-power"]
    assert state.dashboards["facmon-power"]["dashboard"]["title"].endswith("(v2)")
    assert sorted(state.dashboards) == sorted(d["uid"] for d in dashboards)


def test_wrong_token_is_reported_before_anything_is_written(
        grafana: tuple[FakeGrafana, str], dashboards: list[dict[str, Any]]) -> None:
    state, url = grafana
    with pytest.raises(GrafanaAuthError, match=r"rejected the token \(401\).*service-account token"):
        _push(url, "wrong-token", dashboards)
    assert state.writes == []


def test_editor_token_may_not_create_the_data_source(
        grafana: tuple[FakeGrafana, str], dashboards: list[dict[str, Any]]) -> None:
    state, url = grafana
    with pytest.raises(GrafanaPermissionError, match=r"403.*datasources:write.*Admin role"):
        _push(url, "editor-token", dashboards)
    assert state.writes == []


def test_viewer_token_may_not_write_dashboards(grafana: tuple[FakeGrafana, str]) -> None:
    state, url = grafana
    pusher = GrafanaPusher.connect(url, "viewer-token", timeout_s=5)
    with pytest.raises(GrafanaPermissionError, match=r"folder 'facmon'.*403: Access denied"):
        pusher.push_folder("facmon", "facmon")
    assert state.folders == {}


def test_wrong_url_nothing_listening() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(GrafanaUnreachable, match=r"cannot reach Grafana at .*check the URL"):
        GrafanaPusher.connect(url, "admin-token", timeout_s=2).check_grafana()


def test_wrong_url_path_is_a_404(grafana: tuple[FakeGrafana, str]) -> None:
    _, url = grafana
    with pytest.raises(GrafanaUnreachable, match=r"answered 404 — is that Grafana's base URL"):
        GrafanaPusher.connect(url + "/not-grafana", "admin-token", timeout_s=2).check_grafana()


def test_missing_token_and_rejected_request(grafana: tuple[FakeGrafana, str]) -> None:
    _, url = grafana
    with pytest.raises(GrafanaAuthError, match="no Grafana token"):
        GrafanaPusher.connect(url, "")
    pusher = GrafanaPusher.connect(url, "admin-token", timeout_s=5)
    with pytest.raises(GrafanaRejected, match=r"dashboard 'facmon-power'.*400: folder not found"):
        pusher.push_dashboard({"uid": "facmon-power", "title": "x"}, "no-such-folder")
