"""Install facmon's data source, folder and dashboards on a running Grafana, through its HTTP API
(grafana-client). Idempotent: run it again and nothing changes; change a dashboard and run it again
and Grafana keeps the same uid with a new version.

    PushError                    base; the message says what to do
    ├── GrafanaUnreachable       nothing answered at the URL, or what answered is not Grafana
    ├── GrafanaAuthError         401: the token is wrong, expired or revoked
    ├── GrafanaPermissionError   403: the token's role may not do this (data sources need Admin)
    └── GrafanaRejected          Grafana refused a request for another reason (its message included)
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import niquests
from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaTimeoutError

from dashboards.queries import DATASOURCE_UID, INFLUXDB_TYPE

DATASOURCE_NAME = "facmon InfluxDB"
PUSH_MESSAGE = "facmon dashboards push"


class PushError(Exception):
    """Pushing to Grafana failed; the message names the step and what to do."""


class GrafanaUnreachable(PushError):
    pass


class GrafanaAuthError(PushError):
    pass


class GrafanaPermissionError(PushError):
    pass


class GrafanaRejected(PushError):
    pass


@dataclass(frozen=True)
class InfluxSource:
    """The InfluxDB data source as Grafana should reach it. `token` (InfluxDB 2.x/3.x, sent as
    `Authorization: Token ...`) or `username`/`password` (1.x) — or neither for an open 1.x."""

    url: str
    database: str
    token: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def grafana_datasource(self) -> dict[str, Any]:
        """The body of Grafana's data source API for this source (InfluxQL query language)."""
        json_data: dict[str, Any] = {"dbName": self.database, "httpMode": "GET", "version": "InfluxQL"}
        secure: dict[str, str] = {}
        body: dict[str, Any] = {"uid": DATASOURCE_UID, "name": DATASOURCE_NAME, "type": INFLUXDB_TYPE,
                                "access": "proxy", "url": self.url, "isDefault": False, "jsonData": json_data}
        if self.token:
            json_data["httpHeaderName1"] = "Authorization"
            secure["httpHeaderValue1"] = f"Token {self.token}"
        if self.username:
            body["user"] = self.username
            secure["password"] = self.password or ""
        if secure:
            body["secureJsonData"] = secure
        return body


Outcome = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class PushedItem:
    kind: Literal["datasource", "folder", "dashboard"]
    uid: str
    outcome: Outcome
    version: int | None = None


@contextmanager
def _step(what: str, url: str) -> Iterator[None]:
    """Turn grafana-client's and niquests' errors into PushErrors that say what to do."""
    try:
        yield
    except GrafanaTimeoutError as err:
        raise GrafanaUnreachable(f"{what}: Grafana at {url} did not answer in time ({err}); "
                                 "check the URL and that Grafana is running") from None
    except GrafanaClientError as err:
        response = err.response
        message = str(response["message"]) if isinstance(response, dict) and "message" in response else err.message
        if err.status_code == 401:
            raise GrafanaAuthError(f"{what}: Grafana at {url} rejected the token (401); create a service-account "
                                   "token (Administration → Service accounts) and pass it with --token") from None
        if err.status_code == 403:
            raise GrafanaPermissionError(
                f"{what}: the token may not do this (403: {message}); give its service account the Admin role "
                "(data sources need Admin; folders and dashboards need Editor)") from None
        if err.status_code == 404:
            raise GrafanaUnreachable(f"{what}: {url} answered 404 — is that Grafana's base URL "
                                     "(e.g. https://grafana.example.org or .../grafana behind a proxy)?") from None
        raise GrafanaRejected(f"{what}: Grafana refused it ({err.status_code}: {message})") from None
    except GrafanaException as err:
        raise GrafanaRejected(f"{what}: Grafana at {url} failed ({err.status_code}: {err.message})") from None
    except niquests.exceptions.RequestException as err:
        raise GrafanaUnreachable(f"{what}: cannot reach Grafana at {url} ({type(err).__name__}: {err}); "
                                 "check the URL, the port and that Grafana is running") from None
    except (ValueError, KeyError) as err:  # a 200 with HTML or another JSON shape: not Grafana's API
        raise GrafanaUnreachable(f"{what}: {url} did not answer like Grafana's API ({err}); check the URL") from None


def _is_missing(err: GrafanaClientError) -> bool:
    return err.status_code == 404


