"""Writing line protocol to InfluxDB through either HTTP API, synchronously, with errors that tell
the caller what to do next.

    InfluxWriteError
     ├── InfluxUnavailable      retry later: connection refused/reset, timeout, 5xx, 429
     ├── InfluxNotAuthorized    retry later, and tell an operator: 401/403 (token, user, password)
     ├── InfluxDatabaseMissing  create it (`ensure_database`) or tell an operator: 404
     ├── InfluxBatchTooLarge    split the batch: 413
     └── InfluxPointsRefused    some lines are bad (400): isolate them; InfluxDB's reason is the message

`V1LineWriter` posts to `/write?db=&rp=&precision=ns` (InfluxDB 1.x, e.g. Debian's 1.6.7) with the
standard library's http.client (`core.http_client`).
`V2LineWriter` uses influxdb-client's synchronous WriteApi against `/api/v2/write` (InfluxDB 1.8+, 2.x,
3.x). Neither batches nor retries on its own: a call returns only once InfluxDB confirmed every line,
so a caller may delete what it wrote (the batching WriteApi would hide failures and lose its buffer).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol
from urllib.parse import urlencode

import urllib3

from core.http_client import HttpUnreachable, KeptAliveHttp, basic_auth_header
from core.influxql import quote_ident
from core.settings.base import read_secret
from core.settings.influxdb import InfluxSettings


class InfluxWriteError(Exception):
    """A write did not happen (or not entirely). `retryable` says whether trying the same batch again
    later can succeed without any change."""

    retryable = True


class InfluxUnavailable(InfluxWriteError):
    pass


class InfluxNotAuthorized(InfluxWriteError):
    pass


class InfluxDatabaseMissing(InfluxWriteError):
    pass


class InfluxBatchTooLarge(InfluxWriteError):
    retryable = False


class InfluxPointsRefused(InfluxWriteError):
    retryable = False


class LineWriter(Protocol):
    """Writes a batch of line-protocol lines (nanosecond timestamps). `write` returns only when
    InfluxDB confirmed all of them, else raises an `InfluxWriteError`. `close` is called once, last."""

    def write(self, lines: Sequence[str]) -> None: ...

    def ensure_database(self) -> None: ...

    def close(self) -> None: ...


def _error_message(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        return text[:2000]
    if isinstance(parsed, dict):
        return str(parsed.get("error") or parsed.get("message") or text)[:2000]
    return text[:2000]


def raise_for_status(status: int, message: str, where: str) -> None:
    """Map an InfluxDB HTTP status to the exception tree above (shared by both APIs)."""
    if 200 <= status < 300:
        return
    detail = f"InfluxDB {where} answered {status}: {message}"
    if status == 400 or status == 422:
        raise InfluxPointsRefused(detail)
    if status == 413:
        raise InfluxBatchTooLarge(detail)
    if status in (401, 403):
        raise InfluxNotAuthorized(detail + " (check the InfluxDB user/password or token and its write permission)")
    if status == 404:
        raise InfluxDatabaseMissing(detail + " (create the database/bucket, or enable influxdb.create_database)")
    raise InfluxUnavailable(detail)


class V1LineWriter:
    """InfluxDB 1.x `/write`, over `core.http_client` (kept-alive connections on `http.client`; see
    there why not urllib3). Creates the database on `ensure_database` with `CREATE DATABASE`
    (idempotent in InfluxDB), which needs admin rights where authentication is on."""

    def __init__(self, settings: InfluxSettings) -> None:
        self._settings = settings
        self._http = KeptAliveHttp(settings.url, settings.timeout_s, settings.verify_tls)
        params = {"db": settings.database, "precision": "ns"}
        if settings.retention_policy:
            params["rp"] = settings.retention_policy
        self._write_target = f"/write?{urlencode(params)}"
        self._auth: dict[str, str] = {}
        if settings.username:
            password = read_secret(settings.password, settings.password_file, "influxdb.password")
            self._auth = basic_auth_header(settings.username, password)
        self._write_headers = {"Content-Type": "text/plain; charset=utf-8", **self._auth}

    def write(self, lines: Sequence[str]) -> None:
        body = ("\n".join(lines) + "\n").encode()
        status, answer = self._post(self._write_target, body, self._write_headers)
        raise_for_status(status, _error_message(answer), "/write")

    def ensure_database(self) -> None:
        if not self._settings.create_database:
            return
        statement = f"CREATE DATABASE {quote_ident(self._settings.database)}"
        status, answer = self._post("/query", urlencode({"q": statement}).encode(),
                                    {"Content-Type": "application/x-www-form-urlencoded", **self._auth})
        raise_for_status(status, _error_message(answer), "CREATE DATABASE")
        results = json.loads(answer or b"{}").get("results", [{}])
        if results and results[0].get("error"):
            raise InfluxNotAuthorized(f"cannot create database {self._settings.database!r}: {results[0]['error']}")

    def _post(self, target: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        try:
            return self._http.request("POST", target, body, headers)
        except HttpUnreachable as err:
            raise InfluxUnavailable(f"InfluxDB unreachable: {err}") from None

    def close(self) -> None:
        self._http.close()


class V2LineWriter:
    """`/api/v2/write` through influxdb-client's synchronous WriteApi. The bucket is
    `influxdb.bucket`, or `database/retention_policy` (the 1.8+ mapping) when unset."""

    def __init__(self, settings: InfluxSettings) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self._settings = settings
        token = read_secret(settings.token, settings.token_file, "influxdb.token")
        if token is None and settings.username:
            password = read_secret(settings.password, settings.password_file, "influxdb.password")
            token = f"{settings.username}:{password or ''}"  # the InfluxDB 1.8 v2-compat form
        self._client = InfluxDBClient(url=settings.url, token=token or "", org=settings.org,
                                      timeout=int(settings.timeout_s * 1000), verify_ssl=settings.verify_tls,
                                      retries=False)
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._bucket = settings.effective_bucket()

    def write(self, lines: Sequence[str]) -> None:
        from influxdb_client.rest import ApiException

        try:
            self._write_api.write(bucket=self._bucket, org=self._settings.org, record="\n".join(lines),
                                  write_precision="ns")
        except ApiException as err:
            raise_for_status(err.status or 0, _error_message((err.body or "").encode()
                                                             if isinstance(err.body, str) else err.body or b""),
                             "/api/v2/write")
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise InfluxUnavailable(f"InfluxDB at {self._settings.url} unreachable: {err}") from None

    def ensure_database(self) -> None:
        """Create the bucket where the server has a buckets API (2.x/3.x); on 1.8 (no buckets API) the
        database must exist, and a missing one shows up as `InfluxDatabaseMissing` on the first write."""
        if not self._settings.create_database or "/" in self._bucket:
            return
        from influxdb_client.rest import ApiException

        try:
            buckets = self._client.buckets_api()
            if buckets.find_bucket_by_name(self._bucket) is None:
                buckets.create_bucket(bucket_name=self._bucket, org=self._settings.org)
        except ApiException as err:
            if err.status in (401, 403):
                raise InfluxNotAuthorized(f"cannot create bucket {self._bucket!r}: the token lacks permission; "
                                          "create it in InfluxDB or give the token write access to buckets") from None
            if err.status == 404:
                return  # no buckets API (InfluxDB 1.8 compat): nothing to create here
            raise InfluxUnavailable(f"cannot check bucket {self._bucket!r}: {err.status} {err.reason}") from None
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise InfluxUnavailable(f"InfluxDB at {self._settings.url} unreachable: {err}") from None

    def close(self) -> None:
        self._write_api.close()
        self._client.close()


def line_writer_for(settings: InfluxSettings) -> LineWriter:
    return V2LineWriter(settings) if settings.api == "v2" else V1LineWriter(settings)
