"""Regex matchers are RE2 (linear time, Alertmanager's syntax and anchoring): issue 17, item 4.

A catastrophic pattern either compiles to a linear-time program and answers correctly, or is refused
when the matcher is made, with a message that says RE2 syntax is required and what to write instead."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.contract import Kind
from rules.matchers import (
    MAX_REGEX_CHARS,
    MAX_REGEX_INSTRUCTIONS,
    REMEMBERED_VALUES,
    Matcher,
    MatcherError,
    matches_all,
    parse_matcher,
)
from rules.model import check_rule_files
from rules.silences import Silence, SilenceMuter
from tests.unit.rules.rules_harness import Harness, inverter, local

ISSUE_PATTERN = "(.*){22}X"
"""The silence of issue 17 item 4 that pinned the engine at 100 % CPU under Python's backtracking `re`."""

LABEL_VALUES = ["GridOutage", "OnBattery", "UplinkDegradedLatency", "park", "inv-main", "uplink-ptcl",
                "occ-room-1", "کمرہ 1", "critical", "", "a" * 64, "x" * 1000 + "Y", "park-" * 200]
"""Realistic label values, and long ones on which a backtracking engine would never finish."""

HOSTILE_ACCEPTED = {
    ISSUE_PATTERN: lambda v: "\n" not in v and v.endswith("X"),
    "(a+)+$": lambda v: v != "" and set(v) == {"a"},
    "(a|a)*b": lambda v: v.endswith("b") and set(v[:-1]) <= {"a"},
    "(a|aa)+c": lambda v: len(v) >= 2 and v.endswith("c") and set(v[:-1]) == {"a"},
    "(.*a){12}": lambda v: "\n" not in v and v.endswith("a") and v.count("a") >= 12,
    "([a-z]+)*[0-9]": lambda v: v[-1:].isdigit() and all("a" <= c <= "z" for c in v[:-1]),
    "(x+x+)+y": lambda v: len(v) >= 3 and v.endswith("y") and set(v[:-1]) == {"x"},
    "(\\d+)*x": lambda v: v.endswith("x") and all("0" <= c <= "9" for c in v[:-1]),
}
"""Classic catastrophic-backtracking shapes, each with what it means written out by hand (Python's
backtracking `re` cannot be the oracle here: on these values it would run for hours)."""


@pytest.mark.parametrize("pattern", list(HOSTILE_ACCEPTED))
def test_catastrophic_patterns_answer_correctly_on_realistic_values(pattern: str) -> None:
    matcher = parse_matcher(f"alertname=~{pattern}")
    meaning = HOSTILE_ACCEPTED[pattern]
    values = [*LABEL_VALUES, "a" * 30, "a" * 30 + "b", "a" * 30 + "c", "x" * 40 + "y", "123x", "abc7", "park-1X"]
    for value in values:
        assert matcher.matches({"alertname": value}) is meaning(value), (pattern, value[:40])
    assert any(matcher.matches({"alertname": v}) for v in values), pattern  # the table is not all misses


def test_issue_silence_mutes_what_it_says_and_nothing_else() -> None:
    silence = Silence("s1", (parse_matcher(f"alertname=~{ISSUE_PATTERN}"), parse_matcher("site=park")),
                      0.0, 100.0, "ops", "", 0.0)
    muter = SilenceMuter([silence])
    for value in LABEL_VALUES:
        assert muter.mutes({"alertname": value, "site": "park"}, 50.0) is None, value[:40]
    assert muter.mutes({"alertname": "GridOutageX", "site": "park"}, 50.0) == "s1"
    assert muter.mutes({"alertname": "y" * 5000 + "X", "site": "park"}, 50.0) == "s1"


HOSTILE_REFUSED = {
    "backreference": "(a+)\\1",
    "named backreference": "(?P<n>a+)(?P=n)",
    "lookahead": "(?=Grid)Grid.*",
    "negative lookahead": "(?!Grid).*",
    "lookbehind": ".*(?<=Outage)",
    "negative lookbehind": ".*(?<!Outage)",
    "possessive quantifier": "a++b",
    "atomic group": "(?>a+)b",
    "python's \\Z": "Grid\\Z",
    "escape from the anchoring group": "Grid)|(.*",
    "unbalanced parenthesis": "(Grid",
    "repetition over 1000": "a{1001}",
    "nested repetition over 1000": "((a{100}){100}){100}",
}


