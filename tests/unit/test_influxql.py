"""InfluxQL quoting and /query response parsing, without a server (tests/integration/test_influxql.py
proves the same quoting against a real influxd)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.influxql import (
    InfluxQueryError,
    InfluxUnavailable,
    Series,
    parse_response,
    quote_ident,
    quote_regex,
    quote_string,
    regex_any_of,
    time_literal,
)

QUOTABLE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"))


def _scan_quoted(literal: str) -> str:
    """InfluxQL's ScanString (influxdata/influxql scanner.go), transcribed: the reference the
    quoting must satisfy. Raises ValueError where the scanner would report BADSTRING/BADESCAPE."""
    ending, body = literal[0], literal[1:]
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == ending:
            if i != len(body) - 1:
                raise ValueError(f"literal ends early at {i}: {literal!r}")
            return "".join(out)
        if ch in "\n\r\x00":
            raise ValueError("bad string")
        if ch == "\\":
            nxt = body[i + 1]
            if nxt not in "n\\\"'":
                raise ValueError("bad escape")
            out.append("\n" if nxt == "n" else nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ValueError("unterminated")


@pytest.mark.parametrize(("value", "quoted"), [
    ("plain", "'plain'"),
    ("it's", r"'it\'s'"),
    ("back\\slash", r"'back\\slash'"),
    ("trailing\\", "'trailing\\\\'"),
    ("two\nlines", r"'two\nlines'"),
    ('say "hi"', "'say \"hi\"'"),
])
def test_quote_string_examples(value: str, quoted: str) -> None:
    assert quote_string(value) == quoted


def test_quote_ident_escapes_double_quotes() -> None:
    assert quote_ident('a "b"\\') == r'"a \"b\"\\"'


@pytest.mark.parametrize("bad", ["cr\r", "nul\x00"])
def test_unquotable_characters_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="bound parameter"):
        quote_string(bad)
    with pytest.raises(ValueError, match="bound parameter"):
        quote_ident(bad)


@given(QUOTABLE)
def test_quote_string_scans_back_to_the_value(value: str) -> None:
    assert _scan_quoted(quote_string(value)) == value


@given(QUOTABLE)
def test_quote_ident_scans_back_to_the_name(name: str) -> None:
    assert _scan_quoted(quote_ident(name)) == name


def _regex_body(literal: str) -> str:
    """InfluxQL's ScanRegex: `\\/` becomes `/`, other escapes pass through to the regex engine."""
    assert literal[0] == "/" and literal[-1] == "/"
    body = literal[1:-1]
    assert "\n" not in body and "\r" not in body
    return body.replace("\\/", "/")


@given(st.text(st.characters(blacklist_categories=("Cs",))), st.text(max_size=5), st.text(max_size=5))
def test_quote_regex_matches_the_text_literally(value: str, before: str, after: str) -> None:
    # Python's re reads these escapes (\\. \\x5c \\n ...) as RE2 does.
    assert re.search(_regex_body(quote_regex(value)), before + value + after, re.DOTALL)


@given(st.lists(QUOTABLE, min_size=1, max_size=4), QUOTABLE)
def test_regex_any_of_matches_exactly_the_values(values: list[str], other: str) -> None:
    pattern = re.compile(_regex_body(regex_any_of(values)), re.DOTALL)
    assert all(pattern.fullmatch(v) for v in values)
    assert bool(pattern.fullmatch(other)) == (other in values)


def test_regex_any_of_refuses_an_empty_list() -> None:
    with pytest.raises(ValueError):
        regex_any_of([])


def test_quote_regex_backslash_cannot_escape_the_closing_slash() -> None:
    assert quote_regex("a\\") == r"/a\x5c/"
    assert quote_regex("x/y") == r"/x\/y/"


def test_time_literal() -> None:
    assert time_literal(1767225600123) == "1767225600123ms"
    assert time_literal(0) == "0ms"
    with pytest.raises(ValueError):
        time_literal(-1)
    with pytest.raises(TypeError):
        time_literal(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        time_literal(True)


def _body(document: object) -> bytes:
    return json.dumps(document).encode()


def test_parse_response_flattens_series_of_all_statements() -> None:
    body = _body({"results": [
        {"statement_id": 0, "series": [{"name": "uplink", "tags": {"site": "s1"}, "columns": ["time", "rtt_ms"],
                                        "values": [[1, 2.5], [2, 3.0]]}]},
        {"statement_id": 1},
        {"statement_id": 2, "series": [{"name": "databases", "columns": ["name"], "values": [["facmon"]]}]},
    ]})
    first, second = parse_response(200, body, "q")
    assert first == Series("uplink", ("time", "rtt_ms"), ((1, 2.5), (2, 3.0)), {"site": "s1"}, 0)
    assert first.rows() == [{"time": 1, "rtt_ms": 2.5}, {"time": 2, "rtt_ms": 3.0}]
    assert (second.name, second.values, second.statement_id) == ("databases", (("facmon",),), 2)


def test_parse_response_raises_statement_errors_with_influx_message() -> None:
    body = _body({"results": [{"statement_id": 0}, {"statement_id": 1, "error": "database not found: x"}]})
    with pytest.raises(InfluxQueryError, match="database not found: x") as caught:
        parse_response(200, body, "SELECT 1")
    assert (caught.value.statement_id, caught.value.message) == (1, "database not found: x")


def test_parse_response_raises_http_errors_with_influx_message() -> None:
    with pytest.raises(InfluxQueryError, match="error parsing query") as caught:
        parse_response(400, _body({"error": "error parsing query: found SELEC"}), "SELEC")
    assert caught.value.status == 400


@pytest.mark.parametrize("status", [502, 503, 504])
def test_parse_response_gateway_errors_mean_unavailable(status: int) -> None:
    with pytest.raises(InfluxUnavailable):
        parse_response(status, b"<html>bad gateway</html>", "q")


def test_parse_response_refuses_truncated_results() -> None:
    body = _body({"results": [{"statement_id": 0, "partial": True, "series": []}]})
    with pytest.raises(InfluxQueryError, match="max-row-limit"):
        parse_response(200, body, "q")


def test_parse_response_refuses_non_json() -> None:
    with pytest.raises(InfluxQueryError, match="not InfluxDB JSON"):
        parse_response(200, b"<html>", "q")
