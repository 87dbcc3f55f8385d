"""Reading from InfluxDB with InfluxQL over `/query`, which InfluxDB 1.x, 1.8+, 2.x (v1 compat API)
and 3.x all serve — and safe quoting for building queries from untrusted names and values.

Exceptions:

    InfluxError
    ├── InfluxUnavailable   InfluxDB could not be reached (refused, timed out, 502/503/504 from a proxy)
    └── InfluxQueryError    InfluxDB answered and refused the statement (syntax, unknown database...)

Quoting follows InfluxQL's scanner (influxdata/influxql scanner.go): strings and quoted identifiers
know only the escapes `\\\\`, `\\'`, `\\"` and `\\n`; a raw newline ends them, and the scanner turns
every CR into a newline and stops at NUL, so CR and NUL cannot be quoted at all (ValueError). Prefer
bound parameters (`params=`) for values: they travel as JSON, outside the query text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlencode

from core.http_client import HttpUnreachable, KeptAliveHttp, basic_auth_header
from core.settings.base import read_secret
from core.settings.influxdb import InfluxSettings

_UNAVAILABLE_STATUSES = frozenset({502, 503, 504})
ParamValue = str | int | float | bool


class InfluxError(Exception):
    """Something went wrong talking to InfluxDB."""


class InfluxUnavailable(InfluxError):
    """InfluxDB could not be reached; retrying later may succeed."""


class InfluxQueryError(InfluxError):
    """InfluxDB refused the query. `message` is InfluxDB's own text; `status` the HTTP status."""

    def __init__(self, message: str, *, query: str, status: int = 200, statement_id: int | None = None) -> None:
        where = f"statement {statement_id}" if statement_id is not None else f"HTTP {status}"
        super().__init__(f"InfluxDB refused the query ({where}): {message} — query: {query[:300]}")
        self.message = message
        self.status = status
        self.statement_id = statement_id