@pytest.mark.parametrize("pattern", list(HOSTILE_REFUSED.values()), ids=list(HOSTILE_REFUSED))
def test_patterns_re2_cannot_run_are_refused_saying_what_to_write(pattern: str) -> None:
    with pytest.raises(MatcherError) as caught:
        parse_matcher(f"alertname=~{pattern}")
    message = str(caught.value)
    assert "RE2" in message and "alertname=~" in message
    assert "backreferences" in message and "lookahead" in message and "|" in message


def test_too_long_a_pattern_is_refused_with_the_limit() -> None:
    assert parse_matcher("device=~" + "a" * MAX_REGEX_CHARS).matches({"device": "a" * MAX_REGEX_CHARS})
    with pytest.raises(MatcherError, match=rf"is {MAX_REGEX_CHARS + 1} characters; at most {MAX_REGEX_CHARS}"):
        parse_matcher("device=~" + "a" * (MAX_REGEX_CHARS + 1))
    with pytest.raises(MatcherError, match=f"at most {MAX_REGEX_CHARS}"):
        parse_matcher("device!~" + "(.*)" * 100)


@pytest.mark.parametrize("pattern", [".{1000}", "(.{0,30}){30}", "((.{0,9}){9}){9}", "[^x]{900}"])
def test_too_large_a_program_is_refused_with_the_limit(pattern: str) -> None:
    with pytest.raises(MatcherError, match=rf"RE2 instructions; at most {MAX_REGEX_INSTRUCTIONS}.*counted"):
        parse_matcher(f"device=~{pattern}")


def test_anchoring_is_alertmanagers() -> None:
    site = parse_matcher("site=~park|lab")
    assert site.matches({"site": "park"}) and site.matches({"site": "lab"})
    assert not site.matches({"site": "park-2"}) and not site.matches({"site": "xlab"})
    assert not site.matches({"site": "park\n"})  # `$` is the end of the text, as in Go
    assert not parse_matcher("site=~par").matches({"site": "park"})
    assert parse_matcher("room=~.*").matches({}) and not parse_matcher("room=~.+").matches({})
    assert parse_matcher("room!~lab.*").matches({}) and not parse_matcher("room!~lab.*").matches({"room": "lab 2"})
    assert parse_matcher("room=~کمرہ [0-9]+").matches({"room": "کمرہ 12"})
    assert parse_matcher("alertname=~(?i)grid.*").matches({"alertname": "GridOutage"})
    assert parse_matcher("device=~inv-(main|lab)").matches({"device": "inv-lab"})


# Python's `re` and RE2 agree on the common syntax: the old engine is the oracle for the new one.
_ATOMS = st.sampled_from(["a", "b", ".", "[ab]", "[^a]", "\\d", "x", "-", "(a|b)", "(ab)"])
_QUANT = st.sampled_from(["", "*", "+", "?", "{2}", "{0,3}", "*?"])
_PATTERNS = st.lists(st.tuples(_ATOMS, _QUANT).map("".join), min_size=1, max_size=6).map("".join)


@settings(max_examples=300, deadline=None)
@given(_PATTERNS, st.text(alphabet="ab1x-\n" + string.ascii_uppercase[:2], max_size=12),
       st.sampled_from(["=~", "!~"]))
def test_re2_agrees_with_python_re_on_common_syntax(pattern: str, value: str, op: str) -> None:
    expected = re.fullmatch(pattern, value) is not None
    assert Matcher("label", op, pattern).matches({"label": value}) is (expected if op == "=~" else not expected)


def test_a_stored_pre_re2_matcher_matches_nothing_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="facmon.rules.matchers"):
        positive = Matcher.from_dict({"name": "alertname", "op": "=~", "value": "(?=Grid)Grid.*"})
        negative = Matcher.from_dict({"name": "alertname", "op": "!~", "value": "(?!x)y"})
    assert not positive.matches({"alertname": "GridOutage"}) and not negative.matches({"alertname": "GridOutage"})
    assert positive.to_dict() == {"name": "alertname", "op": "=~", "value": "(?=Grid)Grid.*"}
    assert len([r for r in caplog.records if "matches nothing" in r.getMessage()]) == 2
    with pytest.raises(MatcherError):
        Matcher.from_dict({"name": "bad name", "op": "=~", "value": "x"})