class GrafanaPusher:
    """Pushes to one Grafana. `api` is a grafana-client `GrafanaApi` (tests point it at a stand-in)."""

    def __init__(self, api: GrafanaApi, url: str) -> None:
        self.api = api
        self.url = url

    @classmethod
    def connect(cls, url: str, token: str, timeout_s: float = 10.0, verify_tls: bool = True) -> GrafanaPusher:
        if not token:
            raise GrafanaAuthError("no Grafana token: pass --token, or set FACMON_DASHBOARDS__GRAFANA_TOKEN "
                                   "or dashboards.grafana_token_file")
        target = url if verify_tls else url + ("&" if "?" in url else "?") + "verify=false"
        return cls(GrafanaApi.from_url(target, credential=token, timeout=timeout_s), url)

    def check_grafana(self) -> str:
        """Grafana's version, from its build info (/api/frontend/settings, read with the token), so a
        wrong URL or token fails here, before anything is written."""
        with _step("reading Grafana's build info", self.url):
            build_info = self.api.health.check()
            if not isinstance(build_info, dict) or "version" not in build_info:
                raise ValueError(f"/api/frontend/settings has no buildInfo.version ({str(build_info)[:80]!r})")
        return str(build_info["version"])

    def push_datasource(self, source: InfluxSource) -> PushedItem:
        body = source.grafana_datasource()
        with _step(f"data source {DATASOURCE_UID!r}", self.url):
            try:
                existing = self.api.datasource.get_datasource_by_uid(DATASOURCE_UID)
            except GrafanaClientError as err:
                if not _is_missing(err):
                    raise
                self.api.datasource.create_datasource(body)
                return PushedItem("datasource", DATASOURCE_UID, "created")
            # Secrets are write-only in Grafana, so an update is always sent when there are any.
            same = all(existing.get(k) == v for k, v in body.items() if k != "secureJsonData")
            if same and "secureJsonData" not in body:
                return PushedItem("datasource", DATASOURCE_UID, "unchanged")
            self.api.datasource.update_datasource_by_uid(DATASOURCE_UID, body)
            return PushedItem("datasource", DATASOURCE_UID, "updated")

    def push_folder(self, uid: str, title: str) -> PushedItem:
        with _step(f"folder {uid!r}", self.url):
            try:
                existing = self.api.folder.get_folder(uid)
            except GrafanaClientError as err:
                if not _is_missing(err):
                    raise
                self.api.folder.create_folder(title, uid=uid)
                return PushedItem("folder", uid, "created")
            if existing.get("title") == title:
                return PushedItem("folder", uid, "unchanged", existing.get("version"))
            updated = self.api.folder.update_folder(uid, title=title, overwrite=True)
            return PushedItem("folder", uid, "updated", updated.get("version"))

    def push_dashboard(self, dashboard: dict[str, Any], folder_uid: str) -> PushedItem:
        """Create or update by uid; unchanged content (ignoring Grafana's id/version) is not re-saved."""
        uid = dashboard["uid"]
        with _step(f"dashboard {uid!r}", self.url):
            current = None
            try:
                current = self.api.dashboard.get_dashboard(uid)
            except GrafanaClientError as err:
                if not _is_missing(err):
                    raise
            if current is not None:
                stored = dict(current["dashboard"])
                in_folder = current.get("meta", {}).get("folderUid") == folder_uid
                if in_folder and _comparable(stored) == _comparable(dashboard):
                    return PushedItem("dashboard", uid, "unchanged", stored.get("version"))
            body = {"dashboard": {**dashboard, "id": None}, "folderUid": folder_uid, "overwrite": True,
                    "message": PUSH_MESSAGE}
            saved = self.api.dashboard.update_dashboard(body)
            return PushedItem("dashboard", uid, "created" if current is None else "updated", saved.get("version"))

    def push_all(self, source: InfluxSource, folder_uid: str, folder_title: str,
                 dashboards: Sequence[dict[str, Any]]) -> list[PushedItem]:
        """Data source, then folder, then every dashboard; stops at the first `PushError`."""
        self.check_grafana()
        items = [self.push_datasource(source), self.push_folder(folder_uid, folder_title)]
        items.extend(self.push_dashboard(d, folder_uid) for d in dashboards)
        return items


def _comparable(dashboard: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in dashboard.items() if k not in ("id", "version")}, sort_keys=True)