@dataclass(frozen=True)
class Series:
    """One series of a result: `values` are rows in `columns` order (the first column is `time`
    for SELECTs, as epoch integers in the requested unit, or RFC 3339 strings when epoch is None)."""

    name: str
    columns: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]
    tags: Mapping[str, str] = field(default_factory=dict)
    statement_id: int = 0

    def rows(self) -> list[dict[str, Any]]:
        """The values as one dict per row, keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.values]


def quote_ident(name: str) -> str:
    """`name` as a double-quoted InfluxQL identifier (measurement, tag key, field key, database)."""
    return '"' + _escape_quoted(name, '"') + '"'


def quote_string(value: str) -> str:
    """`value` as a single-quoted InfluxQL string literal (tag values, string fields)."""
    return "'" + _escape_quoted(value, "'") + "'"


def _escape_quoted(text: str, quote: str) -> str:
    if "\r" in text or "\x00" in text:
        raise ValueError(f"InfluxQL cannot quote a CR or NUL character ({text[:50]!r}); use a bound parameter")
    return text.replace("\\", "\\\\").replace(quote, "\\" + quote).replace("\n", "\\n")


# RE2 metacharacters, escaped so the text matches itself; `/` ends an InfluxQL regex.
_REGEX_ESCAPES = {c: "\\" + c for c in ".+*?()|[]{}^$/"}
# A backslash is written as \x5c: InfluxQL's scanner reads "\\/" as an escaped "/" (the regex never
# ends), so a literal backslash before the closing "/" must not be spelt "\\". CR/LF/NUL as RE2
# escapes because the scanner cannot carry them raw.
_REGEX_ESCAPES |= {"\\": r"\x5c", "\n": r"\n", "\r": r"\r", "\x00": r"\x00"}
_REGEX_TABLE = str.maketrans(_REGEX_ESCAPES)


def regex_literal_text(value: str) -> str:
    """`value` escaped to match itself inside an InfluxQL regex (no delimiters, no anchors)."""
    return value.translate(_REGEX_TABLE)


def quote_regex(value: str) -> str:
    """`/.../` matching any text that *contains* `value` literally (for `=~` and `!~`)."""
    return "/" + regex_literal_text(value) + "/"


def regex_any_of(values: Sequence[str]) -> str:
    """`/^(?:a|b|...)$/` matching exactly one of `values` (e.g. `device =~ ...` for a device list).

    Raises ValueError for an empty list (it would match nothing; say so in the query instead)."""
    if not values:
        raise ValueError("regex_any_of needs at least one value")
    return "/^(?:" + "|".join(regex_literal_text(v) for v in values) + ")$/"


def time_literal(epoch_ms: int) -> str:
    """An InfluxQL time literal for `epoch_ms` milliseconds since the epoch (`time >= <it>`).

    Written as an integer with unit (`1767225600000ms`): exact, no time zone, no float rounding."""
    if isinstance(epoch_ms, bool) or not isinstance(epoch_ms, int):
        raise TypeError(f"epoch_ms must be an int, got {type(epoch_ms).__name__}")
    if epoch_ms < 0:
        raise ValueError(f"epoch_ms must be >= 0 (1970 or later), got {epoch_ms}")
    return f"{epoch_ms}ms"


class InfluxQLClient:
    """A small InfluxQL client for one database, on `core.http_client` (a kept-alive connection per
    thread, so thread-safe); `close()` when done.

    `query()` sends GET, meant for read statements (SELECT, SHOW); `execute()` sends POST, for
    CREATE/DROP/ALTER/DELETE. GET is no safety net: InfluxDB 1.6.7 still runs `CREATE DATABASE` sent
    with GET (measured), so query text must never come from outside — quote names and values, or bind them."""

    def __init__(self, url: str, database: str, username: str | None = None, password: str | None = None,
                 timeout_s: float = 10.0, verify_tls: bool = True) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self._headers = {} if username is None else basic_auth_header(username, password)
        self._form_headers = {"Content-Type": "application/x-www-form-urlencoded", **self._headers}
        self._http = KeptAliveHttp(self.url, timeout_s, verify_tls)

    def query(self, q: str, epoch: str | None = "ms", params: Mapping[str, ParamValue] | None = None) -> list[Series]:
        """Run read statements; return every series of every statement, in order.

        `epoch`: unit of the `time` column (`ns`, `u`, `ms`, `s`, `m`, `h`), or None for RFC 3339.
        `params`: bound parameters, referenced as `$name` in the WHERE clause (InfluxDB 1.5+).
        Raises InfluxQueryError (any statement refused, or a truncated result), InfluxUnavailable."""
        return self._request("GET", q, epoch, params)

    def execute(self, q: str, params: Mapping[str, ParamValue] | None = None) -> list[Series]:
        """Run statements that change things (CREATE DATABASE, DROP ..., DELETE ...) with POST."""
        return self._request("POST", q, None, params)

    def ping(self) -> bool:
        """True if InfluxDB answers /ping with 204."""
        try:
            return self._http.request("GET", "/ping")[0] == 204
        except HttpUnreachable:
            return False

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _request(self, method: str, q: str, epoch: str | None, params: Mapping[str, ParamValue] | None
                 ) -> list[Series]:
        fields = {"db": self.database, "q": q}
        if epoch is not None:
            fields["epoch"] = epoch
        if params:
            fields["params"] = json.dumps(dict(params))
        try:
            if method == "GET":
                status, body = self._http.request("GET", f"/query?{urlencode(fields)}", headers=self._headers)
            else:
                status, body = self._http.request("POST", "/query", urlencode(fields).encode(), self._form_headers)
        except HttpUnreachable as err:
            raise InfluxUnavailable(f"cannot reach InfluxDB at {err}") from None
        return parse_response(status, body, q)


def influxql_client_for(settings: InfluxSettings) -> InfluxQLClient:
    """The client for the database `influxdb.*` describes (its password read as the settings say)."""
    return InfluxQLClient(settings.url, settings.database, settings.username,
                          read_secret(settings.password, settings.password_file, "influxdb.password"),
                          settings.timeout_s, settings.verify_tls)


def parse_response(status: int, body: bytes, q: str) -> list[Series]:
    """InfluxDB's /query JSON → series, or the matching exception (pure; separate for unit tests)."""
    if status in _UNAVAILABLE_STATUSES:
        raise InfluxUnavailable(f"InfluxDB answered HTTP {status}: {body[:200]!r}")
    try:
        document = json.loads(body) if body else {}
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise InfluxQueryError(f"not InfluxDB JSON: {body[:200]!r}", query=q, status=status)
    if status != 200 or "error" in document:
        raise InfluxQueryError(str(document.get("error", body[:200])), query=q, status=status)
    series: list[Series] = []
    for result in document.get("results", []):
        statement_id = int(result.get("statement_id", 0))
        if "error" in result:
            raise InfluxQueryError(str(result["error"]), query=q, statement_id=statement_id)
        if result.get("partial"):
            # max-row-limit cut the answer short: silently returning part of a history is worse than failing.
            raise InfluxQueryError("result truncated by the server's max-row-limit; narrow the time range or "
                                   "aggregate", query=q, statement_id=statement_id)
        for s in result.get("series", []):
            series.append(Series(
                name=s.get("name", ""),
                columns=tuple(s.get("columns", ())),
                values=tuple(tuple(row) for row in s.get("values", ())),
                tags=dict(s.get("tags") or {}),
                statement_id=statement_id,
            ))
    return series