def test_engine_keeps_ticking_over_a_stored_pre_re2_silence_and_the_alert_notifies(tmp_path: Path) -> None:
    h = Harness(tmp_path, local("2026-01-05 12:00"))
    db = sqlite3.connect(tmp_path / "alerts.db")
    matchers = [{"name": "alertname", "op": "=~", "value": "(?=Grid)Grid.*"}]
    db.execute("INSERT INTO silences VALUES (?,?,?,?,?,?,?,?)",
               ("0" * 32, json.dumps(matchers), h.clock.now() - 1, h.clock.now() + 3600, "old", "", 0.0, None))
    db.commit()
    db.close()
    h.run(60, every={(Kind.INVERTER, "inv-main"): inverter(grid_ok=False)})
    assert h.state("GridOutage", "inv-main") == "firing"
    alert = next(a for a in h.engine.alerts() if a.rule == "GridOutage")
    assert alert.muted_by == ()
    assert ("oncall:hook", "firing/new", ("GridOutage",)) in h.sent_summary()


def test_engine_silence_with_the_issue_pattern_mutes_only_matching_alerts(tmp_path: Path) -> None:
    h = Harness(tmp_path, local("2026-01-05 12:00"))
    now = h.clock.now()
    h.store.create_silence([parse_matcher(f"alertname=~{ISSUE_PATTERN}")], now, now + 3600, "ops")
    h.store.create_silence([parse_matcher("alertname=~(.*){22}age"), parse_matcher("device=inv-lab")], now,
                           now + 3600, "ops")
    h.run(60, every={(Kind.INVERTER, "inv-main"): inverter(grid_ok=False),
                     (Kind.INVERTER, "inv-lab"): inverter(grid_ok=False)})
    muted = {a.labels["device"]: a.muted_by for a in h.engine.alerts() if a.rule == "GridOutage"}
    assert muted["inv-main"] == ()
    assert len(muted["inv-lab"]) == 1 and muted["inv-lab"][0].startswith("silence:")


def test_a_rule_file_with_a_lookahead_is_refused_naming_the_file_and_re2(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text("rules:\n  - name: Hot\n    kind: inverter\n    match: [\"device=~(?!inv-lab).*\"]\n"
                    "    condition: {threshold: {metric: inverter_temp_c, op: '>', value: 70}}\n")
    [problem] = check_rule_files([path])
    assert str(path) in problem and "RE2" in problem and "lookahead" in problem
    path.write_text(path.read_text().replace("(?!inv-lab).*", "inv-(main|roof)"))
    assert check_rule_files([path]) == []


# The remembered answers (RegexProgram per value, SilenceMuter per label set, kept across re-reads)
# are an optimisation: the plain loop over silences and matchers is their oracle.
_POOL = ["alertname=~Grid.*", "alertname!~Uplink.*", "site=park", "site=~park|lab", "device!=inv-lab",
         "device=~inv-(main|lab)", "severity=~critical|warning", "room=~", "alertname=~(.*){22}X"]
_LABELS = st.fixed_dictionaries({}, optional={
    "alertname": st.sampled_from(["GridOutage", "UplinkDown", "GridOutageX", ""]),
    "site": st.sampled_from(["park", "lab", "park-2"]),
    "device": st.sampled_from(["inv-main", "inv-lab", "uplink-ptcl"]),
    "severity": st.sampled_from(["critical", "info"]),
    "room": st.sampled_from(["", "lab"])})
_SILENCES = st.lists(st.tuples(st.lists(st.sampled_from(_POOL), min_size=1, max_size=4, unique=True),
                               st.integers(0, 50), st.integers(1, 50)), max_size=6)


@settings(max_examples=300, deadline=None)
@given(_SILENCES, st.lists(st.tuples(_LABELS, st.integers(0, 120)), min_size=1, max_size=12))
def test_remembered_answers_agree_with_the_plain_loop(silences: list, asks: list) -> None:
    made = [Silence(f"s{i}", tuple(parse_matcher(t) for t in texts), float(start), float(start + length), "ops", "",
                    0.0) for i, (texts, start, length) in enumerate(silences)]
    muter, reread = SilenceMuter(made), SilenceMuter(made)
    for labels, now in asks + asks:  # each label set asked twice, at times that start and end silences
        expected = next((s.id for s in made if s.is_active(now) and matches_all(s.matchers, labels)), None)
        assert muter.mutes(labels, float(now)) == expected
        assert reread.mutes(labels, float(now)) == expected


def test_a_program_remembers_a_bounded_number_of_answers() -> None:
    matcher = parse_matcher("device=~inv-[0-9]+")
    for round_ in range(2):
        for i in range(REMEMBERED_VALUES + 10):
            assert matcher.matches({"device": f"inv-{i}"}), (round_, i)
            assert not matcher.matches({"device": f"dev-{i}"}), (round_, i)
    assert len(matcher._regex._answers) <= REMEMBERED_VALUES
    assert parse_matcher("device=~.*").matches({"device": "bad \udc80 surrogate"})  # lone surrogate: no crash
